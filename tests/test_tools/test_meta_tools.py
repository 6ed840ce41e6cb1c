"""The meta-learning tools end to end, tiny: a task recorded from the real
cls config, the leave-one-out experiment on it, the sinusoid reproduction."""
import shutil
import sys

import pytest
import torch

from pyramidkd_mm.rl.task_cache import TaskCache
from test_tools import iters, random_teacher, run


def table_rows(text, header):
    """Data rows of the markdown table that follows ``header``."""
    lines = text[text.index(header):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('|'))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows


@pytest.fixture(scope='module')
def recorded(tmp_path_factory, digits_data):
    """A cls task recorded from the real config with a (random) teacher."""
    root = tmp_path_factory.mktemp('record')
    teacher = random_teacher(root, 'cls')
    cache_file = root / 'cls_cache.pth'
    log = run(sys.executable, 'tools/analysis_tools/record_task.py',
              '--task', 'cls', '--warmup', 1, '--iters', 2, '--teacher',
              teacher, '--out', cache_file, '--cfg-options',
              'train_dataloader.batch_size=8')
    assert 'cls: 16 samples, states of size 742' in log
    return cache_file


def test_record_a_task_then_adapt_across_tasks(recorded, tmp_path):
    cache = TaskCache.load(recorded)
    assert cache.gains.shape == (16, 4) and torch.isfinite(cache.gains).all()
    assert cache.gains.abs().sum() > 0
    # gains across the step in units of the first step's typical gain (the
    # gain reward's scale, whatever reward cls_rl_kd.py trains with)
    assert cache.gains[:8].sum(1).abs().mean().item() == pytest.approx(
        1, rel=1e-4)
    # c5 needs the whole backbone: every mask holding it costs everything
    assert cache.mask_costs[0] == 0 and (cache.mask_costs[8:] == 1).all()
    assert (cache.mask_costs[1:8] < 1).all()
    # the same recording stands in for all three tasks here
    for task in ('det', 'seg', 'cls'):
        shutil.copy(recorded, tmp_path / f'{task}_cache.pth')
    run(sys.executable, 'tools/analysis_tools/meta_adaptation.py',
        '--caches', tmp_path, '--seeds', 0, '--updates', 2,
        '--meta-iters', 1, '--out', tmp_path / 'results')
    text = (tmp_path / 'results' / 'meta_adaptation.md').read_text()
    reach = table_rows(text, 'PPO updates to reach')
    assert [r[0] for r in reach] == [
        'random', 'transfer', 'MAML', 'FOMAML', 'Reptile',
        'MAML, core-only inner loop']
    assert all(len(r) == 4 for r in reach)
    rewards = table_rows(text, 'Expected reward on the held-out')
    assert len(rewards) == 7
    assert (tmp_path / 'results' / 'meta_adaptation.png').stat().st_size > 0


def test_phase_four_on_the_detection_config(recorded, tmp_path):
    """det_rl_kd_meta.py through phases 1-4 with the recorded task as its
    seg and cls tasks."""
    teacher = random_teacher(tmp_path, 'det')
    log = run(sys.executable, 'tools/train.py',
              'configs/digits/det_rl_kd_meta.py', '--work-dir',
              tmp_path / 'work', '--cfg-options',
              f'model.teacher.checkpoint={teacher}',
              f'custom_hooks.0.meta.tasks.seg={recorded}',
              f'custom_hooks.0.meta.tasks.cls={recorded}',
              'custom_hooks.0.meta.support_size=8',
              'custom_hooks.0.meta.query_size=8',
              'custom_hooks.0.milestones=[1,2,3]',
              'train_dataloader.batch_size=2',
              'val_dataloader.dataset.indices=2',
              'model.selector.rollout_iters=2',
              'model.selector.ppo.minibatch_size=2',
              'default_hooks.logger.interval=1', *iters(5))
    assert "distillation phase 'meta' from iteration 3" in log
    assert 'rl_meta_query_loss' in log
    state = torch.load(tmp_path / 'work' / 'iter_5.pth',
                       weights_only=False)['state_dict']
    assert 'selector.policy.adapters.seg.weight' in state


def test_sinusoid_reproduction_runs(tmp_path):
    run(sys.executable, 'tools/analysis_tools/maml_sinusoid.py', '--iters', 3,
        '--meta-batch', 2, '--seeds', 0, '--test-tasks', 5, '--out',
        tmp_path)
    rows = table_rows((tmp_path / 'maml_sinusoid.md').read_text(), '| method')
    assert [r[0] for r in rows] == ['MAML', 'FOMAML', 'Reptile', 'pretrained']
    assert all(float(r[2]) > 0 for r in rows)
    assert (tmp_path / 'maml_sinusoid.png').stat().st_size > 0
