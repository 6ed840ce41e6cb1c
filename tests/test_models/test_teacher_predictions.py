"""TeacherPredictions on the digits teachers of every toolbox: the
teacher-student KL of the class predictions and what the teacher's head
costs for it."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope

from pyramidkd_mm.models import PyramidTap, build_teacher
from pyramidkd_mm.models.student_predictions import StudentPredictions
from pyramidkd_mm.models.teacher_cost import TeacherCost
from pyramidkd_mm.models.teacher_predictions import TeacherPredictions

from conftest import REPO

SIZE = 64


def teacher_of(task):
    config = osp.join(REPO, f'configs/digits/{task}_teacher.py')
    with DefaultScope.overwrite_default_scope(
            Config.fromfile(config).default_scope):
        torch.manual_seed(0)
        return build_teacher(config, None).eval()


def forward(model, inputs):
    """A forward that makes class predictions (a detector's on its RPN's
    proposals)."""
    samples = [DetDataSample(metainfo=dict(
        img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
        batch_input_shape=(SIZE, SIZE), scale_factor=(1., 1.)))
        for _ in inputs] if hasattr(model, 'roi_head') else None
    with torch.no_grad():
        model(inputs, samples, mode='tensor')


@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_kl_is_zero_against_itself_and_the_head_is_counted(task):
    teacher = teacher_of(task)
    tap = PyramidTap(teacher, 'auto', 'teacher')
    probe = torch.zeros(1, 3, SIZE, SIZE)
    cost = TeacherCost(tap, probe, 4)
    reader = TeacherPredictions(tap, cost, 4)
    inputs = torch.randn(3, 3, SIZE, SIZE)
    own = StudentPredictions(teacher)  # the teacher as its own student
    forward(teacher, inputs)
    predictions = own.take(3)
    with torch.no_grad():
        feats = tap.extract(inputs, torch.ones(3, 4, dtype=torch.bool))
    read = reader.disagreement(predictions, feats, SIZE * SIZE)
    assert read.kl.shape == (3, ) and read.kl.abs().max() < 1e-4
    predictions.logits = predictions.logits + torch.randn_like(
        predictions.logits)
    noisy = reader.disagreement(predictions, feats, SIZE * SIZE)
    assert (noisy.kl > 0.05).all()
    assert read.cost.dtype == torch.float32 and (read.cost > 0).all()
    if task == 'det':  # per RoI: a sample pays for each of its RoIs
        rois = torch.bincount(predictions.rois[:, 0].long(), minlength=3)
        torch.testing.assert_close(read.cost / rois, read.cost[:1].expand(
            3) / rois[0])
        # the box head on ~100 RoIs is of the order of the whole pyramid
        assert 0.05 < read.cost.mean() < 5
    elif task == 'seg':  # a decode head is a large part of a segmentor
        assert 0.05 < read.cost[0] < 5
    else:  # a linear classifier on pooled features costs next to nothing
        assert read.cost[0] < 0.01


def test_a_sample_subset_keeps_its_rois():
    teacher = teacher_of('det')
    predictions = StudentPredictions(teacher)
    forward(teacher, torch.randn(3, 3, SIZE, SIZE))
    everything = predictions.take(3)
    some = everything.of_samples(torch.tensor([2, 0]))
    assert some.batch == 2
    for new, old in ((0, 2), (1, 0)):
        mine, theirs = some.rois[:, 0] == new, everything.rois[:, 0] == old
        assert mine.sum() > 0
        assert torch.equal(some.logits[mine], everything.logits[theirs])
        assert torch.equal(some.rois[mine, 1:], everything.rois[theirs, 1:])
    torch.testing.assert_close(some.entropy(),
                               everything.entropy()[[2, 0]])


def test_a_head_that_reads_more_levels_is_one_clear_error():
    teacher = teacher_of('seg')
    tap = PyramidTap(teacher, 'auto', 'teacher')
    cost = TeacherCost(tap, torch.zeros(1, 3, SIZE, SIZE), 3)
    with pytest.raises(ValueError, match='head reads 4 pyramid levels'):
        TeacherPredictions(tap, cost, 3)


@pytest.mark.parametrize('task', ['seg', 'cls'])
def test_under_autocast_the_kl_and_cost_are_float32(task):
    """Under autocast the teacher's features and logits are bfloat16; the
    KL and the cost are computed in float32. (mmdet's two-stage detector
    cannot run under CPU autocast at all: mmcv's CPU RoIAlign has no
    bfloat16 kernel.)"""
    teacher = teacher_of(task)
    tap = PyramidTap(teacher, 'auto', 'teacher')
    reader = TeacherPredictions(
        tap, TeacherCost(tap, torch.zeros(1, 3, SIZE, SIZE), 4), 4)
    own = StudentPredictions(teacher)
    inputs = torch.randn(2, 3, SIZE, SIZE)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        forward(teacher, inputs)
        with torch.no_grad():
            feats = tap.extract(inputs, torch.ones(2, 4, dtype=torch.bool))
        assert feats[0].dtype == torch.bfloat16
        predictions = own.take(2)
        predictions.logits = predictions.logits + 3 * torch.randn_like(
            predictions.logits)
        read = reader.disagreement(predictions, feats, SIZE * SIZE)
    for value in (read.kl, read.cost):
        assert value.dtype == torch.float32 and value.isfinite().all()
    assert (read.kl > 0).all()
