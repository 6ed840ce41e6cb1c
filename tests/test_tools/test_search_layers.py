"""tools/search_layers.py on the real digits search configs (tiny): a GDAS-LS
and an EA-LS search, their comparison table, and the written fixed_mask.py
read back as a FixedSelector distillation config."""
import sys

from mmengine.config import Config

from test_tools import random_teacher, run


def test_searches_write_masks_and_compare(tmp_path, digits_data):
    teacher = random_teacher(tmp_path, 'det')
    common = [f'model.teacher.checkpoint={teacher}',
              'model.student.init_cfg=None', 'train_dataloader.batch_size=2',
              'default_hooks.logger.interval=1']
    root = tmp_path / 'search'
    log = run(sys.executable, 'tools/search_layers.py',
              'configs/digits/search/det_gdas.py', '--work-dir', root / 'gdas',
              '--cfg-options', *common, 'train_cfg.max_iters=2',
              'train_cfg.val_interval=2', 'val_dataloader.dataset.indices=4',
              'custom_hooks.0.search_dataloader.batch_size=2')
    assert 'gdas_tau: 10.0000' in log and 'GDAS-LS chose' in log
    log = run(sys.executable, 'tools/search_layers.py',
              'configs/digits/search/det_evolution.py', '--work-dir',
              root / 'evolution', '--cfg-options', *common,
              'train_cfg.finetune_iters=1', 'train_cfg.population_size=2',
              'train_cfg.num_generations=0',
              'val_dataloader.dataset.indices=-4')
    # The candidates it scored, then one row per search in the folder.
    assert log.count('| EA-LS |') == 1 and log.count('| GDAS-LS |') == 1
    assert 'fitness' in log
    fragment = Config.fromfile(str(root / 'evolution' / 'fixed_mask.py'))
    assert fragment.model.selector.type == 'pyramidkd_mm.FixedSelector'
    assert fragment.model.type == 'pyramidkd_mm.PyramidDistiller'
    assert fragment.work_dir == str(root / 'evolution' / 'fixed_mask')
