"""The command-line tools end to end on the cls digits configs (the fastest
task): train, resume, 2-process gloo dist_train, export, test."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

from pyramidkd_mm.models import build_teacher
from pyramidkd_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = ['train_dataloader.batch_size=8', 'val_dataloader.dataset.indices=16',
        'default_hooks.logger.interval=1']


def iters(n):
    return [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'default_hooks.checkpoint.interval={n}']


def run(*cmd, **env):
    result = subprocess.run(
        [str(c) for c in cmd], cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
                 **env), timeout=600)
    assert result.returncode == 0, (result.stdout[-3000:]
                                    + result.stderr[-3000:])
    return result.stdout + result.stderr


def random_teacher(folder, task):
    """A weights-only checkpoint of the digits teacher of ``task``, with
    random weights (the tools' tests need a file, not a trained model)."""
    teacher = folder / 'teacher.pth'
    torch.manual_seed(0)
    model = build_teacher(
        osp.join(REPO, f'configs/digits/{task}_teacher.py'), None)
    torch.save(dict(state_dict=model.state_dict()), teacher)
    return teacher


@pytest.fixture(scope='module')
def kd_run(tmp_path_factory, digits_data):
    """A 2-iteration uniform-KD run on cls with a (random) teacher file."""
    root = tmp_path_factory.mktemp('kd')
    teacher = random_teacher(root, 'cls')
    options = TINY + [f'model.teacher.checkpoint={teacher}']
    work_dir = root / 'work'
    run(sys.executable, 'tools/train.py', 'configs/digits/cls_uniform_kd.py',
        '--work-dir', work_dir, '--cfg-options', *options, *iters(2))
    return work_dir, options


def test_resume_continues_the_run(kd_run):
    work_dir, options = kd_run
    assert osp.exists(work_dir / 'iter_2.pth')
    log = run(sys.executable, 'tools/train.py',
              'configs/digits/cls_uniform_kd.py', '--work-dir', work_dir,
              '--resume', '--cfg-options', *options, *iters(4))
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    ckpt = torch.load(work_dir / 'iter_4.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 4 and 'optimizer' in ckpt


def test_export_loads_into_the_plain_student(kd_run, tmp_path):
    work_dir, _ = kd_run
    latest = (work_dir / 'last_checkpoint').read_text().strip()
    exported = tmp_path / 'student.pth'
    run(sys.executable, 'tools/model_converters/extract_weights.py', latest,
        exported, '--prefix', 'student.')
    # Weights only: loads without full unpickling, strictly.
    cfg = Config.fromfile(osp.join(REPO, 'configs/digits/cls_student.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        student = MODELS.build(cfg.model)
    load_checkpoint(student, str(exported), strict=True)
    full = torch.load(latest, weights_only=False)
    for key, value in student.state_dict().items():
        assert torch.equal(value, full['state_dict'][f'student.{key}']), key
    # And tools/test.py scores it with mmpretrain's Accuracy.
    log = run(sys.executable, 'tools/test.py',
              'configs/digits/cls_student.py', exported, '--work-dir',
              tmp_path / 'test', '--cfg-options', *TINY)
    assert 'accuracy/top1' in log


def test_dist_train_two_processes_on_cpu(kd_run, tmp_path):
    """gloo DDP with levels switched off (their connectors stay unused)."""
    _, options = kd_run
    log = run('bash', 'tools/dist_train.sh',
              'configs/digits/cls_uniform_kd.py', 2, '--work-dir', tmp_path,
              '--cfg-options', *options,
              'model.selector.type=FixedSelector',
              'model.selector.mask=[1,0,1,0]', *iters(2), PORT='29517')
    assert 'Distributed training: True' in log
    assert 'sel_c3: 0.0000' in log and 'sel_c4: 1.0000' in log
    ckpt = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 2
