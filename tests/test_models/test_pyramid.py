"""PyramidTap on a real mmdet FPN: skipped levels do no output-conv work."""
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from pyramidkd_mm.models import PyramidTap
from pyramidkd_mm.registry import MODELS

from conftest import REPO


def build(name):
    cfg = Config.fromfile(f'{REPO}/configs/digits/{name}.py')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model).eval()


def test_fpn_skips_output_convs_of_unneeded_levels():
    model = build('det_student')
    tap = PyramidTap(model)
    assert tap.source == 'neck'
    calls = []
    for i, conv in enumerate(model.neck.fpn_convs):
        conv.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = tap.extract(x, [1, 1, 1, 1])
        assert sorted(calls) == [0, 1, 2, 3]
        calls.clear()
        part = tap.extract(x, [0, 1, 0, 0])
    assert calls == [1]
    torch.testing.assert_close(part[1], full[1])
    assert isinstance(model.neck.fpn_convs[0], torch.nn.Module) and \
        not isinstance(model.neck.fpn_convs[0], torch.nn.Identity)


def test_backbone_stops_after_the_deepest_needed_stage():
    model = build('seg_student')
    tap = PyramidTap(model)
    assert tap.source == 'backbone'
    calls = []
    for name in model.backbone.res_layers:
        getattr(model.backbone, name).register_forward_hook(
            lambda m, a, o, name=name: calls.append(name))
    with torch.no_grad():
        feats = tap.extract(torch.randn(1, 3, 64, 64), [1, 1, 0, 0])
    assert calls == ['layer1', 'layer2']
    assert feats[2] is None and feats[3] is None


def test_level_costs_split_the_whole_pyramid():
    model = build('det_student')
    shared, prefix, own = PyramidTap(model).level_costs(
        torch.zeros(1, 3, 64, 64), 4)
    assert shared > 0 and (own > 0).all() and (prefix == 0).all()
    # P2's output conv works on 4x the positions of P3's.
    assert own[0] == 4 * own[1]
    shared, prefix, own = PyramidTap(build('seg_student')).level_costs(
        torch.zeros(1, 3, 64, 64), 4)
    assert (prefix.diff() > 0).all() and (own == 0).all()
