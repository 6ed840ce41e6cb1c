"""Every config builds, production ones included (no weights downloaded)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from pyramidkd_mm.models import PyramidDistiller
from pyramidkd_mm.registry import MODELS

from conftest import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                           recursive=True))


def test_all_configs_are_covered():
    names = {osp.relpath(c, osp.join(REPO, 'configs')) for c in CONFIGS}
    for task in ('coco', 'ade20k', 'imagenet'):
        assert {f'rl_kd_{task}.py', f'uniform_kd_{task}.py'} <= names
    for task in ('det', 'seg', 'cls'):
        for kind in ('teacher', 'student', 'uniform_kd'):
            assert f'digits/{task}_{kind}.py' in names
    for search in ('darts', 'gdas', 'evolution', 'exhaustive'):
        assert {f'digits/search/det_{search}.py',
                f'search/{search}_coco.py'} <= names


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(c, REPO) for c in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['pyramidkd_mm']
    model_cfg = cfg.model
    if model_cfg.type == 'pyramidkd_mm.MetaWeightedModel':  # its inner one
        model_cfg = model_cfg.model
    if model_cfg.type == 'pyramidkd_mm.PyramidDistiller':
        model_cfg.teacher.checkpoint = None  # production URLs stay unread
    if cfg.get('data_preprocessor') is not None:  # as the Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(model_cfg)
    if isinstance(model, PyramidDistiller):
        assert len(model.levels) == 4
        assert not model.teacher.training


def _uniform_sibling(path):
    """The uniform-KD config of the same task as an RL-KD config."""
    name = osp.basename(path)
    if osp.basename(osp.dirname(path)) == 'digits':
        return osp.join(osp.dirname(path),
                        name.split('_')[0] + '_uniform_kd.py')
    return osp.join(osp.dirname(path), 'uniform_kd_' + name.split('_')[-1])


@pytest.mark.parametrize('path', [c for c in CONFIGS if 'rl_kd' in c],
                         ids=lambda c: osp.relpath(c, REPO))
def test_rl_kd_sees_the_batches_of_uniform_kd(path):
    # Under `diff_rank_seed` mmengine seeds the train sampler at random
    # (Runner.build_dataloader), so RL-KD and the controls of one seed
    # would see different batches and the comparison would vary the data.
    rl = Config.fromfile(path)
    uniform = Config.fromfile(_uniform_sibling(path))
    assert rl.get('randomness') == uniform.get('randomness')
    assert not (rl.get('randomness') or {}).get('diff_rank_seed', False)
