"""What a training step's distillation achieved, for a learning selector:
kept at the step, measured once the optimiser has stepped."""
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch


def autocast_dtype(device_type):
    """The dtype autocast computes in on ``device_type`` now, or None."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except TypeError:  # torch < 2.4 has per-device functions
        if device_type == 'cpu' and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        if device_type == 'cuda' and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
    return None


@dataclass
class StepRecord:
    """What :class:`PyramidDistiller` keeps of a training step: its images,
    mask, per-sample level losses (detached float32), per-sample cost, the
    teacher pyramid and the autocast dtype of the forward (or None)."""
    inputs: torch.Tensor
    mask: torch.Tensor
    before: torch.Tensor
    cost: torch.Tensor
    teacher_feats: list
    autocast: Optional[torch.dtype]


@dataclass
class StepOutcome:
    """What a training step's distillation achieved: per-sample level
    losses (float32) in the training forward and recomputed after the
    optimiser step (None if the selector does not need them), and the
    teacher compute each sample used (a fraction of distilling every
    level)."""
    loss_before: torch.Tensor
    loss_after: Optional[torch.Tensor]
    cost: torch.Tensor


@torch.no_grad()
def measure_outcome(distiller, step):
    """The :class:`StepOutcome` of ``step`` (a :class:`StepRecord`).

    When the distiller's selector ``needs_after_pass``, the student's
    pyramid is recomputed on the step's images (its normalisation
    statistics are restored afterwards) under the training forward's
    autocast, so that both losses have the same precision; the teacher's is
    reused. Otherwise no pass is made and ``loss_after`` is None.
    """
    if not getattr(distiller.selector, 'needs_after_pass', True):
        return StepOutcome(step.before, None, step.cost)
    inputs = step.inputs
    precision = nullcontext() if step.autocast is None else \
        torch.autocast(inputs.device.type, dtype=step.autocast)
    with precision, distiller.kept_buffers(), \
            distiller.student_tap.capture() as feats:
        distiller.student.extract_feat(inputs)
        after = distiller.distill(inputs, feats[:len(distiller.levels)],
                                  step.mask, step.teacher_feats).losses
    return StepOutcome(step.before, after, step.cost)
