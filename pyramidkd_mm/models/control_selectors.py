"""The controls a learned selector must beat at the same spent compute: a
random selector and a teacher-free heuristic.

Random layer choice is about as good as any strategy in intermediate-layer
KD ("Layer-Selection Strategy Doesn't Matter (Much)", arXiv 2502.04499), and
distilling only the instances a student is least sure of matched full KD in
DynamicKD (EMNLP 2021). Both controls here spend an expected ``budget`` of
the teacher compute of uniform KD (:class:`TeacherCost`); a sample they do
not select never enters the teacher.
"""
import math

import torch
import torch.nn.functional as F

from ..registry import MODELS
from .selectors import LevelSelector


def _check_budget(budget):
    if not 0 <= budget <= 1:
        raise ValueError(f'budget {budget} must be in [0, 1]: a fraction of '
                         'the teacher compute of uniform KD')


def _count(batch, budget):
    """How many of ``batch`` samples to select: ``budget * batch`` rounded
    up or down at random, so that the expected fraction is ``budget``."""
    exact = budget * batch
    low = math.floor(exact)
    return low + int(torch.rand(()).item() < exact - low)


@MODELS.register_module()
class RandomSelector(LevelSelector):
    """Random (sample, level) choices with an expected teacher cost of
    ``budget``.

    Args:
        budget (float): expected teacher compute per sample, a fraction of
            uniform KD's.
        mode (str): ``'samples'``: each sample is distilled on every level
            with probability ``budget`` (a sample-level skip, where an FPN
            teacher's compute is); ``'levels'``: each (sample, level) pair
            independently with the one probability whose expected cost is
            ``budget``.
        **kwargs: see :class:`LevelSelector` (``teacher_cost`` is needed).
    """

    def __init__(self, budget, mode='samples', **kwargs):
        super().__init__(**kwargs)
        _check_budget(budget)
        if mode not in ('samples', 'levels'):
            raise ValueError(f"RandomSelector mode must be 'samples' or "
                             f"'levels', got {mode!r}")
        self.budget, self.mode = budget, mode
        self.probability = budget if mode == 'samples' else \
            self._level_probability(kwargs['teacher_cost'], budget)

    def _level_probability(self, teacher_cost, budget):
        """The p with ``teacher_cost.expected(p, ..., p) == budget``
        (bisection: the expected cost grows with p)."""
        low, high = 0.0, 1.0
        ones = teacher_cost.shared.new_ones(len(self.levels))
        for _ in range(40):
            mid = (low + high) / 2
            if teacher_cost.expected(mid * ones).item() < budget:
                low = mid
            else:
                high = mid
        return (low + high) / 2

    def forward(self, student_feats, data_samples):
        batch = student_feats[0].shape[0]
        device = student_feats[0].device
        if self.mode == 'samples':
            picked = torch.rand(batch, device=device) < self.probability
            return picked[:, None].expand(-1, len(self.levels))
        return torch.rand(batch, len(self.levels),
                          device=device) < self.probability


@MODELS.register_module()
class UncertaintySelector(LevelSelector):
    """Distill the samples the student is least sure of (DynamicKD-style),
    on every level, from what the student computes anyway.

    Uncertainty is the entropy of the student's predictions in its training
    forward, normalised by log(classes): of the classifier head's logits
    (mmpretrain), the mean over pixels of the decode head's (mmseg), or the
    mean over a detector's sampled RoIs of its box head's class scores
    (mmdet two-stage). Each step selects the ``budget`` fraction of the batch
    with the highest entropy (rounded at random so that the expected
    fraction is ``budget``), so the expected teacher cost is ``budget``.

    Args:
        budget (float): fraction of the samples to distill.
        **kwargs: see :class:`LevelSelector` (``student`` is needed).
    """

    def __init__(self, budget, **kwargs):
        super().__init__(**kwargs)
        _check_budget(budget)
        self.budget = budget
        self._entropy = None
        self._roi_images = None
        self._watch(kwargs['student'])

    def _watch(self, student):
        """Forward hooks on the student's prediction head."""
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
                'UncertaintySelector reads the predictions of an mmpretrain '
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

    def forward(self, student_feats, data_samples):
        batch = student_feats[0].shape[0]
        if self._entropy is None or len(self._entropy) > batch:
            raise RuntimeError('UncertaintySelector saw no prediction of the '
                               'student in this forward')
        entropy, self._entropy = self._entropy, None
        # images without a sampled RoI (a detector's padding) count as sure
        entropy = F.pad(entropy, (0, batch - len(entropy)))
        mask = torch.zeros(batch, dtype=torch.bool, device=entropy.device)
        mask[entropy.argsort(descending=True)[:_count(batch, self.budget)]] \
            = True
        return mask[:, None].expand(-1, len(self.levels))
