"""Per-sample feature distillation losses.

Each loss maps a student and a teacher feature map of shape (N, C, H, W) to
one loss per sample (N,), so that the distiller can weight, mask and log
samples individually.
"""
from torch import nn

from ..registry import MODELS


def _standardize(x):
    """Zero mean, unit deviation per sample and channel (constant channels
    become zero)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), correction=0, keepdim=True)
    return (x - mean) / std.clamp_min(1e-6)


class _FeatureLoss(nn.Module):
    """Base: a per-sample loss scaled by ``loss_weight``."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight


@MODELS.register_module()
class NormalizedMSELoss(_FeatureLoss):
    """MSE of the maps divided by the teacher's standard deviation.

    The deviation is taken per sample over the teacher's whole
    map (channels and positions), so each level's loss is free of that level's
    activation scale and no level dominates the sum over levels; unlike
    per-channel statistics, dead teacher channels (constant zero after a ReLU)
    cannot blow the loss up.

    Args:
        loss_weight (float): factor on the loss.
    """

    def forward(self, student, teacher):
        std = teacher.std(dim=(1, 2, 3), correction=0, keepdim=True)
        diff = (student - teacher) / std.clamp_min(1e-4)
        return self.loss_weight * diff.pow(2).mean(dim=(1, 2, 3))


@MODELS.register_module()
class PearsonLoss(_FeatureLoss):
    """PKD-style loss: 1 - Pearson correlation of each channel, averaged.

    Invariant to each map's per-channel scale and shift (Cao et al., PKD,
    NeurIPS 2022), so a student with differently scaled features is not
    penalised for the scale, only for the spatial pattern.

    Args:
        loss_weight (float): factor on the loss.
    """

    def forward(self, student, teacher):
        s, t = _standardize(student), _standardize(teacher)
        corr = (s * t).mean(dim=(2, 3))
        return self.loss_weight * (1 - corr).mean(dim=1)
