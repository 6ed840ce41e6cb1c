"""PyramidTap on real mmdet / mmseg models: the teacher's pyramid is computed
per sample, and the FLOPs it actually spends are what the distiller logs."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from pyramidkd_mm.models import PyramidTap
from pyramidkd_mm.registry import MODELS

from conftest import REPO
from test_distiller import RowSelector


def build(name):
    cfg = Config.fromfile(f'{REPO}/configs/digits/{name}.py')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model).eval()


def batch_sizes(modules):
    """Forward hooks recording the batch size of every call."""
    calls = [[] for _ in modules]
    for i, module in enumerate(modules):
        module.register_forward_hook(
            lambda m, a, o, i=i: calls[i].append(a[0].shape[0]))
    return calls


def test_fpn_runs_each_output_conv_on_the_rows_that_selected_it():
    model = build('det_student')
    tap = PyramidTap(model)
    assert tap.source == 'neck'
    x = torch.randn(3, 3, 64, 64)
    mask = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 1], [1, 1, 0, 0]]).bool()
    with torch.no_grad():
        full = tap.extract(x, torch.ones(3, 4, dtype=torch.bool))
        calls = batch_sizes(model.neck.fpn_convs)
        lateral = batch_sizes(model.neck.lateral_convs)
        part = tap.extract(x, mask)
    assert calls == [[2], [2], [], [1]]
    assert lateral == [[3]] * 4  # laterals and top-down path: every row
    assert part[2] is None
    for level in (0, 1, 3):
        torch.testing.assert_close(part[level], full[level][mask[:, level]])
    assert not any(isinstance(c, nn.Identity) for c in model.neck.fpn_convs)


def test_backbone_runs_each_stage_on_the_rows_that_reach_it():
    model = build('seg_student')
    tap = PyramidTap(model)
    assert tap.source == 'backbone'
    stages = [getattr(model.backbone, n) for n in model.backbone.res_layers]
    x = torch.randn(3, 3, 64, 64)
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0], [0, 1, 0, 0]]).bool()
    with torch.no_grad():
        full = tap.extract(x, torch.ones(3, 4, dtype=torch.bool))
        calls = batch_sizes(stages)
        part = tap.extract(x, mask)
    # Deepest selected level per row: c2, c4, c3; C5 on an empty batch.
    assert calls == [[3], [2], [1], [0]]
    assert part[3] is None
    for level in range(3):
        torch.testing.assert_close(part[level], full[level][mask[:, level]])


class TeacherCall(nn.Module):
    """The teacher extraction a distiller made, replayed for the FLOP
    analyser (which traces the ops that actually run)."""

    def __init__(self, tap, mask):
        super().__init__()
        self.tap, self.mask = tap, mask
        self.model = tap.model  # so the analyser sees its modules

    def forward(self, inputs):
        return tuple(f for f in self.tap.extract(inputs, self.mask)
                     if f is not None)


def teacher_flops(tap, inputs, mask):
    with torch.no_grad():
        flops = FlopAnalyzer(TeacherCall(tap, mask), (inputs, ))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return flops.total()


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_logged_cost_is_the_teacher_flops_actually_spent(task):
    """A mixed per-sample mask: the cost the distiller logs as
    ``distill_cost`` (``teacher_cost``, mean over the batch) equals the
    FLOPs of the teacher calls its ``distill`` made (mmengine's analyser),
    relative to distilling every level of every sample."""
    cfg = Config.fromfile(f'{REPO}/configs/digits/{task}_uniform_kd.py')
    cfg.model.teacher.checkpoint = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).train()
    mask = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0],
                         [1, 1, 1, 1], [0, 0, 0, 1]]).bool()
    model.selector = RowSelector(mask)
    calls = []
    extract = model.teacher_tap.extract
    model.teacher_tap.extract = lambda x, m: calls.append((x, m)) or \
        extract(x, m)
    inputs = torch.randn(5, 3, 64, 64)
    with torch.no_grad(), model.student_tap.capture() as feats:
        model.student.extract_feat(inputs)
        result = model.distill(inputs, feats[:4], mask)
    logged = model.teacher_cost(mask).mean().item()
    assert len(calls) == 1
    spent = teacher_flops(model.teacher_tap, *calls[0])
    every = teacher_flops(model.teacher_tap, inputs[:1],
                          torch.ones(1, 4, dtype=torch.bool))
    assert 0.2 < logged < 0.8
    assert spent / (5 * every) == pytest.approx(logged, rel=1e-3)
    assert (result.losses[mask] > 0).all()
    assert (result.losses[~mask] == 0).all()
