"""The training phases of RL-PyramidKD, driven from the Runner."""
from mmengine.hooks import Hook

from ..models import RLSelector
from ..registry import HOOKS
from .distributed import unwrapped_model
from .meta_phase import MetaPhase

PHASES = ('uniform', 'policy', 'joint', 'meta')


@HOOKS.register_module()
class DistillPhaseHook(Hook):
    """Switches a :class:`PyramidDistiller` with an :class:`RLSelector`
    through the training phases and trains its policy.

    1. ``uniform``: every level of every sample is distilled (warm-up of the
       student and the connectors).
    2. ``policy``: the policy selects levels and learns; the student's
       ``freeze`` module (its backbone) does not train.
    3. ``joint``: policy and the whole student learn together.
    4. ``meta`` (with ``meta``): as ``joint``, but the policy is
       meta-learned across the run's task and recorded tasks
       (:class:`MetaPhase`) instead of PPO-trained on the run's task alone.

    Before every iteration after phase 1 the hook paces the budget
    (:meth:`DistillationEnvironment.pace`): the policy's target is what is
    left of the run's budget after phase 1's uniform distillation and its
    own spending, over what is left of the run (logged as ``rl_target``).
    After every optimiser step the hook measures the
    step's outcome (:meth:`PyramidDistiller.outcome`) and passes it to
    :meth:`RLSelector.learn`, which updates the policy with PPO every
    ``rollout_iters`` iterations. Rewards, selection statistics and the PPO
    diagnostics go to the logger and the visualizer as ``rl_*`` scalars.

    The phase follows from the iteration (or epoch), so a resumed run
    continues in its phase; the checkpoint records the phase too (a mismatch
    with the config's milestones is reported on resume) and the selector's
    PPO optimiser and partly filled rollout, and the meta-learner's state.

    Args:
        milestones (Sequence[int]): where phases 2 and 3 (and 4, with
            ``meta``) begin, in iterations (or epochs with ``by_epoch``).
        by_epoch (bool): milestones count epochs. Default: False.
        freeze (str, optional): the student's module frozen in phase 2.
            Freezing the backbone suits an FPN pyramid, where the neck
            learns from the distillation; for a backbone pyramid the levels
            are the backbone's stages and a frozen backbone would leave
            distillation nothing to train, so pass ``None`` there.
        meta (dict, optional): :class:`MetaPhase` options; enables phase 4.
    """

    priority = 'NORMAL'  # before CheckpointHook saves the iteration's state

    def __init__(self, milestones, by_epoch=False, freeze='backbone',
                 meta=None):
        phases = PHASES if meta is not None else PHASES[:-1]
        if len(milestones) != len(phases) - 1 or list(milestones) != sorted(
                milestones):
            raise ValueError(
                f'milestones {list(milestones)} must be {len(phases) - 1} '
                f'increasing boundaries, where phases {phases[1:]} begin '
                '(phase 4, meta, needs the meta option)')
        self.meta = None if meta is None else MetaPhase(**meta)
        self.milestones = list(milestones)
        self.by_epoch = by_epoch
        self.freeze = freeze
        self.phase = None
        self._loaded_phase = None
        self._frozen = []

    def phase_at(self, runner):
        """The phase the run is in at its current iteration (or epoch)."""
        now = runner.epoch if self.by_epoch else runner.iter
        return PHASES[sum(now >= m for m in self.milestones)]

    def before_run(self, runner):
        model = unwrapped_model(runner)
        if not isinstance(getattr(model, 'selector', None), RLSelector):
            raise TypeError(
                'DistillPhaseHook needs a PyramidDistiller whose selector is '
                f"dict(type='RLSelector'); got {type(model).__name__} with "
                f"{type(getattr(model, 'selector', None)).__name__}")
        if self.freeze is not None:
            model.student.get_submodule(self.freeze)  # fail early if wrong
        if self.meta is not None:
            self.meta.setup(model.selector.policy)

    def before_train(self, runner):
        # A decision is rewarded by the optimiser step right after it; with
        # accumulation most iterations have none (private in mmengine 0.10).
        if getattr(runner.optim_wrapper, '_accumulative_counts', 1) > 1:
            raise ValueError(
                'DistillPhaseHook rewards each iteration by the optimiser '
                'step that follows it; remove accumulative_counts from '
                'optim_wrapper (use a larger batch instead)')
        if self.freeze is not None and not getattr(
                runner.model, 'find_unused_parameters', True):
            raise ValueError(
                f'DistillPhaseHook freezes the student\'s {self.freeze} in '
                'phase 2, after DDP wrapped the model: DDP would wait for '
                'its gradients. Set find_unused_parameters = True in the '
                'config (or freeze=None in the hook)')
        unwrapped_model(runner).selector.trainer.sync_policy()
        phase = self.phase_at(runner)
        if self._loaded_phase not in (None, phase):
            runner.logger.warning(
                f'the checkpoint was saved in phase {self._loaded_phase!r} '
                f'but the milestones {self.milestones} put iteration '
                f'{runner.iter} in phase {phase!r}; continuing in {phase!r}')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        phase = self.phase_at(runner)
        if phase != self.phase:
            self._enter(runner, phase)
        runner.message_hub.update_scalar('train/rl_phase',
                                         PHASES.index(phase) + 1)
        if phase != 'uniform':
            model = unwrapped_model(runner)
            env = model.selector.env
            env.pace(model.spent, runner.iter / runner.max_iters)
            runner.message_hub.update_scalar('train/rl_target',
                                             env.target.item())

    def _enter(self, runner, phase):
        model = unwrapped_model(runner)
        model.selector.uniform = phase == 'uniform'
        if phase == 'policy' and self.freeze is not None:
            # Only what trains now: stages a config freezes stay frozen.
            module = model.student.get_submodule(self.freeze)
            self._frozen = [p for p in module.parameters() if p.requires_grad]
            for param in self._frozen:
                param.requires_grad_(False)
        else:
            for param in self._frozen:
                param.requires_grad_(True)
            self._frozen = []
        runner.logger.info(f'distillation phase {phase!r} from iteration '
                           f'{runner.iter} (epoch {runner.epoch})')
        self.phase = phase

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.phase == 'uniform':
            return
        model = unwrapped_model(runner)
        update = self.meta.update if self.phase == 'meta' else None
        stats = model.selector.learn(model.outcome(), update=update)
        for key, value in stats.items():
            runner.message_hub.update_scalar(f'train/rl_{key}', value)

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['distill_phase'] = self.phase
        checkpoint['rl_selector'] = unwrapped_model(
            runner).selector.learner_state_dict()
        if self.meta is not None:
            checkpoint['meta_phase'] = self.meta.state_dict()

    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded_phase = checkpoint.get('distill_phase')
        if 'rl_selector' in checkpoint:
            unwrapped_model(runner).selector.load_learner_state_dict(
                checkpoint['rl_selector'])
        if self.meta is not None and 'meta_phase' in checkpoint:
            self.meta.load_state_dict(checkpoint['meta_phase'])
