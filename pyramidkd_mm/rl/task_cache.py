"""A distillation task recorded once, replayed as a contextual bandit.

Meta-learning needs many rollouts of several tasks, and a task's rollouts
come from training its student with its teacher. A :class:`TaskCache` holds
what one short distillation run measured for each sample: the state the
policy saw and the gain every level's distillation bought in the step
(all levels distilled), plus the teacher cost of every mask. Any policy can
then act on the recorded states and be rewarded without the models:

    r(s, a) = sum_l a_l * gain_l(s) + lam * (budget - cost(a))

This is the reward of :class:`DistillationEnvironment` with ``lam`` held
fixed, under one approximation: a level's gain is the one it showed when
every level was distilled in the step, whichever other levels the action
selects. The expected reward of a policy is computed exactly, over all
2^L masks.
"""
from dataclasses import asdict, dataclass

import torch

from .meta_task import MetaTask, Rollout


@dataclass
class TaskCache:
    """Recorded samples of one task.

    Attributes:
        name (str): the task (e.g. ``'det'``); the adapter of a
            :class:`TaskAdapterPolicy`.
        states (Tensor): (N, state_dim) states of the samples.
        gains (Tensor): (N, L) per-level gains, in units of a typical gain
            (see :class:`DistillationEnvironment`).
        mask_costs (Tensor): (2^L,) teacher cost of each mask; mask ``m``
            selects level ``l`` iff bit ``l`` of ``m`` is set.
        budget (float): the cost budget.
        lam (float): the price of compute.
    """

    name: str
    states: torch.Tensor
    gains: torch.Tensor
    mask_costs: torch.Tensor
    budget: float
    lam: float

    def __post_init__(self):
        if len(self.states) != len(self.gains):
            raise ValueError(f'{len(self.states)} states but '
                             f'{len(self.gains)} gains')
        if len(self.mask_costs) != 2**self.num_levels:
            raise ValueError(f'{len(self.mask_costs)} mask costs for '
                             f'{self.num_levels} levels (need 2^L)')

    def __len__(self):
        return len(self.states)

    @property
    def num_levels(self):
        return self.gains.shape[1]

    @property
    def state_dim(self):
        return self.states.shape[1]

    def save(self, path):
        torch.save(asdict(self), path)

    @classmethod
    def load(cls, path):
        return cls(**torch.load(path, map_location='cpu', weights_only=True))

    def subset(self, index):
        """The samples at ``index`` as a cache of their own."""
        return TaskCache(self.name, self.states[index], self.gains[index],
                         self.mask_costs, self.budget, self.lam)

    def split(self, fraction, seed=0):
        """A random split into (1 - fraction, fraction) of the samples, e.g.
        samples to adapt on and held-out samples to evaluate on."""
        order = torch.randperm(len(self),
                               generator=torch.Generator().manual_seed(seed))
        cut = len(self) - int(round(fraction * len(self)))
        return self.subset(order[:cut]), self.subset(order[cut:])

    def masks(self):
        """(2^L, L) every mask, row ``m`` the bits of ``m``."""
        bits = 2**torch.arange(self.num_levels)
        return (torch.arange(len(self.mask_costs))[:, None] & bits).gt(
            0).float()

    def rewards(self, index, actions):
        """Rewards of ``actions`` (n, L) on the samples at ``index``."""
        bits = 2**torch.arange(self.num_levels, device=actions.device)
        cost = self.mask_costs[(actions.long() * bits).sum(1)]
        return ((self.gains[index] * actions).sum(1)
                + self.lam * (self.budget - cost))

    @torch.no_grad()
    def collect(self, policy, size, generator=None):
        """Single-step episodes: ``policy`` acts on ``size`` random samples.

        Returns:
            Rollout: advantages ``r - V(s)``, returns ``r``.
        """
        index = torch.randint(len(self), (size, ), generator=generator)
        states = self.states[index]
        actions, log_probs, values = policy.select_action(states)
        rewards = self.rewards(index, actions)
        return Rollout(states, actions, log_probs, rewards - values, rewards)

    def fill(self, buffer, policy, generator=None):
        """Refills a :class:`RolloutBuffer` with single-step episodes of
        ``policy`` and computes its advantages, ready for
        :meth:`PPOTrainer.update`."""
        buffer.reset()
        while not buffer.full:
            r = self.collect(policy, buffer.num_envs, generator)
            buffer.add(r.states, r.actions, r.log_probs,
                       r.returns - r.advantages, r.returns,
                       torch.ones_like(r.returns))
        buffer.compute_returns_and_advantages(
            torch.zeros(buffer.num_envs, device=buffer.device))

    def meta_task(self, support_size, query_size, generator=None):
        """A :class:`MetaTask` whose support and query are collected from
        this cache by the policy given (meta-policy, adapted policy)."""
        return MetaTask(
            support=lambda p: self.collect(p, support_size, generator),
            query=lambda p: self.collect(p, query_size, generator),
            name=self.name)

    @torch.no_grad()
    def expected_reward(self, policy):
        """Mean over the samples of the policy's expected reward, exact
        over all masks (for policies without a memory of the trial)."""
        masks = self.masks()
        n, m = len(self), len(masks)
        states = self.states.repeat_interleave(m, 0)
        actions = masks.repeat(n, 1)
        log_prob, _, _ = policy.evaluate_actions(states, actions)
        index = torch.arange(n).repeat_interleave(m)
        rewards = self.rewards(index, actions)
        return (log_prob.exp() * rewards).sum().item() / n
