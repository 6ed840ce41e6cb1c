"""DARTS-LS: a continuous gate per pyramid level, learned by DARTS's
bi-level optimisation (Liu et al., ICLR 2019).

The student's weights w minimise the training loss
L_train(w, a) = L_task(w) + sum_l g_l(a) D_l(w) on the training split, where
D_l is level l's distillation loss and g_l its gate; the gate logits a
minimise the student's task loss L_val(w*(a)) on a held-out split. The gates
reach L_val only through the weights, so the gate gradient is DARTS's
second-order term: with one virtual step w' = w - xi * grad_w L_train(w, a),

    grad_a L_val(w') = -xi * grad2_{a,w} L_train(w, a) . grad_w' L_val(w'),

where the Hessian-vector product is DARTS's finite difference
(grad_a L_train(w + eps v) - grad_a L_train(w - eps v)) / (2 eps),
v = grad_w' L_val(w'), eps = 0.01 / ||v||. Gates that help the held-out task
grow: a level whose distillation gradient points along the validation
gradient gets a larger gate.
"""
import torch
from mmengine.dist import all_reduce, get_world_size
from torch import nn

from ..models.selectors import LevelSelector
from ..registry import MODELS


@MODELS.register_module()
class DARTSSelector(LevelSelector):
    """Relaxed level gates g_l = sigmoid(a_l): every level of every sample
    is distilled, its loss weighted by its gate.

    Gate selectors share this interface with :class:`GDASSelector`:
    :meth:`gates` (differentiable in the logits, used by :class:`Architect`),
    :meth:`loss_weights` (what the training loss uses) and
    :meth:`probabilities` (how much each level is wanted, from which the
    search derives its mask). The logits are trained by the
    :class:`GateSearchHook`'s optimiser only; the distiller detaches the
    weights, so the Runner's optimiser leaves them alone.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.logits = nn.Parameter(torch.zeros(len(self.levels)))

    def gates(self):
        return self.logits.sigmoid()

    def loss_weights(self):
        return self.gates()

    def probabilities(self):
        return self.logits.detach().sigmoid()

    def forward(self, student_feats, data_samples):
        return self.all_levels(student_feats)


class Architect:
    """DARTS's architecture step for the gates of a :class:`PyramidDistiller`.

    Runs on the unwrapped distiller with ``torch.autograd.grad`` (no DDP
    reduction hooks fire, and no higher-order gradients are needed: the
    Hessian-vector product is a finite difference). The student's weights
    and normalisation statistics are restored afterwards; the gate gradients
    are averaged over ranks, so the gates stay identical everywhere.

    Args:
        distiller (PyramidDistiller): with a gate selector.
        optimizer (torch.optim.Optimizer): over the selector's logits.
        unrolled (bool): DARTS's second order: take the validation gradient
            after the virtual step. DARTS's first-order approximation
            (xi = 0) would drop the gate gradient entirely here, because the
            validation loss depends on the gates only through the weights;
            so ``unrolled=False`` keeps the mixed term and takes the
            validation gradient at the current weights instead, which saves
            the virtual step's forward and backward pass.
        cost_weight (float): price of the teacher compute in held-out loss
            units: the gates also descend ``cost_weight`` x the expected
            cost of their mask (:meth:`TeacherCost.expected`), so a level
            whose distillation does not measurably help the held-out loss
            is switched off instead of staying at its initial gate.
    """

    def __init__(self, distiller, optimizer, unrolled=True, cost_weight=0.0):
        self.distiller = distiller
        self.optimizer = optimizer
        self.unrolled = unrolled
        self.cost_weight = cost_weight

    def weights(self):
        """The parameters the training loss trains: student and
        connectors."""
        d = self.distiller
        return [p for m in (d.student, d.connectors) for p in m.parameters()
                if p.requires_grad]

    def step(self, train_data, val_data, xi):
        """One gate update.

        Args:
            train_data, val_data (dict): preprocessed batches
                (``inputs``, ``data_samples``) of the training and held-out
                splits.
            xi (float): the virtual step's learning rate (the student's).

        Returns:
            dict[str, float]: ``val_loss`` (the held-out task loss the step
            differentiated) and ``hypergrad_norm``.
        """
        params = self.weights()
        with self.distiller.kept_buffers():
            val_loss, v = self._val_gradient(train_data, val_data, params,
                                             xi)
            change = self._distill_change(train_data, params, v)
        selector = self.distiller.selector
        self.optimizer.zero_grad()
        gates = selector.gates()
        objective = -xi * (gates * change).sum()
        if self.cost_weight:
            objective = objective + self.cost_weight * \
                self.distiller.teacher_cost.expected(gates)
        objective.backward()
        grads = [p.grad for p in selector.parameters() if p.grad is not None]
        for grad in grads:
            all_reduce(grad)  # a no-op outside distributed training
            grad /= get_world_size()
        self.optimizer.step()
        norm = torch.cat([g.flatten() for g in grads]).norm().item()
        # The Runner's optimiser also holds the gates: without a gradient
        # it leaves them alone (no momentum, no weight decay).
        self.optimizer.zero_grad(set_to_none=True)
        return dict(val_loss=val_loss, hypergrad_norm=norm)

    def _val_gradient(self, train_data, val_data, params, xi):
        """grad of the held-out task loss, after the virtual step if
        unrolled."""
        d = self.distiller
        backup = [p.detach().clone() for p in params]
        if self.unrolled:
            loss, _ = d.parse_losses(
                d.loss(train_data['inputs'], train_data['data_samples']))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p.sub_(xi * g)
        try:
            loss, _ = d.parse_losses(d.student.loss(
                val_data['inputs'], val_data['data_samples']))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup):
                    p.copy_(b)
        v = [torch.zeros_like(p) if g is None else g
             for p, g in zip(params, grads)]
        return loss.item(), v

    @torch.no_grad()
    def _distill_change(self, train_data, params, v):
        """(D(w + eps v) - D(w - eps v)) / (2 eps) per level: the
        directional derivative of each level's distillation loss along v."""
        norm = torch.sqrt(sum(g.pow(2).sum() for g in v))
        levels = len(self.distiller.levels)
        if norm == 0:
            return v[0].new_zeros(levels)
        eps = 0.01 / norm
        backup = [p.detach().clone() for p in params]
        losses, teacher_feats = [], None
        try:
            for sign in (1, -1):
                for p, b, g in zip(params, backup, v):
                    p.copy_(b + sign * eps * g)
                level_losses, teacher_feats = self._level_losses(
                    train_data, teacher_feats)
                losses.append(level_losses)
        finally:
            for p, b in zip(params, backup):
                p.copy_(b)
        return (losses[0] - losses[1]) / (2 * eps)

    def _level_losses(self, data, teacher_feats):
        """Batch-mean distillation loss per level at the current weights
        (the teacher pyramid is computed once and reused)."""
        d = self.distiller
        with d.student_tap.capture() as feats:
            d.student.extract_feat(data['inputs'])
        mask = d.selector(feats, data['data_samples']).bool()
        result = d.distill(data['inputs'], feats[:len(d.levels)], mask,
                           teacher_feats)
        return result.losses.mean(0), result.teacher_feats
