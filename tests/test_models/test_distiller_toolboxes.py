"""PyramidDistiller on the real mmdet / mmseg / mmpretrain models of the
digits configs: a short Runner training and the toolboxes' evaluators."""
import copy
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from pyramidkd_mm.models import build_teacher
from pyramidkd_mm.registry import MODELS

from conftest import REPO

TASKS = {
    'det': ('coco/bbox_mAP', ('p2', 'p3', 'p4', 'p5')),
    'seg': ('mIoU', ('c2', 'c3', 'c4', 'c5')),
    'cls': ('accuracy/top1', ('c2', 'c3', 'c4', 'c5')),
}


def tiny(cfg, work_dir, iters=2, val_images=8):
    """Shorten a digits config to a few iterations and validation images."""
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.val_dataloader.dataset.indices = val_images
    cfg.train_dataloader.batch_size = 2
    return cfg


def save_random_teacher(config, path):
    """A teacher from its config with random weights, saved as weights."""
    torch.manual_seed(0)
    torch.save(dict(state_dict=build_teacher(config, None).state_dict()),
               path)
    return str(path)


@pytest.mark.parametrize('task', sorted(TASKS))
def test_uniform_kd_trains_and_evaluates(task, digits_data, tmp_path,
                                         monkeypatch):
    monkeypatch.chdir(digits_data + '/../..')
    metric, levels = TASKS[task]
    cfg = tiny(Config.fromfile(f'configs/digits/{task}_uniform_kd.py'),
               tmp_path)
    cfg.model.teacher.checkpoint = save_random_teacher(
        cfg.model.teacher.config, tmp_path / 'teacher.pth')
    runner = Runner.from_cfg(cfg)
    teacher_before = copy.deepcopy(runner.model.teacher.state_dict())
    runner.train()
    hub = runner.message_hub
    for level in levels:
        assert hub.get_scalar(f'train/loss_distill_{level}').current() > 0
        assert hub.get_scalar(f'train/sel_{level}').current() == 1
    assert hub.get_scalar('train/distill_cost').current() == pytest.approx(1)
    # Validation ran the student through the toolbox's own evaluator.
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        logged = [json.loads(line) for line in f]
    assert 0 <= logged[-1][metric] <= 100
    # The teacher stayed frozen, BN statistics included.
    for key, value in runner.model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_distillation_off_reproduces_plain_training(digits_data,
                                                    monkeypatch):
    """With every level switched off, the distiller's student computes the
    same losses as the plain toolbox model, before and after an SGD step."""
    monkeypatch.chdir(digits_data + '/../..')
    kd = Config.fromfile('configs/digits/det_uniform_kd.py')
    kd.model.teacher.checkpoint = None
    kd.model.selector = dict(type='FixedSelector', mask=[0, 0, 0, 0])
    plain = Config.fromfile('configs/digits/det_student.py')
    runner = Runner.from_cfg(tiny(plain, '/tmp/pyramidkd_regression'))
    data = next(iter(runner.train_dataloader))
    with DefaultScope.overwrite_default_scope('mmdet'):
        student = MODELS.build(plain.model)
        distiller = MODELS.build(kd.model)
    distiller.student.load_state_dict(student.state_dict())
    student.train(), distiller.train()
    optims = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
              for m in (student, distiller.student)]
    for _ in range(2):
        results = []
        for model, optim in zip((student, distiller), optims):
            torch.manual_seed(0)  # the RPN and R-CNN samplers are random
            batch = model.data_preprocessor(data, training=True)
            losses = model(**batch, mode='loss')
            total, _ = model.parse_losses(losses)
            optim.zero_grad()
            total.backward()
            optim.step()
            results.append(losses)
        plain_losses, kd_losses = results
        for key, value in plain_losses.items():
            torch.testing.assert_close(kd_losses[key], value)
        assert all(kd_losses[f'loss_distill_{n}'] == 0
                   for n in ('p2', 'p3', 'p4', 'p5'))


def test_fp16_autocast_costs_of_the_detection_distiller():
    """Raw FLOP counts (1e7-1e9) overflow float16: costs must stay finite
    float32 fractions under autocast."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/digits/det_uniform_kd.py'))
    cfg.model.teacher.checkpoint = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    mask = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1],
                         [0, 0, 0, 0]]).bool()
    expected = model.teacher_cost(mask)
    with torch.autocast('cpu', dtype=torch.float16):
        cost = model.teacher_cost(mask)
    assert cost.dtype == torch.float32 and cost.isfinite().all()
    torch.testing.assert_close(cost, expected)
    assert expected[2] == pytest.approx(1) and expected[3] == 0


@pytest.mark.parametrize('task', sorted(TASKS))
def test_teacher_free_heuristic_on_every_toolbox(task, digits_data, tmp_path,
                                                 monkeypatch):
    """UncertaintySelector reads each toolbox's predictions and distills
    the least sure half of every batch (batch 2: exactly one sample)."""
    monkeypatch.chdir(digits_data + '/../..')
    cfg = tiny(Config.fromfile(f'configs/digits/{task}_uniform_kd.py'),
               tmp_path)
    cfg.model.teacher.checkpoint = None
    cfg.model.selector = dict(type='UncertaintySelector', budget=0.5)
    runner = Runner.from_cfg(cfg)
    costs = []
    runner.model.selector.register_forward_hook(
        lambda m, args, mask: costs.append(
            runner.model.teacher_cost(mask).tolist()))
    runner.train()
    assert costs and all(sorted(c) == [0, 1] for c in costs)
