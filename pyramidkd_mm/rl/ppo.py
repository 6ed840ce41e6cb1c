"""Proximal Policy Optimization (Schulman et al., 2017) for
:class:`~pyramidkd_mm.rl.PolicyNetwork`.

One :meth:`PPOTrainer.update` consumes a filled
:class:`~pyramidkd_mm.rl.RolloutBuffer` (advantages already computed) and
takes ``epochs`` passes over it in shuffled minibatches, minimising

    - min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)
    + value_coef * (V - returns)^2 - entropy_coef * entropy

where ``ratio = pi(a|s) / pi_old(a|s)``.

Distributed use: every rank collects its own rollouts into its own buffer
and calls :meth:`PPOTrainer.update` on it. When ``torch.distributed`` is
initialised with more than one process, call :meth:`PPOTrainer.sync_policy`
once the policy is on its device (it broadcasts rank 0's weights); the
trainer averages the gradients over ranks before each optimiser step
(:meth:`PPOTrainer.all_reduce_gradients`), so the policies stay identical on
all ranks. All ranks must therefore run the same
number of minibatches per update (same buffer and minibatch sizes). Do not
also wrap the policy in DDP, or the gradients are averaged twice.
"""
import logging
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import nn


def _world_size():
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class PPOTrainer:
    """Clipped-surrogate PPO updates of a policy.

    Args:
        policy (nn.Module): has ``evaluate_actions(states, actions)`` ->
            (log_prob, entropy, value), like ``PolicyNetwork``.
        lr (float): Adam's learning rate (ignored if ``optimizer`` is given).
        clip (float): clipping range of the probability ratio.
        value_coef (float): weight of the value loss (MSE to the returns).
        entropy_coef (float): weight of the entropy bonus.
        max_grad_norm (float): gradients are clipped to this global norm.
        epochs (int): passes over the buffer per update.
        minibatch_size (int): transitions per minibatch.
        normalize_advantages (bool): standardise the advantages over the
            whole buffer (not per minibatch, whose last one may hold a single
            transition).
        optimizer (torch.optim.Optimizer, optional): defaults to Adam over
            the policy's parameters with ``eps=1e-5``.
    """

    def __init__(self, policy, lr=3e-4, clip=0.2, value_coef=0.5,
                 entropy_coef=0.01, max_grad_norm=0.5, epochs=4,
                 minibatch_size=64, normalize_advantages=True,
                 optimizer=None):
        self.policy = policy
        self.clip = clip
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.max_grad_norm = max_grad_norm
        self.epochs = epochs
        self.minibatch_size = minibatch_size
        self.normalize_advantages = normalize_advantages
        self.optimizer = optimizer or torch.optim.Adam(
            policy.parameters(), lr=lr, eps=1e-5)
        self.nonfinite_steps = 0

    def sync_policy(self):
        """Broadcasts rank 0's policy weights; a no-op on a single process."""
        if _world_size() > 1:
            for param in self.policy.parameters():
                dist.broadcast(param.data, src=0)

    def update(self, buffer):
        """Runs the PPO epochs over ``buffer``.

        Args:
            buffer (RolloutBuffer): full, with advantages computed.

        Returns:
            dict[str, float]: ``policy_loss``, ``value_loss``, ``entropy``,
            ``clip_fraction`` (share of ratios outside the clip range) and
            ``approx_kl`` (the ``(ratio - 1) - log ratio`` estimator of
            KL(old || new)), averaged over minibatches; and
            ``explained_variance`` of the returns by the rollout's values.
        """
        advantages = buffer.advantages
        adv_mean = advantages.mean()
        # The std of a single transition is nan: leave it unscaled then.
        adv_std = (advantages.std() if advantages.numel() > 1
                   else advantages.new_tensor(1.0))
        totals = dict.fromkeys(('policy_loss', 'value_loss', 'entropy',
                                'clip_fraction', 'approx_kl'), 0.0)
        num_minibatches = 0
        for _ in range(self.epochs):
            for batch in buffer.minibatches(self.minibatch_size):
                stats = self._step(batch, adv_mean, adv_std)
                for key, value in stats.items():
                    totals[key] += value
                num_minibatches += 1
        # No stale gradients: an optimiser that also holds the policy (the
        # Runner's, when the policy lives in the model) must skip it.
        self.optimizer.zero_grad(set_to_none=True)
        metrics = {k: v / num_minibatches for k, v in totals.items()}
        metrics['explained_variance'] = _explained_variance(
            buffer.values, buffer.returns)
        return metrics

    def _step(self, batch, adv_mean, adv_std):
        """One gradient step on one minibatch; returns its statistics."""
        log_prob, entropy, value = self.policy.evaluate_actions(
            batch['states'], batch['actions'])
        advantages = batch['advantages']
        if self.normalize_advantages:
            advantages = (advantages - adv_mean) / (adv_std + 1e-8)
        loss = clipped_surrogate(log_prob, entropy, value, batch['log_probs'],
                                 advantages, batch['returns'], self.clip,
                                 self.value_coef, self.entropy_coef)

        self.optimizer.zero_grad()
        loss.total.backward()
        self.all_reduce_gradients()
        # Identical on every rank after the reduction, so all skip together.
        norm = nn.utils.clip_grad_norm_(self.policy.parameters(),
                                        self.max_grad_norm)
        if norm.isfinite():
            self.optimizer.step()
        else:
            self.nonfinite_steps += 1
            print_log('PPOTrainer: non-finite policy gradient; minibatch '
                      f'skipped ({self.nonfinite_steps} so far)',
                      logger='current', level=logging.WARNING)
        return loss.stats()

    def all_reduce_gradients(self):
        """Averages the policy's gradients over all ranks; a no-op without
        ``torch.distributed`` or with a single process. Called between
        ``backward()`` and the optimiser step; override to customise."""
        world_size = _world_size()
        if world_size == 1:
            return
        for param in self.policy.parameters():
            if not param.requires_grad:
                continue
            if param.grad is None:  # keep the collectives aligned on ranks
                param.grad = torch.zeros_like(param)
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= world_size

    def state_dict(self):
        """The optimiser's state; the policy's weights are saved with the
        model that owns it."""
        return dict(optimizer=self.optimizer.state_dict())

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict['optimizer'])


