"""Building a frozen teacher from a toolbox config and its checkpoint."""
import os.path as osp

from mmengine.config import Config
from mmengine.runner import load_state_dict
from mmengine.runner.checkpoint import _load_checkpoint

from ..registry import MODELS
from ..scope import resolve_config


def build_teacher(config, checkpoint):
    """Build the teacher from a config file and load its weights.

    Args:
        config (str): config path (``mmdet::...`` scopes work) whose
            ``model`` is the teacher.
        checkpoint (str | None): weights, a path or URL; ``None`` keeps a
            randomly initialised teacher (tests and benchmarks only).
    """
    cfg = Config.fromfile(resolve_config(config))
    model_cfg = cfg.model
    model_cfg.setdefault('_scope_', cfg.get('default_scope'))
    if cfg.get('data_preprocessor') is not None:  # as the Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    teacher = MODELS.build(model_cfg)
    if checkpoint is None:
        return teacher
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'teacher checkpoint {checkpoint!r} does not exist; train the '
            f'teacher with tools/train.py {config} or point '
            'model.teacher.checkpoint at its weights')
    state = _load_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    expected = teacher.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f'teacher checkpoint {checkpoint} does not match the teacher '
            f'config {config}: {len(missing)} missing keys '
            f'{missing[:3]}, {len(unexpected)} unexpected keys '
            f'{unexpected[:3]}, {len(wrong)} shape mismatches {wrong[:3]}')
    load_state_dict(teacher, state, strict=True)
    teacher._is_init = True  # the Runner's init_weights must not reset it
    return teacher
