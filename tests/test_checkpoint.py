"""Which checkpoints are unpickled in full (torch >= 2.6 weights_only): the
user's own runs from any entry point, never a foreign file."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.runner import CheckpointLoader, Runner

from pyramidkd_mm.checkpoint import trust_checkpoints
from conftest import toy_loader


def runner_like(path):
    """A file holding more than weights, as a Runner checkpoint does."""
    torch.save(dict(state_dict=dict(w=torch.ones(2)),
                    message_hub=dict(seed=np.int64(3))), path)


def test_untrusted_full_checkpoint_gets_one_clear_error(tmp_path):
    runner_like(tmp_path / 'elsewhere.pth')
    with pytest.raises(pickle.UnpicklingError, match='extract_weights.py'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'elsewhere.pth'))


def test_weights_only_files_load_anywhere(tmp_path):
    torch.save(dict(state_dict=dict(w=torch.ones(2))), tmp_path / 'w.pth')
    ckpt = CheckpointLoader.load_checkpoint(str(tmp_path / 'w.pth'))
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_trusted_work_dir_loads_in_full(tmp_path):
    (tmp_path / 'run').mkdir()
    runner_like(tmp_path / 'run' / 'iter_1.pth')
    runner_like(tmp_path / 'other.pth')
    trust_checkpoints(str(tmp_path / 'run'))
    ckpt = CheckpointLoader.load_checkpoint(str(tmp_path / 'run/iter_1.pth'))
    assert ckpt['message_hub']['seed'] == 3
    with pytest.raises(pickle.UnpicklingError):  # siblings stay untrusted
        CheckpointLoader.load_checkpoint(str(tmp_path / 'other.pth'))


def plain_runner(work_dir, max_iters=2, **kwargs):
    """A toolbox-style Runner, as mmdet's tools/train.py builds it with
    custom_imports=['pyramidkd_mm']: nothing of this project's tools."""
    return Runner(
        model=dict(type='ToyPyramidModel'), work_dir=str(work_dir),
        train_dataloader=toy_loader(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           by_epoch=False, interval=2)),
        default_scope='pyramidkd_mm', **kwargs)


def test_own_runs_resume_and_load_from_any_entry_point(tmp_path):
    first = plain_runner(tmp_path / 'first')
    first.train()
    checkpoint = tmp_path / 'first' / 'iter_2.pth'
    # --resume of one's own work_dir, then load_from of another own run
    resumed = plain_runner(tmp_path / 'first', max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    loaded = plain_runner(tmp_path / 'second', load_from=str(checkpoint))
    loaded.train()
    # The same file copied out of its run is a foreign file.
    (tmp_path / 'downloads').mkdir()
    foreign = tmp_path / 'downloads' / 'model.pth'
    foreign.write_bytes(checkpoint.read_bytes())
    with pytest.raises(pickle.UnpicklingError, match='not a checkpoint of'):
        plain_runner(tmp_path / 'third', load_from=str(foreign)).train()
