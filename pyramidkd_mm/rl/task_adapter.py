"""One policy for tasks whose states differ: a per-task input adapter in
front of a shared core.

The distillation state's size follows the student's channels, so detection,
segmentation and classification students (and students of other widths)
give states of different sizes and meanings. :class:`TaskAdapterPolicy`
maps each task's state with its own linear adapter into one embedding that
a shared core policy (a :class:`PolicyNetwork`) decides on. Meta-learning
shares the core across tasks; whether the inner loop also adapts the
adapter is :class:`MAMLTrainer`'s ``inner_params``.
"""
import torch
from torch import nn

from ..registry import MODELS
from .policy import _linear


@MODELS.register_module()
class TaskAdapterPolicy(nn.Module):
    """Per-task linear adapters and a shared core policy.

    It has the policy interface (``select_action``, ``evaluate_actions``,
    ``logits``; ``forward`` is ``evaluate_actions``) for the states of the
    current ``task``; set ``task`` to switch. Built by :class:`RLSelector`
    with the run's own state size, e.g.
    ``policy=dict(type='pyramidkd_mm.TaskAdapterPolicy', task='det')``.

    Args:
        state_dim (int): state size of ``task``.
        num_levels (int): binary decisions per state.
        task (str): the run's own task, current at first.
        task_dims (dict[str, int], optional): state sizes of other tasks.
        embed_dim (int): size of the adapters' output, the core's input.
        core (dict): :class:`PolicyNetwork` options (``hidden_dim``,
            ``recurrent``).
    """

    def __init__(self, state_dim, num_levels=4, task='default',
                 task_dims=None, embed_dim=64, core=dict()):
        super().__init__()
        self.num_levels = num_levels
        self.embed_dim = embed_dim
        self.adapters = nn.ModuleDict()
        for name, dim in {**(task_dims or {}), task: state_dim}.items():
            self.add_task(name, dim)
        self.core = MODELS.build({
            'type': 'pyramidkd_mm.PolicyNetwork', **core,
            'state_dim': embed_dim, 'num_levels': num_levels})
        self.task = task

    def add_task(self, name, state_dim):
        """Adds a freshly initialised adapter for a new task (an optimiser
        built before does not hold it)."""
        if name in self.adapters:
            raise ValueError(f'task {name!r} already has an adapter')
        self.adapters[name] = _linear(state_dim, self.embed_dim, gain=1.0)

    @property
    def state_dim(self):
        """State size of the current task."""
        return self.adapters[self.task].in_features

    def embed(self, states):
        """The current task's states in the core's input space."""
        if self.task not in self.adapters:
            raise KeyError(f'no adapter for task {self.task!r}; known: '
                           f'{sorted(self.adapters)} (see add_task)')
        adapter = self.adapters[self.task]
        if states.shape[-1] != adapter.in_features:
            raise ValueError(
                f'task {self.task!r} takes states of size '
                f'{adapter.in_features}, got {states.shape[-1]}')
        return adapter(states)

    @torch.no_grad()
    def select_action(self, state, deterministic=False):
        """See :meth:`PolicyNetwork.select_action`."""
        return self.core.select_action(self.embed(state), deterministic)

    def logits(self, states, actions=None):
        """See :meth:`PolicyNetwork.logits`."""
        return self.core.logits(self.embed(states), actions)

    def evaluate_actions(self, states, actions):
        """See :meth:`PolicyNetwork.evaluate_actions`."""
        return self.core.evaluate_actions(self.embed(states), actions)

    def forward(self, states, actions):
        return self.evaluate_actions(states, actions)
