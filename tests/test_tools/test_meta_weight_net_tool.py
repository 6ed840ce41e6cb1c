"""tools/analysis_tools/meta_weight_net.py: every method's config on a
setting reads that setting's splits, seed, schedule and teacher, and only
the model differs between methods (same batches, schedule and start)."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO

spec = importlib.util.spec_from_file_location(
    'meta_weight_net_tool',
    osp.join(REPO, 'tools', 'analysis_tools', 'meta_weight_net.py'))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


@pytest.mark.parametrize('setting', ['clean', 'lt100'])
def test_method_configs_differ_only_in_the_model(setting):
    configs = {m: tool.method_config(m, setting, 300, 2, teacher='t.pth')
               for m in tool.METHODS}
    for method, cfg in configs.items():
        assert cfg.noisy_digits_data.root.endswith(f'cls_noisy/{setting}/')
        assert cfg.noisy_digits_data.get('noise') == tool.SETTINGS[
            setting].get('noise')
        assert cfg.train_dataloader.dataset.ann_file == \
            f'cls_noisy/{setting}/train.txt'
        for loader in (cfg.val_dataloader, cfg.test_dataloader):
            assert loader.dataset.ann_file == f'cls_noisy/{setting}/val.txt'
        assert (cfg.randomness.seed, cfg.train_cfg.max_iters,
                cfg.train_cfg.val_interval, cfg.param_scheduler.T_max) == (
                    2, 300, 30, 300)
        hooks = [h for h in cfg.get('custom_hooks', [])
                 if 'meta_dataloader' in h]
        assert len(hooks) == ('mwn' in method)
        for hook in hooks:
            assert hook.meta_dataloader.dataset.ann_file == \
                f'cls_noisy/{setting}/meta.txt'
        inner = cfg.model.get('model', cfg.model)
        if 'kd' in method:
            assert inner.teacher.checkpoint == 't.pth'
            assert osp.isfile(inner.teacher.config)
    assert configs['mwn'].model.normalize
    assert not configs['mwn_raw'].model.normalize
    # the student, data and optimisation are the same for every method
    ce = configs.pop('ce')
    assert configs.pop('teacher').model.backbone.base_channels == \
        2 * ce.model.backbone.base_channels
    for cfg in configs.values():
        inner = cfg.model.get('model', cfg.model)
        assert inner.get('student', inner) == ce.model
        for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                    'data_preprocessor'):
            assert cfg[key] == ce[key], key


def test_dumped_config_reloads(tmp_path):
    cfg = tool.method_config('kd_mwn', 'uniform40', 100, 0)
    cfg.dump(str(tmp_path / 'config.py'))
    again = Config.fromfile(str(tmp_path / 'config.py'))
    assert again.model.type == 'pyramidkd_mm.MetaWeightedModel'
    assert again.custom_hooks[0].meta_dataloader.dataset.ann_file == \
        'cls_noisy/uniform40/meta.txt'
