"""The controls a learned selector must beat at the same spent compute: a
random selector (optionally after RL-KD's uniform warm-up), a teacher-free
heuristic and an early stop of uniform KD.

Random layer choice is about as good as any strategy in intermediate-layer
KD ("Layer-Selection Strategy Doesn't Matter (Much)", arXiv 2502.04499), and
distilling only the instances a student is least sure of matched full KD in
DynamicKD (EMNLP 2021). Both controls here spend an expected ``budget`` of
the teacher compute of uniform KD (:class:`TeacherCost`); a sample they do
not select never enters the teacher.
"""
import math

import torch
from mmengine.logging import MessageHub

from ..registry import MODELS
from .student_predictions import StudentPredictions
from .selectors import LevelSelector


class BudgetSelector(LevelSelector):
    """A control that spends ``budget`` of uniform KD's teacher compute.

    With ``warmup``, every sample is distilled for that first fraction of
    the training iterations and the choices after it spend what is left,
    ``rate = (budget - warmup) / (1 - warmup)`` a sample: RL-KD's schedule
    (a uniform phase 1, then the budget paid back) with the control's
    choices in place of the policy's, the control for whether the policy's
    choices add anything to its schedule. The iteration comes from the
    Runner (see :func:`_run_progress`), so a resumed run continues the
    schedule.

    With ``importance``, a distilled pair weighs ``1 / probability`` (its
    probability of being chosen; ``rate`` unless a subclass says otherwise)
    after the warm-up: without it the level losses are sums over the
    distilled samples divided by the batch size, so distilling a fraction
    ``rate`` of the samples distills at ``rate`` times uniform KD's
    strength.
    """

    def __init__(self, budget, warmup=0., importance=False, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= budget <= 1:
            raise ValueError(f'budget {budget} must be in [0, 1]: a fraction '
                             'of the teacher compute of uniform KD')
        if not 0 <= warmup <= budget or warmup == 1:
            raise ValueError(f'{type(self).__name__} warmup {warmup} must be '
                             f'in [0, budget={budget}] and below 1: the '
                             'warm-up distills every sample, so it spends '
                             'its length')
        self.budget = budget
        self.warmup = warmup
        self.rate = (budget - warmup) / (1 - warmup)
        self.importance = importance
        self.probability = self.rate

    def loss_weights(self):
        if not self.importance or self.warming_up() or not self.probability:
            return None
        return torch.full((len(self.levels), ), 1 / self.probability)

    def warming_up(self):
        """Whether this training iteration is in the warm-up."""
        if not self.warmup:
            return False
        now, total = _run_progress(self)
        return now < self.warmup * total

    def top(self, scores, highest=True):
        """(batch,) mask of the ``rate`` fraction of the samples with the
        highest ``scores`` (or lowest), the count rounded at random so that
        the expected fraction is ``rate``."""
        mask = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
        with self.rng:
            count = _count(len(scores), self.rate)
        mask[scores.argsort(descending=highest)[:count]] = True
        return mask


def _run_progress(selector):
    """(iteration, training iterations) of the Runner that trains
    ``selector``: ``RuntimeInfoHook`` keeps them in mmengine's MessageHub,
    so a resumed run continues the schedule."""
    hub = MessageHub.get_current_instance()
    now, total = hub.get_info('iter'), hub.get_info('max_iters')
    if now is None or total is None:
        raise RuntimeError(
            f'{type(selector).__name__} reads the training iteration that '
            "mmengine's Runner keeps in the MessageHub (RuntimeInfoHook); "
            'train it with a Runner, or set the infos iter and max_iters')
    return now, total


def _count(batch, budget):
    """How many of ``batch`` samples to select: ``budget * batch`` rounded
    up or down at random, so that the expected fraction is ``budget``."""
    exact = budget * batch
    low = math.floor(exact)
    return low + int(torch.rand(()).item() < exact - low)


@MODELS.register_module()
class RandomSelector(BudgetSelector):
    """Random (sample, level) choices with an expected teacher cost of
    ``budget``.

    With ``warmup`` (see :class:`BudgetSelector`), random choices after a
    uniform warm-up. With ``importance`` (see :class:`BudgetSelector`) the
    distillation loss is an unbiased (Horvitz-Thompson) estimate of uniform
    KD's.

    Args:
        budget (float): expected teacher compute per sample, a fraction of
            uniform KD's.
        mode (str): ``'samples'``: each sample is distilled on every level
            with probability ``budget`` (a sample-level skip, where an FPN
            teacher's compute is); ``'levels'``: each (sample, level) pair
            independently with the one probability whose expected cost is
            ``budget``.
        warmup (float): fraction of the training iterations in which every
            sample is distilled, at most ``budget``.
        importance (bool): weigh the distilled pairs by the inverse of
            their probability.
        **kwargs: see :class:`LevelSelector` (``teacher_cost`` is needed).
    """

    def __init__(self, budget, mode='samples', warmup=0., importance=False,
                 **kwargs):
        super().__init__(budget, warmup, importance, **kwargs)
        if mode not in ('samples', 'levels'):
            raise ValueError(f"RandomSelector mode must be 'samples' or "
                             f"'levels', got {mode!r}")
        self.mode = mode
        if mode == 'levels':
            self.probability = self._level_probability(
                kwargs['teacher_cost'], self.rate)

    def _level_probability(self, teacher_cost, cost):
        """The p with ``teacher_cost.expected(p, ..., p) == cost``
        (bisection: the expected cost grows with p)."""
        low, high = 0.0, 1.0
        ones = teacher_cost.shared.new_ones(len(self.levels))
        for _ in range(40):
            mid = (low + high) / 2
            if teacher_cost.expected(mid * ones).item() < cost:
                low = mid
            else:
                high = mid
        return (low + high) / 2

    def forward(self, student_feats, data_samples):
        batch = student_feats[0].shape[0]
        device = student_feats[0].device
        if self.warming_up():
            return self.all_levels(student_feats)
        with self.rng:
            if self.mode == 'samples':
                picked = torch.rand(batch, device=device) < self.probability
                return picked[:, None].expand(-1, len(self.levels))
            return torch.rand(batch, len(self.levels),
                              device=device) < self.probability


@MODELS.register_module()
class UncertaintySelector(BudgetSelector):
    """Distill the samples the student is least sure of (DynamicKD-style),
    on every level, from what the student computes anyway.

    Uncertainty is :meth:`Predictions.entropy`: the entropy of the student's
    predictions in its training forward (classifier, segmentor or two-stage
    detector). Each step selects the ``budget`` fraction of the batch with
    the highest entropy (rounded at random so that the expected fraction is
    ``budget``), so the expected teacher cost is ``budget``. With
    ``warmup`` (see :class:`BudgetSelector`), the same after a uniform
    warm-up, at the rate that leaves. ``pick='sure'`` takes the lowest
    entropy instead: the opposite heuristic, which says on which side of
    random samples the student's certainty points.

    Args:
        budget (float): fraction of the samples to distill.
        warmup (float): fraction of the training iterations in which every
            sample is distilled, at most ``budget``.
        pick (str): ``'unsure'`` (highest entropy) or ``'sure'``.
        importance (bool): weigh the distilled samples by ``1 / rate``
            (see :class:`BudgetSelector`).
        **kwargs: see :class:`LevelSelector` (``student`` is needed).
    """

    def __init__(self, budget, warmup=0., pick='unsure', importance=False,
                 **kwargs):
        super().__init__(budget, warmup, importance, **kwargs)
        if pick not in ('unsure', 'sure'):
            raise ValueError(f"UncertaintySelector pick must be 'unsure' or "
                             f"'sure', got {pick!r}")
        self.pick = pick
        self.predictions = StudentPredictions(kwargs['student'])

    def forward(self, student_feats, data_samples):
        batch = student_feats[0].shape[0]
        # taken every step: the hooks keep one batch of predictions
        entropy = self.predictions.take(batch).entropy()
        if self.warming_up():
            return self.all_levels(student_feats)
        mask = self.top(entropy, highest=self.pick == 'unsure')
        return mask[:, None].expand(-1, len(self.levels))


@MODELS.register_module()
class EarlySelector(BudgetSelector):
    """Uniform KD for the first ``budget`` of the training iterations, then
    the student alone: the budget spent by time instead of by sample.

    RL-KD's phase 1 distills every sample for a fifth of the run, so at a
    small budget a learned selector is mostly this schedule; it is the
    control for the question whether the selection added anything. The
    iteration and the run's length come from the Runner
    (``RuntimeInfoHook`` keeps them in mmengine's ``MessageHub``), so a
    resumed run continues the schedule.

    Args:
        budget (float): fraction of the training iterations distilled.
        **kwargs: see :class:`LevelSelector`.
    """

    def __init__(self, budget, **kwargs):
        super().__init__(budget, warmup=0., **kwargs)  # it is all warm-up

    def forward(self, student_feats, data_samples):
        now, total = _run_progress(self)
        on = now < self.budget * total
        return torch.full((student_feats[0].shape[0], len(self.levels)), on,
                          dtype=torch.bool, device=student_feats[0].device)
