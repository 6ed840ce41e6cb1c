from types import SimpleNamespace

import pytest
import torch
from conftest import ToyPyramidModel
from torch import nn

from pyramidkd_mm.models.pyramid import PyramidTap
from pyramidkd_mm.models.wiring import build_connectors, check_normalization

PROBE = torch.zeros(1, 3, 16, 16)


def tap(channels=(4, 8, 16)):
    return PyramidTap(ToyPyramidModel(channels), 'backbone')


def test_connectors_where_channels_differ_and_student_channels():
    student, teacher = tap((4, 8, 16)), tap((4, 16, 32))
    student.model.train()
    connectors, channels = build_connectors(('c2', 'c3', 'c4'), student,
                                            teacher, PROBE)
    assert isinstance(connectors['c2'], nn.Identity)
    assert (connectors['c3'].in_channels, connectors['c3'].out_channels) \
        == (8, 16)
    assert list(channels) == [4, 8, 16] and channels.top == 16
    assert student.model.training  # probed in eval mode, restored


def test_too_many_levels_and_different_strides_are_refused():
    with pytest.raises(ValueError, match='only 3 pyramid levels'):
        build_connectors(('a', 'b', 'c', 'd'), tap(), tap(), PROBE)
    teacher = tap()
    # a stride-1 first stage: every teacher level at half the stride
    teacher.model.backbone.layer1[0].stride = (1, 1)
    with pytest.raises(ValueError, match='student stride 2 but teacher '
                       'stride 1'):
        build_connectors(('c2', 'c3', 'c4'), tap(), teacher, PROBE)


def test_different_normalisation_is_refused():
    a = SimpleNamespace(mean=torch.tensor([0., 0, 0]), std=torch.ones(3))
    b = SimpleNamespace(mean=torch.tensor([0., 0, 1]), std=torch.ones(3))
    check_normalization(a, SimpleNamespace(mean=a.mean.clone(), std=a.std))
    check_normalization(a, SimpleNamespace())  # nothing to compare
    with pytest.raises(ValueError, match='mean .* differs'):
        check_normalization(a, b)
