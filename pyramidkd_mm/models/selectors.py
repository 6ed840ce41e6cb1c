"""Layer selectors: which (sample, level) pairs are distilled in a step.

A selector maps the student's pyramid of a batch to a boolean mask of shape
(batch, levels). The distiller does no teacher, connector or loss work for
pairs the mask switches off. The distiller builds its selector with its level
names as ``levels``.
"""
import torch
from torch import nn

from ..registry import MODELS


@MODELS.register_module()
class UniformSelector(nn.Module):
    """Distill every level of every sample.

    Args:
        levels (Sequence[str]): the distiller's level names.
    """

    def __init__(self, levels):
        super().__init__()
        self.levels = tuple(levels)

    def forward(self, student_feats, data_samples):
        batch = student_feats[0].shape[0]
        return torch.ones(batch, len(self.levels), dtype=torch.bool,
                          device=student_feats[0].device)


@MODELS.register_module()
class FixedSelector(nn.Module):
    """Distill one fixed subset of levels for all samples (NAS baselines).

    Args:
        levels (Sequence[str]): the distiller's level names.
        mask (Sequence[int | bool] | Sequence[str]): one flag per level, or
            the names of the levels to distill.
    """

    def __init__(self, levels, mask):
        super().__init__()
        self.levels = tuple(levels)
        if all(isinstance(m, str) for m in mask):
            unknown = set(mask) - set(self.levels)
            if unknown:
                raise ValueError(f'FixedSelector mask names {sorted(unknown)}'
                                 f' are not levels of the distiller '
                                 f'{self.levels}')
            flags = [name in mask for name in self.levels]
        elif len(mask) == len(self.levels):
            flags = [bool(m) for m in mask]
        else:
            raise ValueError(
                f'FixedSelector mask {list(mask)} has {len(mask)} flags but '
                f'the distiller has {len(self.levels)} levels {self.levels}')
        self.register_buffer('flags', torch.tensor(flags), persistent=False)

    def forward(self, student_feats, data_samples):
        return self.flags.expand(student_feats[0].shape[0], -1)
