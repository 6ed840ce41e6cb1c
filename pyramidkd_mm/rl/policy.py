"""Actor-critic policy that picks a subset of pyramid levels per sample.

Each of ``num_levels`` decisions is a Bernoulli variable (1 = distill the
level). The MLP variant decides all levels independently from the state; the
recurrent variant runs an LSTM over the level sequence, so decision ``l`` is
conditioned on decisions ``0..l-1``. A separate critic maps the state to a
value. Nothing here is specific to distillation: with ``num_levels=1`` the
same network is a two-action policy (e.g. CartPole left/right).

With ``logit_offset`` the state's last entry is not an input but a shift
added to every logit, which the caller sets (:func:`offset_for_rate`, as
``RLSelector(calibrate=True)`` does) so that the decisions are positive at
a paced rate: the policy then learns which states to choose, not how
many. PPO re-scores stored states with the
offset they were acted on, so its ratios stay exact.
"""
import math

import torch
from torch import nn
from torch.distributions import Bernoulli

from ..registry import MODELS

# Input token of the recurrent decoder at the first level; at the later ones
# it is the previous decision (0 = skipped, 1 = selected).
START = 2


def _linear(in_dim, out_dim, gain=math.sqrt(2)):
    """Orthogonally initialised linear layer (the usual PPO initialisation;
    small ``gain`` on the logit head keeps the first policy near uniform)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(in_dim, hidden_dim):
    return nn.Sequential(
        _linear(in_dim, hidden_dim), nn.Tanh(),
        _linear(hidden_dim, hidden_dim), nn.Tanh())


@MODELS.register_module()
class PolicyNetwork(nn.Module):
    """Bernoulli-per-level actor with a value head.

    Args:
        state_dim (int): size of the state vector, see :meth:`state_dim_for`.
        num_levels (int): number of binary decisions per state.
        hidden_dim (int): width of the hidden layers and of the LSTM.
        recurrent (bool): decide the levels in sequence with an LSTM, each
            decision conditioned on the previous ones. Default: False.
        logit_offset (bool): the last of the ``state_dim`` entries is added
            to every logit instead of being read by the networks.
            Default: False.
    """

    def __init__(self, state_dim, num_levels=4, hidden_dim=256,
                 recurrent=False, logit_offset=False):
        super().__init__()
        self.state_dim = state_dim
        self.num_levels = num_levels
        self.recurrent = recurrent
        self.logit_offset = logit_offset
        inputs = state_dim - int(logit_offset)
        self.encoder = _mlp(inputs, hidden_dim)
        if recurrent:
            self.token_embed = nn.Embedding(3, hidden_dim)
            self.lstm = nn.LSTM(2 * hidden_dim, hidden_dim, batch_first=True)
            self.logit_head = _linear(hidden_dim, 1, gain=0.01)
        else:
            self.logit_head = _linear(hidden_dim, num_levels, gain=0.01)
        # The critic shares nothing with the actor, so the value loss cannot
        # disturb the policy's features.
        self.critic = nn.Sequential(
            _mlp(inputs, hidden_dim), _linear(hidden_dim, 1, gain=1.0))

    @staticmethod
    def state_dim_for(global_dim, level_dims, num_levels=None):
        """Size of the distillation state.

        The state is the pooled global feature, the pooled feature of each
        level, the current distill loss (1), the levels selected so far
        (``num_levels``) and the budget remaining (1). At the seed's sizes,
        ``state_dim_for(512, 256, 4) == 1542``.

        Args:
            global_dim (int): channels of the pooled global feature.
            level_dims (int | Sequence[int]): channels of each pooled level
                feature; one int means the same for all levels.
            num_levels (int, optional): number of levels; required when
                ``level_dims`` is an int.

        Returns:
            int: the state dimension.
        """
        if isinstance(level_dims, int):
            if num_levels is None:
                raise ValueError('num_levels is required when level_dims is '
                                 'an int')
            level_dims = [level_dims] * num_levels
        return global_dim + sum(level_dims) + 1 + len(level_dims) + 1

    def _recurrent_logits(self, features, tokens, hidden=None):
        """Runs the LSTM over ``tokens`` (B, S); returns logits (B, S) and the
        LSTM state. ``features`` (B, H) is fed at every step."""
        steps = tokens.shape[1]
        inputs = torch.cat([
            features.unsqueeze(1).expand(-1, steps, -1),
            self.token_embed(tokens)], dim=-1)
        outputs, hidden = self.lstm(inputs, hidden)
        return self.logit_head(outputs).squeeze(-1), hidden

    @staticmethod
    def _choose(logits, deterministic):
        if deterministic:
            return (logits > 0).float()  # probability > 0.5
        return Bernoulli(logits=logits).sample()

    @torch.no_grad()
    def select_action(self, state, deterministic=False):
        """Picks levels for a batch of states (no gradients; rollouts only).

        Args:
            state (Tensor): (B, state_dim).
            deterministic (bool): select a level iff its probability is
                above 0.5 instead of sampling.

        Returns:
            tuple[Tensor, Tensor, Tensor]: action (B, L) of 0./1. floats,
            its log-probability (B,) and the state value (B,).
        """
        state, offset = self._split(state)
        features = self.encoder(state)
        if self.recurrent:
            token = state.new_full((state.shape[0], 1), START,
                                   dtype=torch.long)
            hidden, logits, actions = None, [], []
            for _ in range(self.num_levels):
                logit, hidden = self._recurrent_logits(features, token, hidden)
                logit = logit + offset
                action = self._choose(logit, deterministic)
                token = action.long()
                logits.append(logit)
                actions.append(action)
            logits, action = torch.cat(logits, 1), torch.cat(actions, 1)
        else:
            logits = self.logit_head(features) + offset
            action = self._choose(logits, deterministic)
        log_prob = Bernoulli(logits=logits).log_prob(action).sum(-1)
        return action, log_prob, self.critic(state).squeeze(-1)

    def logits(self, states, actions=None):
        """Logit of each decision given the earlier decisions in
        ``actions`` (teacher forcing), e.g. for selection-rate plots.

        Args:
            states (Tensor): (B, state_dim).
            actions (Tensor, optional): (B, L) of 0./1.; required by the
                recurrent variant, ignored by the MLP.

        Returns:
            Tensor: (B, L) logits.
        """
        states, offset = self._split(states)
        features = self.encoder(states)
        if not self.recurrent:
            return self.logit_head(features) + offset
        if actions is None:
            raise ValueError('the recurrent policy needs the actions whose '
                             'decisions it conditions on')
        start = actions.new_full((actions.shape[0], 1), START)
        tokens = torch.cat([start, actions[:, :-1]], dim=1).long()
        return self._recurrent_logits(features, tokens)[0] + offset

    def value(self, states):
        """(B,) the critic's value of the states."""
        return self.critic(self._split(states)[0]).squeeze(-1)

    def _split(self, states):
        """The networks' inputs and the (B, 1) logit offset (0 without
        ``logit_offset``)."""
        if not self.logit_offset:
            return states, 0.0
        return states[:, :-1], states[:, -1:]

    def evaluate_actions(self, states, actions):
        """Scores stored actions under the current policy (PPO update).

        Args:
            states (Tensor): (B, state_dim).
            actions (Tensor): (B, L) of 0./1.

        Returns:
            tuple[Tensor, Tensor, Tensor]: log-probability (B,), entropy (B,)
            and value (B,). For the recurrent variant the entropy is the sum
            of the conditional entropies along the given actions, an unbiased
            estimate of the joint entropy.
        """
        dist = Bernoulli(logits=self.logits(states, actions))
        return (dist.log_prob(actions).sum(-1), dist.entropy().sum(-1),
                self.value(states))

    def forward(self, states, actions):
        """Same as :meth:`evaluate_actions`, so wrappers such as DDP that
        call the module see the gradient path."""
        return self.evaluate_actions(states, actions)


def offset_for_rate(logits, rate, steps=50):
    """The one shift ``b`` with ``sigmoid(logits + b).mean() == rate``
    (bisection on the device, no host syncs: the mean grows with ``b``);
    ``rate`` is clamped to [1e-4, 1 - 1e-4] so that ``b`` is finite.

    Returns:
        Tensor: 0-dim float32 ``b``.
    """
    logits = logits.detach().float()
    rate = torch.as_tensor(rate, dtype=torch.float32,
                           device=logits.device).clamp(1e-4, 1 - 1e-4)
    low, high = -30 - logits.max(), 30 - logits.min()
    for _ in range(steps):
        mid = (low + high) / 2
        below = (logits + mid).sigmoid().mean() < rate
        low = torch.where(below, mid, low)
        high = torch.where(below, high, mid)
    return (low + high) / 2
