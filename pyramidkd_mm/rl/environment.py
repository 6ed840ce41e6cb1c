"""The distillation MDP: which pyramid levels of a sample to distill.

An episode is one training sample. The policy makes the sample's level
decisions in sequence (the recurrent policy conditions each on the earlier
ones) and the episode ends with the last level, so for PPO an episode is a
single transition whose action holds one flag per level, and its advantage is
``reward - value``. The environment is batched: one :meth:`step` scores every
sample of a training iteration.

The dynamics are the student's training step, which the Runner performs
between :meth:`reset` (state, before the step) and :meth:`step` (the measured
outcome, after it). The reward of sample ``i`` is

    g_i = sum_{l selected} (L_il(before) - L_il(after)) / scale_l
    r_i = g_i / gain_scale + lam * (target - cost_i)

``L_il(before)`` is the level's distillation loss in the training forward,
``L_il(after)`` the same loss recomputed right after the optimiser step with
the updated student on the same images and the same (cached) teacher
features, so ``g_i`` is the real improvement that distilling bought in this
step, at the price of one no-grad student feature pass and no teacher work
(``reward='gain'``). ``reward='gap'`` takes ``L_il(after) = 0``: the gain is
the student's distance from the teacher on what was distilled, read from
the training forward at no extra cost (the policy learns which samples,
seen by the student alone, are furthest from the teacher per unit of
compute). ``reward='disagreement'`` pays for a distilled sample the KL
between the teacher's and the student's class predictions on it (see
:class:`TeacherPredictions`: the teacher's head runs on the pyramid the
step computed, and its compute is part of ``cost_i``), so the gain is
measured where the user's metric is, not in feature space.
``scale_l`` is the running mean of level ``l``'s loss, which makes the gains
relative and comparable across levels; ``gain_scale`` is the running mean of
``|g_i|`` over samples with a selected level, so a typical gain is worth
about 1 whatever the task and the stage of training. ``cost_i`` is the
teacher compute the sample used as a fraction of distilling every level, so
the second term pays ``lam`` per unit of compute left under the budget and
charges it when over. With a fixed ``lam`` the budget would only shift every
reward by a constant, which PPO's advantages ignore; so ``lam`` is a Lagrange
multiplier by default: after every step it moves by ``lam_lr`` times the
step's cost in excess of the budget (never below zero), raising the price of
compute while the policy overspends and lowering it while it saves, until
the cost settles at the budget. ``lam_lr=0`` keeps ``lam`` fixed.

With ``centered`` there is no price: a distilled sample is paid its gain
minus the mean gain of the step's distilled samples (over ranks), in units
of ``gain_scale``, and a skipped one 0. For a policy whose rate is set
elsewhere (:class:`RLSelector`'s ``calibrate``) the rewards then say only
which samples gained more than the others, so PPO has no reason to move
every logit at once.

``budget`` is what the whole run may spend, phases without a policy (RL-KD's
uniform warm-up) included. :meth:`pace` turns it into the step's
``target``: what is left of the run's budget spread over what is left of the
run, so a warm-up that distilled everything, or a policy that overspent,
is paid back by spending less later. The target stands in for ``budget`` in
the reward, the dual update and the state; without :meth:`pace` it is the
budget.

Running statistics (loss, selection rate per level, cost used) are averaged
over all ranks before they are updated, so states agree across DDP ranks.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .policy import PolicyNetwork


def _global_mean(total, count):
    """Sums ``total`` and ``count`` over ranks in one collective; returns
    total / count and the summed count."""
    if dist.is_available() and dist.is_initialized():
        packed = torch.cat([total.flatten(), count.flatten()])
        dist.all_reduce(packed)
        total, count = packed[:total.numel()], packed[total.numel():]
    return total / count.clamp_min(1), count


class DistillationEnvironment(nn.Module):
    """Batched per-sample level-selection environment.

    The state of a sample is the concatenation of: its pooled global feature
    (the student's deepest backbone output), its pooled student pyramid
    levels, the current distillation loss (running mean per selected level),
    the levels selected so far in training (running selection rate per
    level) and the budget remaining (``target`` minus the running cost).
    Each pooled feature block is layer-normalised, so the policy sees
    feature patterns, not their scale. The size is
    :meth:`state_dim` of the channels.

    Args:
        num_levels (int): number of pyramid levels L.
        budget (float): teacher compute per sample the run may spend, as a
            fraction of distilling every level (see :meth:`pace`).
        reward (str): ``'gain'``, ``'gap'`` or ``'disagreement'`` (see the
            module).
        lam (float): initial reward per unit of compute saved below the
            budget.
        lam_lr (float): step of ``lam``'s dual update; 0 keeps it fixed.
        momentum (float): weight of the past in the running statistics.
        num_signals (int): per-sample signals S of :meth:`reset`.
        standardize_signals (bool): subtract the signals' running mean and
            divide by their running std (over training batches and ranks),
            so that a signal whose spread is small (an entropy varies by a
            few hundredths across samples) moves the policy as much as the
            layer-normalised features do.
        pooled_features (bool): whether the state holds the pooled
            features; without them it is the statistics and the signals
            (a policy of a few inputs, e.g. a threshold on the entropy).
        centered (bool): rewards relative to the step's mean gain, without
            the price of compute (see the module). Default: False.
    """

    REWARDS = ('gain', 'gap', 'disagreement')

    def __init__(self, num_levels, budget=0.5, lam=1.0, lam_lr=0.01,
                 momentum=0.9, reward='gain', num_signals=0,
                 standardize_signals=False, pooled_features=True,
                 centered=False):
        super().__init__()
        if not 0 < budget <= 1:
            raise ValueError(f'budget {budget} must be in (0, 1]: a fraction'
                             ' of the compute of distilling every level')
        if reward not in self.REWARDS:
            raise ValueError(f'reward must be one of {self.REWARDS}, got '
                             f'{reward!r}')
        self.reward = reward
        self.num_levels = num_levels
        self.budget = budget
        self.lam_lr = lam_lr
        self.momentum = momentum
        self.register_buffer('lam', torch.tensor(float(lam)))
        self.register_buffer('loss_mean', torch.zeros(1))
        self.register_buffer('level_scale', torch.ones(num_levels))
        self.register_buffer('gain_scale', torch.ones(1))
        self.register_buffer('select_rate', torch.ones(num_levels))
        self.register_buffer('cost_mean', torch.ones(1))
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))
        self.standardize_signals = standardize_signals
        self.pooled_features = pooled_features
        self.centered = centered
        self.register_buffer('signal_mean', torch.zeros(num_signals))
        self.register_buffer('signal_var', torch.ones(num_signals))
        self.register_buffer('signal_batches',
                             torch.zeros((), dtype=torch.long))
        # recomputed by pace() before every step it applies to
        self.register_buffer('target', torch.tensor([float(budget)]),
                             persistent=False)

    def state_dim(self, top_channels, level_channels):
        """Size of :meth:`reset`'s states for a student with these
        channels."""
        if not self.pooled_features:
            top_channels, level_channels = 0, [0] * self.num_levels
        return PolicyNetwork.state_dim_for(
            top_channels, level_channels, self.num_levels) \
            + len(self.signal_mean)

    def pace(self, spent, progress):
        """Sets the step's ``target`` so that the run ends at ``budget``.

        Args:
            spent (Tensor): (2,) this rank's teacher compute spent so far
                and its number of samples (:class:`PyramidDistiller`'s
                ``spent``); averaged over ranks.
            progress (float): fraction of the run's iterations done, < 1.
        """
        if not 0 <= progress < 1:
            raise ValueError(f'progress {progress} must be in [0, 1)')
        used, _ = _global_mean(spent[:1].float(), spent[1:].float())
        left = (self.budget - used * progress) / (1 - progress)
        self.target.copy_(left.clamp(0, 1))

    def reset(self, top, levels, signals=None):
        """States of a batch of new episodes.

        Args:
            top (Tensor): (B, G, H, W) deepest backbone output.
            levels (Sequence[Tensor]): the L student pyramid levels.
            signals (Tensor, optional): (B, S) per-sample signals appended
                to the state (e.g. the student's prediction entropy).

        Returns:
            Tensor: (B, state_dim) float32 states.
        """
        pooled = [F.layer_norm(f.detach().float().mean((2, 3)), f.shape[1:2])
                  for f in (top, *levels)] if self.pooled_features else []
        batch = top.shape[0]
        stats = torch.cat([self.loss_mean, self.select_rate,
                           self.target - self.cost_mean])
        extra = [] if signals is None else [self._standardized(signals)]
        return torch.cat(pooled + [stats.expand(batch, -1)] + extra, dim=1)

    @torch.no_grad()
    def _standardized(self, signals):
        """(B, S) float32 signals, standardised when asked; training
        batches update the running moments first."""
        signals = signals.float()
        if not self.standardize_signals:
            return signals
        if self.training:
            count = signals.new_tensor([float(len(signals))])
            moments, _ = _global_mean(
                torch.cat([signals.sum(0), (signals ** 2).sum(0)]),
                count.expand(2 * signals.shape[1]).contiguous())
            mean, square = moments.chunk(2)
            m = 0.0 if self.signal_batches.item() == 0 else self.momentum
            self.signal_mean.mul_(m).add_((1 - m) * mean)
            self.signal_var.mul_(m).add_(
                (1 - m) * (square - mean ** 2).clamp_min(0))
            self.signal_batches += 1
        return (signals - self.signal_mean) / (self.signal_var.sqrt() + 1e-6)

    @torch.no_grad()
    def step(self, actions, loss_before, loss_after, cost,
             disagreement=None):
        """Scores the episodes of :meth:`reset` once the student stepped.

        Args:
            actions (Tensor): (B, L) selected levels (0/1).
            loss_before (Tensor): (B, L) distillation losses in the training
                forward (zero where not selected).
            loss_after (Tensor | None): (B, L) the same after the optimiser
                step; for ``reward='gain'`` only.
            cost (Tensor): (B,) teacher compute used, see
                :class:`TeacherCost`.
            disagreement (Tensor | None): (B,) teacher-student KL of the
                distilled samples; for ``reward='disagreement'`` only.

        Returns:
            tuple[Tensor, Tensor, dict]: rewards (B,), dones (B,) (all ones:
            every episode ends here) and ``info`` with ``selected`` (B, L),
            ``distill_loss`` (B,), ``gain`` (B,), ``cost_used``,
            ``cost_saved`` and ``lam`` (B,), the price used.
        """
        selected = actions.float()
        first = self.steps.item() == 0
        level_mean, counts = _global_mean(loss_before.sum(0), selected.sum(0))
        seen = counts > 0
        if first:  # level scales start at the first observed losses
            self.level_scale[seen] = level_mean[seen].clamp_min(1e-6)
        any_level = selected.amax(1)
        if self.reward == 'disagreement':
            if disagreement is None:
                raise ValueError("reward='disagreement' needs the step's "
                                 'teacher-student disagreement')
            gain = disagreement.float() * any_level
        else:
            change = loss_before if self.reward == 'gap' else \
                loss_before - loss_after
            gain = self.relative_gain(change, selected)
        gain_mean, _ = _global_mean((gain.abs() * any_level).sum().view(1),
                                    any_level.sum().view(1))
        if first and gain_mean > 0:
            self.gain_scale.copy_(gain_mean)
        if self.centered:
            step_mean, _ = _global_mean((gain * any_level).sum().view(1),
                                        any_level.sum().view(1))
            rewards = (gain - step_mean) * any_level / self.gain_scale
        else:
            rewards = (gain / self.gain_scale
                       + self.lam * (self.target - cost))
        info = dict(selected=actions.bool(), distill_loss=loss_before.sum(1),
                    gain=gain, cost_used=cost, cost_saved=1 - cost,
                    lam=self.lam.expand_as(rewards).clone())
        self._update(level_mean, seen, gain_mean, selected, cost, first)
        return rewards, torch.ones_like(rewards), info

    def relative_gain(self, change, selected):
        """(B,) ``g_i``: the (B, L) loss ``change`` summed over the
        ``selected`` levels, each relative to its running loss scale; the
        reward pays it in units of ``gain_scale``."""
        return (change * selected / self.level_scale).sum(1)

    def _update(self, level_mean, seen, gain_mean, selected, cost, first):
        """Moves the running statistics towards this step's (global)
        values; levels no rank selected keep their loss scale, and a step
        without any gain keeps the gain scale."""
        m = 0.0 if first else self.momentum
        batch = selected.new_tensor([selected.shape[0]])
        stats = torch.cat([selected.sum(0), cost.sum().view(1)])
        stats, _ = _global_mean(stats, batch)
        self.select_rate.mul_(m).add_((1 - m) * stats[:-1])
        self.cost_mean.mul_(m).add_((1 - m) * stats[-1:])
        scale = torch.where(seen, level_mean, self.level_scale)
        self.level_scale.mul_(m).add_((1 - m) * scale.clamp_min(1e-6))
        loss = level_mean[seen].mean() if seen.any() else self.loss_mean[0]
        self.loss_mean.mul_(m).add_((1 - m) * loss)
        if gain_mean > 0:
            self.gain_scale.mul_(m).add_((1 - m) * gain_mean)
        self.lam.add_(self.lam_lr * (stats[-1] - self.target[0]))
        self.lam.clamp_(min=0)
        self.steps += 1
