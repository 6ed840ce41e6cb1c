"""RL² (Duan et al., 2016): a recurrent policy whose memory spans a trial.

A trial is a run of samples from one task. The policy's LSTM state is
carried from sample to sample within the trial, and each step also sees the
previous action and reward, so adapting to the task happens in the hidden
state, without gradient steps; :meth:`RL2Policy.reset` starts a new trial
(a new task). The outer learner is the ordinary :class:`PPOTrainer`.

To make that possible with PPO's shuffled minibatches, :meth:`observe`
returns the state *with* the memory (previous action, previous reward and
the LSTM state before the step, detached); that is what the rollout buffer
stores, and :meth:`evaluate_actions` recomputes the step from it. Gradients
therefore reach one step back in the trial (truncated backpropagation
through time of length one, as with stored recurrent states in R2D2); the
previous action and reward, which carry most of a bandit-like task's
information, are inputs of the step itself.

Use, per step of a batch of B parallel trials::

    memory_state = policy.observe(state)                # (B, memory_dim)
    action, log_prob, value = policy.select_action(memory_state)
    reward = env(action)
    policy.feedback(reward)
    buffer.add(memory_state, action, log_prob, value, reward, done)
"""
import torch
from torch import nn
from torch.distributions import Bernoulli

from ..registry import MODELS
from .policy import _linear, _mlp


@MODELS.register_module()
class RL2Policy(nn.Module):
    """Bernoulli-per-level policy with an LSTM memory across a trial.

    Args:
        state_dim (int): size of the environment's state.
        num_levels (int): binary decisions per state.
        hidden_dim (int): width of the encoder and the LSTM.
    """

    def __init__(self, state_dim, num_levels=4, hidden_dim=64):
        super().__init__()
        self.obs_dim = state_dim
        self.num_levels = num_levels
        self.hidden_dim = hidden_dim
        self.encoder = _mlp(state_dim + num_levels + 1, hidden_dim)
        self.cell = nn.LSTMCell(hidden_dim, hidden_dim)
        self.logit_head = _linear(hidden_dim, num_levels, gain=0.01)
        self.value_head = _linear(hidden_dim, 1, gain=1.0)
        self._memory = None  # previous action, reward, h, c
        self._awaiting = None  # action and new h, c until feedback()

    @property
    def state_dim(self):
        """Size of the states :meth:`observe` returns (what PPO stores)."""
        return self.obs_dim + self.num_levels + 1 + 2 * self.hidden_dim

    def reset(self):
        """Forget the trial: the next :meth:`observe` starts a new one."""
        self._memory = None
        self._awaiting = None

    def observe(self, state):
        """The state with the trial's memory, shape (B, :attr:`state_dim`):
        zeros for the memory at the start of a trial."""
        if self._awaiting is not None:
            raise RuntimeError('RL2Policy: call feedback(reward) after each '
                               'select_action before the next observe')
        batch = state.shape[0]
        if self._memory is None:
            memory = state.new_zeros(batch, self.state_dim - self.obs_dim)
        else:
            memory = torch.cat(self._memory, dim=1)
            if memory.shape[0] != batch:
                raise ValueError(
                    f'RL2Policy: the trial has {memory.shape[0]} parallel '
                    f'streams but the state has {batch}; reset() first')
        return torch.cat([state, memory], dim=1)

    def _step(self, states):
        """One recurrent step from memory states: logits, value and the
        new LSTM state."""
        obs, action, reward, h, c = states.split(
            [self.obs_dim, self.num_levels, 1, self.hidden_dim,
             self.hidden_dim], dim=1)
        x = self.encoder(torch.cat([obs, action, reward], dim=1))
        h, c = self.cell(x, (h, c))
        return self.logit_head(h), self.value_head(h).squeeze(-1), (h, c)

    @torch.no_grad()
    def select_action(self, state, deterministic=False):
        """Acts on a memory state and advances the memory.

        Args:
            state (Tensor): (B, :attr:`state_dim`) from :meth:`observe`.
            deterministic (bool): probability > 0.5 instead of sampling.

        Returns:
            tuple[Tensor, Tensor, Tensor]: action (B, L), its
            log-probability (B,) and the value (B,).
        """
        logits, value, (h, c) = self._step(state)
        action = ((logits > 0).float() if deterministic
                  else Bernoulli(logits=logits).sample())
        self._awaiting = (action, h, c)
        return action, Bernoulli(logits=logits).log_prob(action).sum(-1), value

    def feedback(self, reward):
        """The reward (B,) of the last action, seen by the next step."""
        action, h, c = self._awaiting
        self._awaiting = None
        reward = torch.as_tensor(reward, dtype=h.dtype, device=h.device)
        self._memory = (action, reward.view(-1, 1), h, c)

    def logits(self, states, actions=None):
        """(B, L) logits of memory states (``actions`` unused)."""
        return self._step(states)[0]

    def evaluate_actions(self, states, actions):
        """Log-probability, entropy and value of stored memory states, see
        :meth:`PolicyNetwork.evaluate_actions`."""
        logits, value, _ = self._step(states)
        dist = Bernoulli(logits=logits)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), value

    def forward(self, states, actions):
        return self.evaluate_actions(states, actions)
