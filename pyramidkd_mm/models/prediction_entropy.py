"""How sure a student is of each sample, from its own training forward."""
import math

import torch
import torch.nn.functional as F


class PredictionEntropy:
    """Per-sample entropy of a toolbox student's predictions, normalised by
    log(classes), read with forward hooks at no extra compute.

    The predictions are the classifier head's logits (mmpretrain), the
    decode head's pixel logits averaged over pixels (mmseg), or a two-stage
    detector's box-head class scores averaged over each image's sampled RoIs
    (mmdet). :meth:`take` returns those of the last forward.

    Args:
        student (nn.Module): the toolbox model.
    """

    def __init__(self, student):
        self._entropy = None
        self._roi_images = None
        roi_head = getattr(student, 'roi_head', None)
        if roi_head is not None and hasattr(roi_head, 'bbox_head'):
            roi_head.bbox_roi_extractor.register_forward_hook(
                lambda m, args, out: setattr(self, '_roi_images',
                                             args[1][:, 0].long()))
            roi_head.bbox_head.register_forward_hook(
                lambda m, args, out: self._record(out[0], self._roi_images))
        elif hasattr(student, 'decode_head'):
            # decode heads call self.forward() directly: hook their classifier
            student.decode_head.conv_seg.register_forward_hook(
                lambda m, args, out: self._record(out))
        elif hasattr(student, 'head'):
            student.head.register_forward_hook(
                lambda m, args, out: self._record(out))
        else:
            raise TypeError(
                'PredictionEntropy reads the predictions of an mmpretrain '
                'classifier (head), an mmseg segmentor (decode_head) or an '
                'mmdet two-stage detector (roi_head.bbox_head); '
                f'{type(student).__name__} has none of them')

    @torch.no_grad()
    def _record(self, logits, images=None):
        """Per-sample normalised entropy of (N, C[, H, W]) logits; with
        ``images``, N are RoIs averaged per image."""
        logits = logits.detach().float()
        entropy = -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1)
        entropy = entropy.flatten(1).mean(1) if entropy.dim() > 1 else entropy
        entropy = entropy / math.log(logits.shape[1])
        if images is not None:
            size = int(images.max()) + 1
            entropy = torch.zeros(size, device=logits.device).index_add_(
                0, images, entropy) / torch.bincount(
                    images, minlength=size).clamp_min(1)
        self._entropy = entropy

    def take(self, batch):
        """(batch,) entropies of the last forward (images without a sampled
        RoI count as sure: 0); each forward's values are taken once."""
        if self._entropy is None or len(self._entropy) > batch:
            raise RuntimeError('PredictionEntropy saw no prediction of the '
                               'student in this forward')
        entropy, self._entropy = self._entropy, None
        return F.pad(entropy, (0, batch - len(entropy)))
