"""TeacherCost: the FLOP split of real pyramids, per-sample and expected
costs."""
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from pyramidkd_mm.models import PyramidTap
from pyramidkd_mm.models.teacher_cost import TeacherCost
from pyramidkd_mm.registry import MODELS

from conftest import REPO


def cost_of(name):
    cfg = Config.fromfile(f'{REPO}/configs/digits/{name}.py')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).eval()
    return TeacherCost(PyramidTap(model), torch.zeros(1, 3, 64, 64), 4)


def test_fpn_and_backbone_splits():
    fpn = cost_of('det_student')
    assert fpn.shared > 0 and (fpn.own > 0).all() and (fpn.prefix == 0).all()
    # P2's output conv works on 4x the positions of P3's.
    assert fpn.own[0] == pytest.approx(4 * fpn.own[1].item())
    backbone = cost_of('seg_student')
    assert (backbone.prefix.diff() > 0).all() and (backbone.own == 0).all()
    for cost in (fpn, backbone):
        assert cost(torch.ones(1, 4, dtype=torch.bool)).item() == \
            pytest.approx(1)
        assert cost(torch.zeros(1, 4, dtype=torch.bool)).item() == 0


def test_backbone_cost_grows_with_the_deepest_level():
    cost = cost_of('seg_student')
    costs = cost(torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1],
                               [1, 1, 0, 1]]).bool())
    assert costs[0] < costs[1] < costs[2] == costs[3] == pytest.approx(1)
    # Only the deepest level saves compute when dropped.
    saved = cost.marginal(torch.ones(2, 4, dtype=torch.bool))
    assert (saved[:3] == 0).all() and saved[3] > 0


@pytest.mark.parametrize('name', ['det_student', 'seg_student'])
def test_expected_cost_is_the_mean_over_masks(name):
    cost = cost_of(name)
    probs = torch.tensor([0.2, 0.7, 0.5, 0.9], requires_grad=True)
    masks = torch.tensor(list(itertools.product((0, 1), repeat=4))).bool()
    weight = torch.where(masks, probs, 1 - probs).prod(1)
    exact = (weight * cost(masks)).sum()
    torch.testing.assert_close(cost.expected(probs), exact)
    (grad, ) = torch.autograd.grad(cost.expected(probs), probs)
    assert (grad >= 0).all() and grad.sum() > 0
