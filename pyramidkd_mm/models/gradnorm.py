"""GradNorm (Chen et al., ICML 2018): adaptive weights for a set of losses.

Each balanced loss L_i gets a weight w_i. After every update the weights are
moved so that the weighted gradient norms G_i = w_i·||∇_W L_i|| on a shared
layer W approach mean(G)·r_i^α, where r_i is task i's relative inverse
training rate (L_i/L_i(0) over its mean across tasks): tasks that have
trained less, relative to where they started, get larger gradients.
"""
import logging

import torch
from mmengine.dist import all_reduce
from mmengine.logging import print_log
from torch import nn

from ..registry import MODELS


@MODELS.register_module()
class GradNorm(nn.Module):
    """GradNorm loss balancer over a named set of losses.

    Call it with the losses and the parameters of a shared layer; it returns
    Σ w_i·L_i with the weights detached (the network learns only through the
    L_i) and updates the weights:

    1. L_i(0) is the loss at the first update in which task i is present, so
       a task absent at the first call gets its L_i(0) when it first appears
       (until then it keeps its initial weight 1).
    2. ||∇_W L_i|| is taken with ``torch.autograd.grad(L_i, W,
       retain_graph=True)`` and detached. The GradNorm loss
       L_grad = Σ|G_i − target_i|, target_i = mean(G)·r_i^α held constant as
       in the paper, depends on w_i only through G_i = w_i·||∇_W L_i||, so its
       gradient sign(G_i − target_i)·||∇_W L_i|| needs the norm as a constant
       only: no ``create_graph`` through the network, which also sidesteps
       PyTorch's broken higher-order gradients under DDP. Norms and losses
       are read in float32, so losses from an autocast region are fine; a
       non-finite value (fp16 overflow) skips the update with a warning,
       like GradScaler, counted in ``nonfinite_updates``.
    3. The weights take an Adam step on that gradient, are clamped at
       ``min_weight`` and rescaled so that Σw = T, the number of names;
       negative weights are impossible.

    Absent tasks: a task is present when its name is in ``losses`` and its
    loss requires grad and is non-zero; a level no sample selected in this
    batch comes as an exact zero and carries no signal. Absent tasks keep
    their weight and Adam state; the update, the ratios r_i and the
    renormalisation run over the present tasks, whose sum is restored to
    T − Σ(absent weights).

    Distributed: under an initialised process group with more than one rank,
    the present flags, losses and gradient norms are summed over ranks before
    the update, and each task's loss and norm are averaged over the ranks
    where it is present, so every rank computes the same weights. Every rank
    must therefore make the same calls with the same ``update``. Pass the
    unwrapped module's parameters as ``shared_params``: ``autograd.grad``
    neither accumulates ``.grad`` nor fires DDP's reduction hooks.

    Gradient accumulation: with ``update=True`` (default) the weights move on
    every call, i.e. on every micro-batch. To move them once per optimiser
    step, pass ``update=optim_wrapper.should_sync()`` (True on the last
    micro-batch of an accumulation window); calls with ``update=False``
    compute no gradient norms and make no collective call. In mmengine's
    Runner, :class:`LossBalancerHook` does this for the distiller.

    Checkpoints: the weights are a parameter and L_i(0), the initialised
    flags and the Adam state are buffers, so the model's ``state_dict``
    carries them and ``--resume`` continues exactly, with no hook. The
    weights do not require grad, so the model's optimiser never changes them
    and DDP does not count them as unused parameters.

    Shared layer for FPN distillation: the top lateral conv of the student's
    FPN (``neck.lateral_convs[-1]``, the 1x1 conv on C5). Every FPN output
    P_i is the top-down sum of the laterals above it, so this is the layer
    closest to the outputs that all P-level losses pass through (the
    per-level ``fpn_convs`` are not shared), and it is small, so the T extra
    backward passes stay cheap. For backbone-stage distillation (C2-C5) only
    the stem and the first stage feed every level: use the last block of
    the first stage (e.g. ``backbone.layer1[-1]``).

    Args:
        names (Sequence[str]): names of the balanced losses, e.g.
            ``('loss_distill_p2', 'loss_distill_p3')``.
        alpha (float): asymmetry; larger pulls lagging tasks harder.
        lr (float): Adam learning rate of the weights.
        min_weight (float): floor on a weight before renormalisation.
        betas (tuple[float, float]): Adam's moment decay rates.
        eps (float): Adam's denominator term.
    """

    def __init__(self,
                 names,
                 alpha=1.5,
                 lr=1e-2,
                 min_weight=1e-3,
                 betas=(0.9, 0.999),
                 eps=1e-8):
        super().__init__()
        self.names = tuple(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f'GradNorm needs distinct names, got {names}')
        # mmengine's parse_losses sums every logged key containing 'loss'
        # into the total loss, so the weight keys must not contain it.
        self.log_keys = tuple(
            'gradnorm_w_' + n.removeprefix('loss_') for n in self.names)
        bad = [k for k in self.log_keys if 'loss' in k]
        if bad:
            raise ValueError(f'log keys {bad} contain "loss", which mmengine '
                             'would add to the total loss; rename the losses')
        self.alpha = alpha
        self.lr = lr
        self.min_weight = min_weight
        self.betas = betas
        self.eps = eps
        num = len(self.names)
        self.weights = nn.Parameter(torch.ones(num), requires_grad=False)
        self.register_buffer('initial_losses', torch.zeros(num))
        self.register_buffer('initialized', torch.zeros(num, dtype=torch.bool))
        # per-task Adam state: absent tasks must not take momentum steps
        self.register_buffer('adam_steps', torch.zeros(num))
        self.register_buffer('exp_avg', torch.zeros(num))
        self.register_buffer('exp_avg_sq', torch.zeros(num))
        self.nonfinite_updates = 0  # skipped for non-finite statistics

    def forward(self, losses, shared_params, update=True):
        """Weight the losses and, if ``update``, update the weights.

        Args:
            losses (dict[str, Tensor]): scalar losses keyed by a subset of
                ``names``; each must be positive where present.
            shared_params (Iterable[Tensor]): parameters of the shared layer.
            update (bool): whether to update the weights in this call.

        Returns:
            tuple[Tensor, dict[str, Tensor]]: Σ w_i·L_i over the given losses
            (weights as before this call's update, detached), and the weights
            used, keyed ``gradnorm_w_<name without 'loss_'>``, for every name.
        """
        unknown = set(losses) - set(self.names)
        if unknown:
            raise KeyError(f'losses {sorted(unknown)} are not among the '
                           f'balanced names {self.names}')
        weights = self.weights.detach().clone()
        total = weights.new_zeros(())
        for i, name in enumerate(self.names):
            if name in losses:
                total = total + weights[i] * losses[name]
        if update:
            self._update(losses, [p for p in shared_params if p.requires_grad])
        return total, dict(zip(self.log_keys, weights))

    def _update(self, losses, params):
        # rows: present flag, loss, gradient norm; summed over ranks below
        stats = self.weights.new_zeros(3, len(self.names))
        for i, name in enumerate(self.names):
            loss = losses.get(name)
            if loss is None or not loss.requires_grad or loss.detach() == 0:
                continue
            grads = torch.autograd.grad(
                loss, params, retain_graph=True, allow_unused=True)
            sq = stats.new_zeros(())
            for g in grads:
                if g is not None:
                    sq = sq + g.detach().float().pow(2).sum()
            stats[0, i] = 1
            stats[1, i] = loss.detach().float()
            stats[2, i] = sq.sqrt()
        all_reduce(stats)  # a no-op outside distributed training
        present = stats[0] > 0
        if not stats.isfinite().all():
            self.nonfinite_updates += 1
            print_log('GradNorm: non-finite loss or gradient norm; weights '
                      f'not updated ({self.nonfinite_updates} skipped so far)',
                      logger='current', level=logging.WARNING)
            return
        if not present.any():
            return
        count = stats[0, present]
        loss, norm = stats[1, present] / count, stats[2, present] / count
        new = present & ~self.initialized
        self.initial_losses[new] = stats[1, new] / stats[0, new]
        self.initialized |= present

        ratio = loss / self.initial_losses[present]
        target = (self.weights[present] * norm).mean() * (
            ratio / ratio.mean()).pow(self.alpha)
        grad = torch.sign(self.weights[present] * norm - target) * norm
        self._adam_step(grad, present)

        rest = self.weights[~present].sum()
        w = self.weights[present].clamp(min=self.min_weight)
        self.weights[present] = w * (len(self.names) - rest) / w.sum()

    def _adam_step(self, grad, present):
        """Adam on the present weights only, with per-task step counts."""
        beta1, beta2 = self.betas
        self.adam_steps[present] += 1
        steps = self.adam_steps[present]
        m = self.exp_avg[present] * beta1 + grad * (1 - beta1)
        v = self.exp_avg_sq[present] * beta2 + grad.pow(2) * (1 - beta2)
        self.exp_avg[present] = m
        self.exp_avg_sq[present] = v
        m_hat = m / (1 - beta1**steps)
        v_hat = v / (1 - beta2**steps)
        self.weights[present] -= self.lr * m_hat / (v_hat.sqrt() + self.eps)