@dataclass
class SurrogateLoss:
    """PPO's loss and its parts (see :func:`clipped_surrogate`)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor

    def stats(self):
        """The parts as floats, named as :meth:`PPOTrainer.update` logs
        them."""
        return dict(policy_loss=self.policy.item(),
                    value_loss=self.value.item(), entropy=self.entropy.item(),
                    clip_fraction=self.clip_fraction.item(),
                    approx_kl=self.approx_kl.item())


def clipped_surrogate(log_prob, entropy, value, old_log_prob, advantages,
                      returns, clip=0.2, value_coef=0.5, entropy_coef=0.01):
    """PPO's clipped-surrogate loss of a batch of transitions (see the
    module docstring); differentiable in the policy's outputs to any order,
    so meta-learning can differentiate through steps on it.

    Args:
        log_prob, entropy, value (Tensor): (N,) the policy's outputs for the
            stored actions (``evaluate_actions``).
        old_log_prob (Tensor): (N,) log-probabilities of the policy that
            collected the actions.
        advantages (Tensor): (N,) already normalised if wanted.
        returns (Tensor): (N,) value targets.

    Returns:
        SurrogateLoss: the total and its parts; ``clip_fraction`` and
        ``approx_kl`` carry no gradient.
    """
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - clip, 1 + clip)
    policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    value_loss = F.mse_loss(value, returns)
    entropy = entropy.mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > clip).float().mean()
    return SurrogateLoss(
        total=policy_loss + value_coef * value_loss - entropy_coef * entropy,
        policy=policy_loss, value=value_loss, entropy=entropy,
        clip_fraction=clip_fraction, approx_kl=approx_kl)


def _explained_variance(predictions, targets):
    """1 - Var(targets - predictions) / Var(targets); nan if the targets are
    constant."""
    var = targets.var()
    if var == 0:
        return float('nan')
    return (1 - (targets - predictions).var() / var).item()
