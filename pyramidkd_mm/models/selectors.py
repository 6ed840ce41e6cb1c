"""Layer selectors: which (sample, level) pairs are distilled in a step.

A selector maps the student's pyramid of a batch to a boolean mask of shape
(batch, levels). The distiller does no teacher, connector or loss work for
pairs the mask switches off. The distiller builds its selector with its level
names as ``levels``, the student's channels as ``level_channels`` (per
level) and ``top_channels`` (deepest backbone output), its
:class:`TeacherCost` as ``teacher_cost``, the student model as ``student``
and the teacher's :class:`PyramidTap` as ``teacher_tap``; a selector uses
what it needs. A selector draws its random choices inside ``with
self.rng:`` (:class:`RandomStream`), never from torch's global generator.
"""
import torch
from torch import nn

from ..registry import MODELS
from .random_stream import RandomStream


class LevelSelector(nn.Module):
    """Base of the selectors.

    Args:
        levels (Sequence[str]): the distiller's level names.
        level_channels (Sequence[int], optional): student channels per level.
        top_channels (int, optional): channels of the student's deepest
            backbone output.
        teacher_cost (TeacherCost, optional): the distiller's cost model.
        student (nn.Module, optional): the student model (not a submodule
            of the selector).
        teacher_tap (PyramidTap, optional): the teacher's pyramid (its
            model is not a submodule of the selector either).
        stream_seed (int, optional): seed of the random stream; None: the
            run's. Another value draws other choices beside the same
            student (batches, initial weights, dropout): two such runs of a
            seed differ only by chance in the selection, the noise floor of
            a paired comparison (an A/A control).
    """

    def __init__(self, levels, level_channels=None, top_channels=None,
                 teacher_cost=None, student=None, teacher_tap=None,
                 stream_seed=None):
        super().__init__()
        self.levels = tuple(levels)
        self.rng = RandomStream(torch.initial_seed() if stream_seed is None
                                else stream_seed)

    def get_extra_state(self):
        """The random stream, in the checkpoint: a resumed run draws what
        the uninterrupted one would have."""
        return self.rng.get_state()

    def set_extra_state(self, state):
        self.rng.set_state(state)

    @property
    def needs_outcome(self):
        """Whether the distiller must keep this step for :meth:`learn`."""
        return False

    def read_teacher(self, teacher_feats, mask, pixels):
        """Sees the teacher pyramid the step computed for ``mask``
        (:meth:`PyramidDistiller.distill`) from inputs of ``pixels`` pixels;
        returns the (batch,) teacher compute it spent besides, in
        :class:`TeacherCost`'s unit, or None."""
        return None

    def keep(self, losses):
        """Which of the distilled pairs train the student, seen their
        (batch, levels) distillation losses; None: all. Choosing here
        saves no teacher compute (the teacher ran on :meth:`forward`'s
        mask): only an oracle does it (:class:`GapOracleSelector`)."""
        return None

    def loss_weights(self):
        """Per-level weights of the distillation losses; None weighs all
        levels 1."""
        return None

    def all_levels(self, student_feats):
        """The mask that distills every level of every sample."""
        return torch.ones(student_feats[0].shape[0], len(self.levels),
                          dtype=torch.bool, device=student_feats[0].device)


@MODELS.register_module()
class UniformSelector(LevelSelector):
    """Distill every level of every sample."""

    def forward(self, student_feats, data_samples):
        return self.all_levels(student_feats)


@MODELS.register_module()
class FixedSelector(LevelSelector):
    """Distill one fixed subset of levels for all samples (NAS baselines).

    Args:
        mask (Sequence[int | bool] | Sequence[str]): one flag per level, or
            the names of the levels to distill.
        **kwargs: see :class:`LevelSelector`.
    """

    def __init__(self, mask, **kwargs):
        super().__init__(**kwargs)
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
