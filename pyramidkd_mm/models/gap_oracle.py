"""An oracle of per-sample choice, to measure whether choosing samples can
pay at all on a task.

It distills the samples on which the student is farthest from the teacher,
which only the teacher can tell: the teacher runs on every sample, so it
spends uniform KD's compute and is no contender at a budget. Against random
samples that distill as many samples (after the same warm-up), its lead is
the headroom of choice: what a teacher-free selector, a learned one
included, could gain at most by knowing where distillation has most to
teach. With ``pick='near'`` it takes the nearest samples instead, the other
side of the same question.
"""
from ..registry import MODELS
from .control_selectors import BudgetSelector


@MODELS.register_module()
class GapOracleSelector(BudgetSelector):
    """Distill the ``budget`` fraction of each batch with the largest
    distillation loss (summed over the levels), seen after the teacher ran
    on the whole batch.

    Its spent teacher compute is uniform KD's (the teacher runs on every
    sample); ``budget`` is the fraction of the samples whose distillation
    trains the student, as the count of :class:`UncertaintySelector`. With
    ``warmup`` (see :class:`BudgetSelector`), every sample trains for that
    first fraction of the run and the rate after it is what the budget
    leaves, as for the controls.

    Args:
        budget (float): fraction of the samples distilled.
        warmup (float): fraction of the training iterations in which every
            sample is distilled, at most ``budget``.
        pick (str): ``'far'`` (largest loss) or ``'near'`` (smallest).
        importance (bool): weigh the distilled samples by ``1 / rate``
            (see :class:`BudgetSelector`).
        **kwargs: see :class:`LevelSelector`.
    """

    def __init__(self, budget, warmup=0., pick='far', importance=False,
                 **kwargs):
        super().__init__(budget, warmup, importance, **kwargs)
        if pick not in ('far', 'near'):
            raise ValueError(f"GapOracleSelector pick must be 'far' or "
                             f"'near', got {pick!r}")
        self.pick = pick

    def forward(self, student_feats, data_samples):
        return self.all_levels(student_feats)  # the teacher sees them all

    def keep(self, losses):
        if self.warming_up():
            return None
        kept = self.top(losses.sum(1), highest=self.pick == 'far')
        return kept[:, None].expand_as(losses)
