"""Phase 4 of RL-PyramidKD: meta-learning of the selection policy across
tasks, driven by :class:`DistillPhaseHook`."""
import torch
from mmengine.dist import get_rank

from ..rl import MAMLTrainer, MetaTask, Rollout
from ..rl.task_cache import TaskCache


class MetaPhase:
    """Meta-updates of the policy over the run's task and recorded tasks.

    In phase 4 the student trains as in phase 3 and the policy keeps
    selecting levels, but each full rollout goes to :meth:`update` instead
    of PPO: one :meth:`MAMLTrainer.meta_update` over the run's own task
    (support: the first half of the rollout's transitions, query: the
    second half; both collected by the meta-policy, which the loss's
    importance ratios account for) and every recorded task of ``tasks``
    (support and query collected from its :class:`TaskCache` by the
    meta-policy and by the adapted policy). Recorded tasks whose states
    differ from the run's need a :class:`TaskAdapterPolicy`; their adapters
    are added when missing.

    What is drawn from the caches depends only on ``seed``, the rank and
    the number of meta-updates so far, so a resumed run draws what the
    uninterrupted one would have; the outer optimiser is in the checkpoint
    (:meth:`state_dict`).

    Args:
        tasks (dict[str, str]): recorded tasks, name -> :class:`TaskCache`
            file (``tools/analysis_tools/meta_adaptation.py record``).
        algorithm, inner_lr, outer_lr, num_inner_steps, inner_params,
            max_grad_norm, inner_max_grad_norm: see :class:`MAMLTrainer`;
            the run's returns are not normalised, so the inner steps are
            clipped like PPO's by default.
        support_size (int): transitions per support set of a recorded task.
        query_size (int): transitions per query set of a recorded task.
        seed (int): seed of the recorded tasks' sampling.
    """

    def __init__(self, tasks=dict(), algorithm='fomaml', inner_lr=0.1,
                 outer_lr=3e-4, num_inner_steps=1, inner_params=None,
                 max_grad_norm=0.5, inner_max_grad_norm=0.5, support_size=64,
                 query_size=64, seed=0):
        self.task_files = dict(tasks)
        self.options = dict(algorithm=algorithm, inner_lr=inner_lr,
                            outer_lr=outer_lr, num_inner_steps=num_inner_steps,
                            inner_params=inner_params,
                            max_grad_norm=max_grad_norm,
                            inner_max_grad_norm=inner_max_grad_norm)
        self.support_size = support_size
        self.query_size = query_size
        self.seed = seed
        self.caches = []
        self.trainer = None
        self.updates = 0

    def setup(self, policy):
        """Loads the recorded tasks and builds the meta-learner on the
        (unwrapped) ``policy``; call before a checkpoint is loaded."""
        adapters = getattr(policy, 'adapters', None)
        self.caches = []
        for name, path in self.task_files.items():
            cache = TaskCache.load(path)
            cache.name = name
            if cache.num_levels != policy.num_levels:
                raise ValueError(
                    f'recorded task {name!r} ({path}) has '
                    f'{cache.num_levels} levels, the policy '
                    f'{policy.num_levels}')
            if adapters is not None:
                if name not in adapters:
                    policy.add_task(name, cache.state_dim)
            elif cache.state_dim != policy.state_dim:
                raise ValueError(
                    f'recorded task {name!r} ({path}) has states of size '
                    f'{cache.state_dim}, the run {policy.state_dim}: use '
                    "policy=dict(type='pyramidkd_mm.TaskAdapterPolicy', "
                    "task=...) for tasks with different states")
            self.caches.append(cache)
        self.trainer = MAMLTrainer(policy, **self.options)

    def update(self, buffer):
        """One meta-update from a full rollout of the run's task (what
        :meth:`RLSelector.learn` calls instead of PPO's update).

        Returns:
            dict[str, float]: ``meta_support_loss``, ``meta_query_loss``
            and ``meta_grad_norm``.
        """
        policy = self.trainer.policy
        own = getattr(policy, 'task', None)
        live = Rollout.from_buffer(buffer)
        half = len(live) // 2
        tasks = [MetaTask(live.select(slice(None, half)),
                          live.select(slice(half, None)), own)]
        generator = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.updates) * 1024 + get_rank())
        for cache in self.caches:
            task = cache.meta_task(self.support_size, self.query_size,
                                   generator)
            if own is None:  # one input for all tasks
                task.name = None
            tasks.append(task)
        stats = self.trainer.meta_update(tasks)
        if own is not None:
            policy.task = own
        self.updates += 1
        return {f'meta_{key}': value for key, value in stats.items()}

    def state_dict(self):
        return dict(trainer=self.trainer.state_dict(), updates=self.updates)

    def load_state_dict(self, state_dict):
        self.trainer.load_state_dict(state_dict['trainer'])
        self.updates = state_dict['updates']
