"""The teacher's class predictions where the student made its own, from the
teacher pyramid a step already computed: how much the two disagree, and what
the teacher's head cost for it."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch import nn

from .student_predictions import head_kind


@dataclass
class Disagreement:
    """Per sample: ``kl`` the mean KL(teacher || student) of the class
    predictions, ``cost`` the teacher head's FLOPs for it as a fraction of
    distilling every level of the sample (:class:`TeacherCost`'s unit)."""
    kl: torch.Tensor
    cost: torch.Tensor


class _Head(nn.Module):
    """The teacher's class logits from its pyramid; a module, so that
    mmengine's FLOP analysis can trace it."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.kind = head_kind(teacher, 'TeacherPredictions')

    def forward(self, feats, rois=None):
        teacher = self.teacher
        if self.kind == 'roi':
            extractor = teacher.roi_head.bbox_roi_extractor
            pooled = extractor(tuple(feats[:extractor.num_inputs]), rois)
            return teacher.roi_head.bbox_head(pooled)[0]
        if self.kind == 'dense':
            return teacher.decode_head(list(feats))
        feats = tuple(feats)
        if teacher.with_neck:
            feats = teacher.neck(feats)
        return teacher.head(feats)


class TeacherPredictions:
    """Runs the teacher's head on its pyramid where the student predicted:
    a two-stage detector's box head on the student's sampled RoIs, a
    segmentor's decode head, a classifier's head.

    The head's FLOPs are counted once by mmengine's ``FlopAnalyzer``: per
    RoI for a detector, on the probe image otherwise (a decode head's scale
    with the image like the pyramid's, a classifier head's do not). The
    analyser does not count mmcv's RoIAlign, so a detector's cost is an
    underestimate (``benchmark_kd.py`` measures the time).

    Args:
        tap (PyramidTap): the teacher's pyramid; its levels must be what the
            head reads (an FPN's outputs, a backbone's stages).
        teacher_cost (TeacherCost): the unit of the cost.
        num_levels (int): the pyramid levels the distiller computes.
        probe_size (int): side of the image the FLOPs are counted on.
    """

    def __init__(self, tap, teacher_cost, num_levels, probe_size=64):
        probe = torch.zeros(1, 3, probe_size, probe_size)
        self.head = _Head(tap.model)
        self.per_pixel = teacher_cost.flops_per_pixel
        if self.head.kind == 'roi':
            extractor = tap.model.roi_head.bbox_roi_extractor
            size = extractor.roi_layers[0].output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            pooled = probe.new_zeros(1, extractor.out_channels, *size)
            analysis = FlopAnalyzer(tap.model.roi_head.bbox_head, (pooled, ))
            needed = extractor.num_inputs
        else:
            with torch.no_grad(), tap.capture() as feats:
                tap.model.extract_feat(probe)
            needed = len(feats)
            analysis = FlopAnalyzer(self.head, (tuple(feats), ))
        if num_levels < needed:
            raise ValueError(
                f'the teacher head reads {needed} pyramid levels but the '
                f'distiller computes {num_levels}: distill every level the '
                'head reads to measure the disagreement')
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        self.flops = float(analysis.total())
        self.probe_pixels = probe[0, 0].numel()

    @torch.no_grad()
    def disagreement(self, student, feats, pixels):
        """How far the student's predictions are from the teacher's.

        Args:
            student (Predictions): the student's predictions of the samples
                whose teacher pyramid ``feats`` holds, in the same order.
            feats (Sequence[Tensor]): the teacher's levels of those samples.
            pixels (int): pixels of an input image (the pyramid's cost).

        Returns:
            Disagreement: float32, (samples,).
        """
        teacher = self.head(feats, student.rois).float()
        size = student.logits.shape[2:]
        if teacher.dim() == 4 and teacher.shape[2:] != size:
            teacher = F.interpolate(teacher, size, mode='bilinear',
                                    align_corners=False)
        log_t = F.log_softmax(teacher, 1)
        kl = (log_t.exp() * (log_t - F.log_softmax(student.logits, 1))).sum(1)
        # one head pass per RoI of a detector, one per sample otherwise
        flops = student.rows_per_sample().float() * self.flops
        if self.head.kind != 'dense':  # a fraction of the pyramid at `pixels`
            flops = flops * self.probe_pixels / pixels
        return Disagreement(student.per_sample(kl),
                            flops / (self.per_pixel * self.probe_pixels))
