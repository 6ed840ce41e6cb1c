"""The RL-KD selector: a policy, trained by PPO during distillation, that
decides per sample what the teacher distills."""
import logging

import torch
from mmengine.dist import all_reduce
from mmengine.logging import print_log

from ..registry import MODELS
from ..rl import DistillationEnvironment, PPOTrainer, RolloutBuffer
from ..rl.policy import offset_for_rate
from .selectors import LevelSelector
from .student_predictions import StudentPredictions
from .teacher_predictions import TeacherPredictions


@MODELS.register_module()
class RLSelector(LevelSelector):
    """Per-sample selection by a policy that PPO trains during distillation.

    ``DistillPhaseHook`` drives it: in phase 1 it selects every level; in
    phases 2 and 3 it samples the policy's Bernoulli decisions, and after
    each optimiser step the hook hands the measured outcome to :meth:`learn`
    (reward, see :class:`DistillationEnvironment`); every ``rollout_iters``
    iterations PPO updates the policy on the collected episodes. Outside
    training it acts deterministically (decisions with probability > 0.5).

    The action space says where the decisions are: ``'levels'`` (the seed
    design), one flag per level; ``'sample'``, one flag per sample that
    distills all its levels or skips the teacher for it (where an FPN
    teacher's compute is: its backbone, laterals and top-down path serve
    every level); ``'sample_levels'``, a sample flag and level flags, the
    levels distilled where both are set.

    With ``calibrate``, the pacing decides how many samples the teacher
    distills and the policy which: each batch's logits are shifted by one
    offset (part of the stored state, see :class:`PolicyNetwork`'s
    ``logit_offset``) so that the probabilities average the paced target,
    and the rewards are centred per step (the environment's ``centered``):
    they rank the samples instead of pricing compute. Without it the
    policy's rate follows the price of compute in the reward, which lags a
    policy that PPO changes every few iterations.

    The policy and the environment's running statistics are in the module's
    state dict, the PPO optimiser and the partly filled rollout in
    :meth:`learner_state_dict`, which ``DistillPhaseHook`` puts into Runner
    checkpoints. The policy is trained by PPO alone, never by
    the Runner's optimiser (its gradients are left unset).

    Args:
        policy (dict): :class:`PolicyNetwork` options besides the sizes
            (``hidden_dim``, ``recurrent``).
        env (dict): :class:`DistillationEnvironment` options (``budget``,
            ``lam``, ``lam_lr``, ``momentum``).
        ppo (dict): :class:`PPOTrainer` options.
        rollout_iters (int): training iterations per PPO update; a rollout
            holds ``rollout_iters`` x batch size episodes per rank (a
            smaller last batch of an epoch is rewarded but not stored).
        action (str): ``'levels'``, ``'sample'`` or ``'sample_levels'``.
        signals (Sequence[str]): per-sample signals added to the state:
            ``'entropy'``, the student's :meth:`Predictions.entropy`.
            ``env=dict(reward='disagreement')`` (the student's predictions
            against the teacher's, see :class:`TeacherPredictions`) needs
            ``action='sample'``: the teacher's head reads its whole
            pyramid.
        calibrate (bool): shift the policy's logits so that its expected
            rate is the paced target; needs ``action='sample'`` (one
            decision is the cost). Default: False.
        importance (bool): a distilled sample weighs ``1 / target``, the
            batch's mean probability of being distilled under
            ``calibrate``: the weighting of ``RandomSelector(
            importance=True)``, so that the distillation loss keeps uniform
            KD's size instead of shrinking with the budget. Needs
            ``calibrate``. Default: False.
        **kwargs: see :class:`LevelSelector`.
    """

    ACTIONS = ('levels', 'sample', 'sample_levels')

    def __init__(self, policy=dict(), env=dict(), ppo=dict(minibatch_size=32),
                 rollout_iters=8, action='levels', signals=(),
                 calibrate=False, importance=False, **kwargs):
        super().__init__(**kwargs)
        if action not in self.ACTIONS:
            raise ValueError(f'RLSelector action must be one of '
                             f'{self.ACTIONS}, got {action!r}')
        unknown = set(signals) - {'entropy'}
        if unknown:
            raise ValueError(f'unknown RLSelector signals {sorted(unknown)};'
                             " known: ['entropy']")
        if calibrate and action != 'sample':
            raise ValueError("RLSelector: calibrate=True needs "
                             f"action='sample', got {action!r}")
        if importance and not calibrate:
            raise ValueError('RLSelector: importance=True needs '
                             'calibrate=True (the batch then distills the '
                             'target rate on average)')
        self.action = action
        self.signals = tuple(signals)
        self.calibrate = calibrate
        self.importance = importance
        self.teacher_predictions = None
        if env.get('reward') == 'disagreement':
            if action != 'sample':
                raise ValueError("RLSelector: reward='disagreement' needs "
                                 f"action='sample', got {action!r}")
            self.teacher_predictions = TeacherPredictions(
                kwargs['teacher_tap'], kwargs['teacher_cost'],
                len(self.levels))
        self.predictions = StudentPredictions(kwargs['student']) \
            if signals or self.teacher_predictions else None
        decisions = dict(levels=len(self.levels), sample=1,
                         sample_levels=1 + len(self.levels))[action]
        self.env = DistillationEnvironment(
            len(self.levels), num_signals=len(signals), centered=calibrate,
            **env)
        state_dim = self.env.state_dim(kwargs['top_channels'],
                                       kwargs['level_channels'])
        policy = {'type': 'pyramidkd_mm.PolicyNetwork', **policy,
                  'num_levels': decisions, 'state_dim': state_dim}
        if calibrate:  # the offset rides in the state (PolicyNetwork only)
            policy.update(state_dim=state_dim + 1, logit_offset=True)
        # On the selector's stream: the Runner initialises the student's
        # weights after the model is built, from the global RNG, and RL-KD
        # must start from the same student as every other selector of its
        # seed.
        with self.rng:
            self.policy = MODELS.build(policy)
        self.trainer = PPOTrainer(self.policy, **ppo)
        self.rollout_iters = rollout_iters
        self.buffer = None  # sized by the first batch
        self.uniform = False  # phase 1
        self._pending = None  # the decision awaiting its outcome
        self._student = None  # the step's predictions, for the reward
        self._disagreement = None  # the step's, read from the teacher

    @property
    def needs_outcome(self):
        return self._pending is not None

    @property
    def needs_after_pass(self):
        """Whether the reward needs the losses recomputed after the step."""
        return self.env.reward == 'gain'

    def mask(self, action):
        """The (batch, levels) selection of the policy's decisions."""
        action = action.bool()
        if self.action == 'levels':
            return action
        if self.action == 'sample':
            return action.expand(-1, len(self.levels))
        return action[:, :1] & action[:, 1:]

    def states(self, student_feats):
        """The policy's states of a batch, after the student's forward."""
        signals = None
        if self.predictions is not None:
            self._student = self.predictions.take(student_feats[0].shape[0])
            if self.signals:
                signals = self._student.entropy()[:, None]
        states = self.env.reset(student_feats.top,
                                student_feats[:len(self.levels)], signals)
        if not self.calibrate:
            return states
        states = torch.cat([states, states.new_zeros(len(states), 1)], 1)
        with torch.no_grad():
            states[:, -1] = offset_for_rate(self.policy.logits(states),
                                            self.env.target)
        return states

    @torch.no_grad()
    def level_probabilities(self, student_feats):
        """(batch, levels) probability that the learning policy distills
        each level of each sample (a recurrent policy's decisions
        conditioned on its deterministic earlier ones)."""
        states = self.states(student_feats)
        action, _, _ = self.policy.select_action(states, deterministic=True)
        prob = self.policy.logits(states, action).sigmoid()
        if self.action == 'levels':
            return prob
        if self.action == 'sample':
            return prob.expand(-1, len(self.levels))
        return prob[:, :1] * prob[:, 1:]

    def forward(self, student_feats, data_samples):
        states = self.states(student_feats)  # consumes its signals, always
        if self.training and self.uniform:
            return self.all_levels(student_feats)
        if self._pending is not None:
            raise RuntimeError(
                'RLSelector: the previous decision got no outcome; add '
                "dict(type='pyramidkd_mm.DistillPhaseHook') to custom_hooks")
        with self.rng:
            action, log_prob, value = self.policy.select_action(
                states, deterministic=not self.training)
        if self.training:
            self._pending = (states, action, log_prob, value)
        return self.mask(action)

    def loss_weights(self):
        target = self.env.target[0]
        if not (self.importance and self.training and not self.uniform
                and target > 0):
            return None
        return (1 / target).expand(len(self.levels))

    def read_teacher(self, teacher_feats, mask, pixels):
        """For ``reward='disagreement'``: the KL between the teacher's and
        the student's predictions of the distilled samples; returns what the
        teacher's head cost."""
        if self.teacher_predictions is None or self._pending is None:
            return None
        rows = mask.any(1).nonzero()[:, 0]
        kl = mask.new_zeros(mask.shape[0], dtype=torch.float32)
        cost = torch.zeros_like(kl)
        if len(rows):
            read = self.teacher_predictions.disagreement(
                self._student.of_samples(rows), teacher_feats, pixels)
            kl[rows], cost[rows] = read.kl, read.cost
        self._disagreement = kl
        return cost

    def learn(self, outcome, update=None):
        """Rewards the pending decision and updates the policy when a rollout
        is complete.

        Args:
            outcome (StepOutcome): the step's measured outcome
                (:meth:`PyramidDistiller.outcome`).
            update (callable, optional): what learns from a full rollout,
                ``update(buffer) -> dict``; the PPO trainer's update by
                default (phase 4 passes :meth:`MetaPhase.update`).

        Returns:
            dict[str, float]: ``reward``, ``gain``, ``cost_saved`` and
            ``lam`` means, plus the PPO diagnostics when the policy was
            updated; ``nonfinite`` (1) instead when the outcome was not
            finite and the step was left out of the rollout.
        """
        states, action, log_prob, value = self._pending
        self._pending = None
        measured = (outcome.loss_before, outcome.loss_after, outcome.cost,
                    self._disagreement)
        self._disagreement = None
        # Every rank skips together: the environment's statistics are
        # reduced over ranks.
        finite = torch.stack([t.isfinite().all() for t in (states, *measured)
                              if t is not None])
        finite = finite.all().float()
        all_reduce(finite, op='min')
        if finite.item() < 1:
            print_log('RLSelector: non-finite distillation outcome; the '
                      'step is not rewarded', logger='current',
                      level=logging.WARNING)
            return dict(nonfinite=1.0)
        rewards, dones, info = self.env.step(self.mask(action), *measured)
        if self.buffer is None or self.buffer.device != states.device:
            buffer = RolloutBuffer(self.rollout_iters, len(rewards),
                                   states.shape[1], self.policy.num_levels,
                                   device=states.device)
            if self.buffer is not None:  # resumed on another device
                buffer.load_state_dict(self.buffer.state_dict())
            self.buffer = buffer
        stats = {key: info[key].mean().item()
                 for key in ('gain', 'cost_saved', 'lam')}
        stats['reward'] = rewards.mean().item()
        if len(rewards) != self.buffer.num_envs:
            return stats  # an epoch's smaller last batch: not stored
        self.buffer.add(states, action, log_prob, value, rewards, dones)
        if self.buffer.full:
            # Every episode ended, so nothing is bootstrapped.
            self.buffer.compute_returns_and_advantages(torch.zeros_like(value))
            with self.rng:  # PPO's minibatches are shuffled
                stats.update((update or self.trainer.update)(self.buffer))
            self.buffer.reset()
        return stats

    def learner_state_dict(self):
        """What the module's state dict does not hold: the PPO optimiser and
        the partly filled rollout (``DistillPhaseHook`` checkpoints it)."""
        return dict(ppo=self.trainer.state_dict(),
                    buffer=None if self.buffer is None
                    else self.buffer.state_dict())

    def load_learner_state_dict(self, state_dict):
        self.trainer.load_state_dict(state_dict['ppo'])
        saved = state_dict['buffer']
        if saved is not None:
            num_steps, batch, state_dim = saved['states'].shape
            self.buffer = RolloutBuffer(num_steps, batch, state_dim,
                                        self.policy.num_levels,
                                        device=saved['states'].device)
            self.buffer.load_state_dict(saved)
