"""The pyramid distiller: a student trained with its own losses plus per-level
feature distillation from a frozen teacher, on the levels a selector picks."""
import logging
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel

from ..registry import MODELS
from .pyramid import PyramidTap
from .step_outcome import StepRecord, autocast_dtype, measure_outcome
from .teacher import build_teacher
from .teacher_cost import TeacherCost
from .wiring import build_connectors, check_normalization


@dataclass
class Distillation:
    """The distillation losses of a batch.

    Attributes:
        losses (Tensor): (batch, levels) per-sample losses in float32, zero
            where a pair is not distilled.
        teacher_feats (list): the teacher pyramid they were computed
            against (see :meth:`PyramidTap.extract`), reusable for the same
            inputs and mask.
        dropped (Tensor): (batch, levels) selected pairs left out because
            the teacher's features were not finite.
    """
    losses: torch.Tensor
    teacher_feats: list
    dropped: torch.Tensor


@MODELS.register_module()
class PyramidDistiller(BaseModel):
    """Distills a frozen teacher's feature pyramid into a student.

    The student computes its own toolbox losses unchanged; its pyramid is
    read on the way. The selector marks the (sample, level) pairs to
    distill and only those are computed: the teacher runs only on samples
    with a selected level and only as far as their levels need
    (:meth:`PyramidTap.extract`); each connector and loss runs on its
    selected samples. ``loss_distill_<level>`` sums over selected samples
    divided by the batch size (a uniform mask gives the batch mean). Also
    logged: ``sel_<level>`` (rate of pairs that trained), ``cost_<level>``
    (teacher compute dropping the level would save), ``distill_cost``
    (teacher compute this batch spent, 1 = every level; plus the head's
    for a selector reading the teacher's predictions) and
    ``distill_cost_mean`` (the same over every sample since the start,
    checkpointed: loggers see only every interval-th batch).

    Precision: costs and per-sample losses are float32 also under autocast.
    Non-finite values never train the student: pairs with non-finite
    teacher features are left out, and a step whose distillation loss is
    still not finite trains without distillation; both warn and are
    counted in ``distill_nonfinite``.

    Args:
        student (dict): the toolbox model config of the student.
        teacher (dict): ``config`` (path of the teacher's config) and
            ``checkpoint`` (its weights, see :func:`build_teacher`).
        levels (Sequence[str]): names of the distilled levels, mapped in order
            onto the pyramid (FPN outputs or backbone stages, shallowest
            first), e.g. ``('p2', 'p3', 'p4', 'p5')``.
        distill_loss (dict): per-sample feature loss config.
        selector (dict): layer selector config, built with ``levels``.
        loss_balancer (dict, optional): e.g. ``dict(type='GradNorm')``,
            built with the level loss names; it reweights the level losses
            and updates when ``balancer_update`` is True (under gradient
            accumulation, :class:`LossBalancerHook` keeps it to optimiser
            steps).
        balance_layer (str, optional): the student module the balancer
            takes gradient norms on; by default the C5 lateral conv of an
            FPN (every P level passes it) or the first backbone stage.
        source (str): pyramid source, see :class:`PyramidTap`.
        probe_size (int): side of the dummy image used at build time to check
            that teacher and student levels line up and to size connectors.
        data_preprocessor (dict, optional): merged into the student config
            as the Runner does for a plain model; the distiller uses the
            student's preprocessor.
    """

    def __init__(self,
                 student,
                 teacher,
                 levels=('p2', 'p3', 'p4', 'p5'),
                 distill_loss=dict(type='PearsonLoss'),
                 selector=dict(type='UniformSelector'),
                 loss_balancer=None,
                 balance_layer=None,
                 source='auto',
                 probe_size=64,
                 data_preprocessor=None,
                 init_cfg=None):
        # The preprocessor the Runner hands over is the student's, exactly as
        # for a plain student model; the distiller shares that module.
        student = dict(student)
        if data_preprocessor is not None:
            student.setdefault('data_preprocessor', data_preprocessor)
        student = MODELS.build(student)
        super().__init__(data_preprocessor=student.data_preprocessor,
                         init_cfg=init_cfg)
        self.levels = tuple(levels)
        self.student = student
        self.teacher = build_teacher(teacher['config'],
                                     teacher.get('checkpoint'))
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.student_tap = PyramidTap(self.student, source, 'student')
        self.teacher_tap = PyramidTap(self.teacher, source, 'teacher')
        check_normalization(self.data_preprocessor,
                            self.teacher.data_preprocessor)
        own_scope = dict(_scope_='pyramidkd_mm')
        self.distill_loss = MODELS.build(distill_loss, default_args=own_scope)
        self.balancer = None
        self.balancer_update = True  # set per iteration by LossBalancerHook
        if loss_balancer is not None:
            self.balancer = MODELS.build(loss_balancer, default_args=dict(
                names=[f'loss_distill_{n}' for n in self.levels],
                **own_scope))
            self.balance_layer = balance_layer or (
                f'neck.lateral_convs.{len(student.neck.lateral_convs) - 1}'
                if self.student_tap.source == 'neck' else
                f'backbone.{student.backbone.res_layers[0]}')
            student.get_submodule(self.balance_layer)  # fail early if wrong
        probe = torch.zeros(1, 3, probe_size, probe_size)
        self.connectors, channels = build_connectors(
            self.levels, self.student_tap, self.teacher_tap, probe)
        self.teacher_cost = TeacherCost(self.teacher_tap, probe,
                                        len(self.levels))
        self.selector = MODELS.build(selector, default_args=dict(
            levels=self.levels, level_channels=channels[:len(self.levels)],
            top_channels=channels.top, teacher_cost=self.teacher_cost,
            student=self.student, teacher_tap=self.teacher_tap, **own_scope))
        # A learned selector is trained by its own optimiser (e.g. PPO, in
        # sync on all ranks), not through the distillation loss: DDP must not
        # wait for its gradients.
        self._ddp_params_and_buffers_to_ignore = [
            f'selector.{name}' for name, _ in self.selector.named_parameters()]
        self._outcome = None  # the step a learning selector is rewarded on
        # teacher compute spent since the start of training, samples
        self.register_buffer('spent', torch.zeros(2, dtype=torch.float64))
        self.nonfinite_steps = 0

    def train(self, mode=True):
        """Switch the student only: the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _warn_nonfinite(self, what, count):
        self.nonfinite_steps += 1
        print_log(f'PyramidDistiller: {count} {what}; left out of this '
                  f'step ({self.nonfinite_steps} steps so far)',
                  logger='current', level=logging.WARNING)

    def loss(self, inputs, data_samples, weigh_samples=None):
        """The student's losses plus the level losses.

        Args:
            weigh_samples (callable, optional): maps the (batch,) per-sample
                distillation losses (summed over levels) to per-sample
                weights on them, e.g. :class:`MetaWeightNet`.
        """
        with self.student_tap.capture() as student_feats:
            losses = self.student.loss(inputs, data_samples)
        mask = self.selector(student_feats, data_samples).bool()
        result = self.distill(inputs, student_feats[:len(self.levels)], mask)
        per_sample, batch = result.losses, mask.shape[0]
        nonfinite = int(result.dropped.sum())
        if nonfinite:
            self._warn_nonfinite('pairs with non-finite teacher features',
                                 nonfinite)
        distilled = per_sample
        if not per_sample.isfinite().all():
            # Its backward would spread NaN over every row of the batch.
            count = int((~per_sample.isfinite()).sum())
            nonfinite += count
            self._warn_nonfinite('non-finite distillation losses', count)
            distilled = per_sample.new_zeros(per_sample.shape)
        cost = self.teacher_cost(mask)
        extra = self.selector.read_teacher(result.teacher_feats, mask,
                                           inputs[0, 0].numel())
        if extra is not None:
            cost = cost + extra
        if self.selector.needs_outcome:
            self._outcome = StepRecord(
                inputs, mask, per_sample.detach(), cost, result.teacher_feats,
                autocast_dtype(inputs.device.type))
        kept = self.selector.keep(distilled.detach())
        if kept is not None:  # chosen after the teacher ran: nothing saved
            mask = mask & kept
            distilled = distilled * kept
        if weigh_samples is not None:
            distilled = distilled * weigh_samples(distilled.sum(1))[:, None]
        # A gate search's gates or a random selector's inverse
        # probabilities weight the levels (detached: gates learn by the
        # hypergradient, not through the training loss).
        weights = self.selector.loss_weights()
        saved = self.teacher_cost.marginal(mask)
        for j, name in enumerate(self.levels):
            losses[f'loss_distill_{name}'] = distilled[:, j].sum() / batch
            if weights is not None:
                losses[f'loss_distill_{name}'] *= weights[j].detach()
            losses[f'sel_{name}'] = mask[:, j].float().mean()
            losses[f'cost_{name}'] = saved[j]  # what dropping it would save
        losses['distill_cost'] = cost.mean()
        self.spent.add_(torch.stack([cost.sum(), cost.new_tensor(batch)]))
        losses['distill_cost_mean'] = (self.spent[0] / self.spent[1]).float()
        losses['distill_nonfinite'] = cost.new_tensor(float(nonfinite))
        if self.balancer is not None:
            losses.update(self._balance(losses, distilled, mask))
        return losses

    def _balance(self, losses, per_sample, mask):
        """Reweight the level losses in place with the balancer.

        The balancer sees each level's mean over the samples that selected it,
        so its training-rate ratios do not depend on how often a level is
        selected; levels no sample selected are absent (exact zero) and keep
        their weight. The weighted ``loss_distill_<level>`` are what train.
        """
        counts = mask.sum(0).clamp_min(1)
        means = {f'loss_distill_{n}': per_sample[:, j].sum() / counts[j]
                 for j, n in enumerate(self.levels)}
        params = self.student.get_submodule(self.balance_layer).parameters()
        _, weights = self.balancer(means, params,
                                   update=self.balancer_update)
        for name, weight in zip(means, weights.values()):
            losses[name] = weight * losses[name]
        return dict(weights, gradnorm_nonfinite=torch.tensor(
            float(self.balancer.nonfinite_updates)))

    def distill(self, inputs, student_feats, mask, teacher_feats=None):
        """Per-sample, per-level distillation losses of the pairs in
        ``mask``; the teacher computes only those pairs.

        Args:
            inputs (Tensor): the batch's preprocessed images.
            student_feats (Sequence[Tensor]): the student's pyramid levels.
            mask (Tensor): (batch, levels) pairs to distill.
            teacher_feats (list, optional): the teacher pyramid an earlier
                call with the same ``inputs`` and ``mask`` returned; reused
                instead of running the teacher.

        Returns:
            Distillation: float32 losses (computed from float32 features,
            also under autocast), the teacher pyramid and the pairs
            dropped for non-finite teacher features.
        """
        per_sample = torch.zeros(mask.shape, device=mask.device)
        dropped = torch.zeros_like(mask)
        rows = mask.any(1).nonzero()[:, 0]
        if len(rows) == 0:
            return Distillation(per_sample, [], dropped)
        if teacher_feats is None:
            with torch.no_grad():
                teacher_feats = self.teacher_tap.extract(inputs[rows],
                                                         mask[rows])
        for j, name in enumerate(self.levels):
            sel = mask[:, j].nonzero()[:, 0]
            if len(sel) == 0:
                continue
            teacher = teacher_feats[j].float()
            finite = teacher.flatten(1).isfinite().all(1)
            dropped[sel[~finite], j] = True
            if not finite.any():
                continue
            student = self.connectors[name](student_feats[j][sel[finite]])
            per_sample[sel[finite], j] = self.distill_loss(
                student.float(), teacher[finite])
        return Distillation(per_sample, teacher_feats, dropped)

    def outcome(self):
        """What the last training step's distillation achieved, for a
        learning selector (:func:`measure_outcome`); call it after the
        optimiser step."""
        if self._outcome is None:
            raise RuntimeError('outcome() needs a training step of a '
                               'selector that asked for it')
        step, self._outcome = self._outcome, None
        return measure_outcome(self, step)

    @contextmanager
    def kept_buffers(self):
        """Forward passes inside leave the student's buffers (normalisation
        statistics) as they were: for measurements besides training."""
        saved = {k: b.clone() for k, b in self.student.named_buffers()}
        try:
            yield
        finally:
            with torch.no_grad():
                for name, buf in self.student.named_buffers():
                    buf.copy_(saved[name])

    def predict(self, inputs, data_samples=None):
        return self.student.predict(inputs, data_samples)

    def _forward(self, inputs, data_samples=None):
        return self.student._forward(inputs, data_samples)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}; use loss, predict or '
                           'tensor')
