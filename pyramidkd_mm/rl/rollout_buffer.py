"""On-policy storage of T steps x B parallel environments for PPO.

Fill it with :meth:`RolloutBuffer.add` once per environment step, call
:meth:`RolloutBuffer.compute_returns_and_advantages` with the value of the
state after the last step, then draw shuffled minibatches with
:meth:`RolloutBuffer.minibatches`, and :meth:`RolloutBuffer.reset` for the
next rollout.
"""
import torch
from torch.utils.data import BatchSampler, SubsetRandomSampler

# Per-transition fields in the order add() takes them.
FIELDS = ('states', 'actions', 'log_probs', 'values', 'rewards', 'dones')


class RolloutBuffer:
    """Transitions of one rollout, with GAE advantages and returns.

    ``dones[t]`` marks that the episode ended with the transition taken at
    step ``t``, so the value after it is not bootstrapped. A time-limit
    truncation is not an end in this sense: add ``gamma * V(final state)``
    to its reward and pass ``done=True`` (see ``ppo_cartpole.py``).

    Args:
        num_steps (int): steps T per rollout.
        num_envs (int): parallel environments B.
        state_dim (int): size of a state.
        action_dim (int): size of an action (the policy's ``num_levels``).
        gamma (float): discount. Default: 0.99.
        gae_lambda (float): GAE's lambda. Default: 0.95.
        device (str | torch.device): where the tensors live.
    """

    def __init__(self, num_steps, num_envs, state_dim, action_dim,
                 gamma=0.99, gae_lambda=0.95, device='cpu'):
        self.num_steps = num_steps
        self.num_envs = num_envs
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.device = torch.device(device)
        shape = (num_steps, num_envs)
        self.states = torch.zeros(*shape, state_dim, device=self.device)
        self.actions = torch.zeros(*shape, action_dim, device=self.device)
        for name in ('log_probs', 'values', 'rewards', 'dones',
                     'advantages', 'returns'):
            setattr(self, name, torch.zeros(shape, device=self.device))
        self.pos = 0

    @property
    def full(self):
        return self.pos == self.num_steps

    def reset(self):
        """Starts a new rollout (old data is overwritten, not cleared)."""
        self.pos = 0

    def add(self, state, action, log_prob, value, reward, done):
        """Stores the step of all B environments; arrays are converted to
        float tensors on the buffer's device.

        Args:
            state: (B, state_dim). action: (B, action_dim).
            log_prob, value, reward, done: (B,).
        """
        if self.full:
            raise RuntimeError('RolloutBuffer is full; call reset() first')
        for name, data in zip(FIELDS, (state, action, log_prob, value,
                                       reward, done)):
            getattr(self, name)[self.pos] = torch.as_tensor(
                data, dtype=torch.float32, device=self.device)
        self.pos += 1

    def state_dict(self):
        """The stored transitions and the fill position, for resuming."""
        state = {name: getattr(self, name) for name in FIELDS}
        state['pos'] = self.pos
        return state

    def load_state_dict(self, state_dict):
        for name in FIELDS:
            getattr(self, name).copy_(state_dict[name])
        self.pos = state_dict['pos']

    def compute_returns_and_advantages(self, last_value):
        """Fills ``advantages`` with GAE and ``returns`` with advantages +
        values, walking backwards from the bootstrap value.

        Args:
            last_value: (B,) value of the state after the last step.
        """
        if not self.full:
            raise RuntimeError(f'RolloutBuffer holds {self.pos} of '
                               f'{self.num_steps} steps')
        next_value = torch.as_tensor(last_value, dtype=torch.float32,
                                     device=self.device)
        next_advantage = torch.zeros_like(next_value)
        for t in reversed(range(self.num_steps)):
            alive = 1.0 - self.dones[t]
            delta = (self.rewards[t] + self.gamma * next_value * alive
                     - self.values[t])
            next_advantage = (delta + self.gamma * self.gae_lambda * alive
                              * next_advantage)
            self.advantages[t] = next_advantage
            next_value = self.values[t]
        self.returns = self.advantages + self.values

    def minibatches(self, batch_size, generator=None):
        """Yields the T*B transitions once, shuffled, in minibatches.

        Args:
            batch_size (int): transitions per minibatch; the last one may be
                smaller.
            generator (torch.Generator, optional): for the shuffling;
                torch's global generator by default.

        Yields:
            dict[str, Tensor]: ``states``, ``actions``, ``log_probs``,
            ``values``, ``advantages`` and ``returns`` of the minibatch.
        """
        flat = {name: getattr(self, name).flatten(0, 1) for name in (
            'states', 'actions', 'log_probs', 'values', 'advantages',
            'returns')}
        sampler = BatchSampler(
            SubsetRandomSampler(range(self.num_steps * self.num_envs),
                                generator=generator),
            batch_size, drop_last=False)
        for indices in sampler:
            indices = torch.as_tensor(indices, device=self.device)
            yield {name: data[indices] for name, data in flat.items()}
