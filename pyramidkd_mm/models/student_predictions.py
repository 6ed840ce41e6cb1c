"""A student's class predictions per sample, read from its own training
forward at no extra compute."""
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


def head_kind(model, role):
    """Where a toolbox model's class predictions are: ``'roi'`` (an mmdet
    two-stage detector's box head), ``'dense'`` (an mmseg decode head) or
    ``'image'`` (an mmpretrain classifier head)."""
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is not None and hasattr(roi_head, 'bbox_head'):
        return 'roi'
    if hasattr(model, 'decode_head'):
        return 'dense'
    if hasattr(model, 'head'):
        return 'image'
    raise TypeError(
        f'{role} reads the predictions of an mmpretrain classifier (head), '
        'an mmseg segmentor (decode_head) or an mmdet two-stage detector '
        f'(roi_head.bbox_head); {type(model).__name__} has none of them')


@dataclass
class Predictions:
    """The class predictions of one forward of ``batch`` samples.

    Attributes:
        logits (Tensor): (N, C[, H, W]) float32, detached: one row per
            sample (classifier, segmentor) or per RoI (two-stage detector).
        batch (int): the number of samples.
        rois (Tensor, optional): (N, 5) the RoIs of a detector's rows, each
            ``(sample, x1, y1, x2, y2)``.
    """
    logits: torch.Tensor
    batch: int
    rois: Optional[torch.Tensor] = None

    def rows_per_sample(self):
        """(batch,) how many rows each sample has (a detector's RoIs)."""
        if self.rois is None:
            return torch.ones(self.batch, dtype=torch.long,
                              device=self.logits.device)
        return torch.bincount(self.rois[:, 0].long(), minlength=self.batch)

    def per_sample(self, values):
        """(batch,) mean of (N[, H, W]) ``values`` per sample; samples
        without a row (a detector's image without RoIs) get 0."""
        values = values.flatten(1).mean(1) if values.dim() > 1 else values
        if self.rois is None:
            return F.pad(values, (0, self.batch - len(values)))
        return values.new_zeros(self.batch).index_add_(
            0, self.rois[:, 0].long(), values) / \
            self.rows_per_sample().clamp_min(1)

    def entropy(self):
        """(batch,) prediction entropy, normalised by log(classes)."""
        entropy = -(F.softmax(self.logits, 1)
                    * F.log_softmax(self.logits, 1)).sum(1)
        return self.per_sample(entropy / math.log(self.logits.shape[1]))

    def of_samples(self, samples):
        """The predictions of the (K,) sample indices ``samples``, in that
        order, as a batch of K (RoIs renumbered)."""
        if self.rois is None:
            return Predictions(self.logits[samples], len(samples))
        position = samples.new_full((self.batch, ), -1)
        position[samples] = torch.arange(len(samples), device=samples.device)
        image = position[self.rois[:, 0].long()]
        keep = image >= 0
        rois = torch.cat([image[keep, None].to(self.rois.dtype),
                          self.rois[keep, 1:]], dim=1)
        return Predictions(self.logits[keep], len(samples), rois)


class StudentPredictions:
    """Reads a toolbox student's class predictions with forward hooks.

    The predictions are the classifier head's logits (mmpretrain), the
    decode head's pixel logits (mmseg), or a two-stage detector's box-head
    class scores of its sampled RoIs (mmdet). :meth:`take` returns those of
    the last forward.

    Args:
        student (nn.Module): the toolbox model.
    """

    def __init__(self, student):
        self._logits = self._rois = None
        kind = head_kind(student, 'StudentPredictions')
        if kind == 'roi':
            student.roi_head.bbox_roi_extractor.register_forward_hook(
                lambda m, args, out: setattr(self, '_rois', args[1].detach()))
            student.roi_head.bbox_head.register_forward_hook(
                lambda m, args, out: self._record(out[0]))
        elif kind == 'dense':
            # decode heads call self.forward() directly: hook their classifier
            student.decode_head.conv_seg.register_forward_hook(
                lambda m, args, out: self._record(out))
        else:
            student.head.register_forward_hook(
                lambda m, args, out: self._record(out))

    def _record(self, logits):
        self._logits = logits.detach().float()

    def take(self, batch):
        """The :class:`Predictions` of the last forward of ``batch``
        samples; each forward's predictions are taken once."""
        logits, self._logits = self._logits, None
        if logits is None or (self._rois is None and len(logits) > batch):
            raise RuntimeError('StudentPredictions saw no prediction of the '
                               'student in this forward')
        return Predictions(logits, batch, self._rois)
