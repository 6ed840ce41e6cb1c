"""Which checkpoints are unpickled in full (torch >= 2.6 weights_only)."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.runner import CheckpointLoader

from pyramidkd_mm.checkpoint import trust_checkpoints


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
