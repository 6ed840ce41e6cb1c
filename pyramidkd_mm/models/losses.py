"""Per-sample feature distillation losses.

Each loss maps a student and a teacher feature map of shape (N, C, H, W) to
one loss per sample (N,), so that the distiller can weight, mask and log
samples individually. Statistics are taken per sample and channel over the
spatial positions.
"""
import torch
from torch import nn

from ..registry import MODELS


def _standardize(x, mean, std, eps=1e-6):
    return (x - mean) / (std + eps)


def _moments(x):
    return (x.mean(dim=(2, 3), keepdim=True),
            x.std(dim=(2, 3), correction=0, keepdim=True))


@MODELS.register_module()
class NormalizedMSELoss(nn.Module):
    """MSE after normalising both maps with the teacher's statistics.

    The student must match the teacher's per-channel layout up to the
    teacher's own scale, so channels with large activations do not dominate.

    Args:
        loss_weight (float): factor on the loss.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student, teacher):
        mean, std = _moments(teacher)
        diff = _standardize(student, mean, std) - _standardize(
            teacher, mean, std)
        return self.loss_weight * diff.pow(2).mean(dim=(1, 2, 3))


@MODELS.register_module()
class PearsonLoss(nn.Module):
    """PKD-style loss: 1 - Pearson correlation of each channel, averaged.

    Invariant to each map's per-channel scale and shift (Cao et al., PKD,
    NeurIPS 2022), so a student with differently scaled features is not
    penalised for the scale, only for the spatial pattern.

    Args:
        loss_weight (float): factor on the loss.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student, teacher):
        s = _standardize(student, *_moments(student))
        t = _standardize(teacher, *_moments(teacher))
        corr = (s * t).mean(dim=(2, 3))
        return self.loss_weight * (1 - corr).mean(dim=1)
