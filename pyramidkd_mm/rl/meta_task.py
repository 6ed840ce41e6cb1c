"""What a task hands the meta-learner: transitions, or a way to collect them.

A :class:`Rollout` is a flat batch of transitions of one task with what the
policy-gradient loss needs (the collecting policy's log-probabilities, the
advantages and the value targets). A :class:`MetaTask` pairs a support set
(the data the inner loop adapts on) with a query set (the data the adapted
policy is judged on); either may be a callable that collects a fresh
rollout with the policy it is given, so that on-line tasks are sampled by
the policy being trained, as in MAML for RL.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch


@dataclass
class Rollout:
    """Transitions of one task, flattened.

    Attributes:
        states (Tensor): (N, state_dim).
        actions (Tensor): (N, num_levels) of 0./1.
        log_probs (Tensor): (N,) log-probability of each action under the
            policy that collected it (the importance ratio's denominator).
        advantages (Tensor): (N,) advantage estimates.
        returns (Tensor): (N,) value targets.
    """

    states: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    def __post_init__(self):
        sizes = {name: len(getattr(self, name)) for name in (
            'states', 'actions', 'log_probs', 'advantages', 'returns')}
        if len(set(sizes.values())) != 1:
            raise ValueError(f'Rollout fields hold different numbers of '
                             f'transitions: {sizes}')

    def __len__(self):
        return len(self.states)

    @classmethod
    def from_buffer(cls, buffer):
        """The transitions of a full :class:`RolloutBuffer` whose advantages
        are computed (copies, so the buffer can be refilled)."""
        return cls(*(getattr(buffer, name).flatten(0, 1).clone() for name in (
            'states', 'actions', 'log_probs', 'advantages', 'returns')))

    def select(self, index):
        """The transitions at ``index`` (a slice, or a tensor of indices or
        a boolean mask)."""
        return Rollout(self.states[index], self.actions[index],
                       self.log_probs[index], self.advantages[index],
                       self.returns[index])

    @staticmethod
    def cat(rollouts):
        """One rollout holding the transitions of all ``rollouts``."""
        return Rollout(*(torch.cat([getattr(r, name) for r in rollouts])
                         for name in ('states', 'actions', 'log_probs',
                                      'advantages', 'returns')))


Collect = Callable[[torch.nn.Module], Rollout]


@dataclass
class MetaTask:
    """One task of a meta-batch.

    Attributes:
        support (Rollout | Callable): the inner loop's data, or
            ``collect(policy) -> Rollout`` called with the meta-policy.
        query (Rollout | Callable): the adapted policy's evaluation data,
            or ``collect(policy)`` called with the adapted policy (a copy
            holding the adapted weights).
        name (str, optional): selects the task's input for a policy with
            per-task inputs (:class:`TaskAdapterPolicy`); None for a policy
            whose input is the same for all tasks.
    """

    support: Union[Rollout, Collect]
    query: Union[Rollout, Collect]
    name: Optional[str] = None
