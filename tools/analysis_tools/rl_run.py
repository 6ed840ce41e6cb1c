"""What the RL-KD analysis tools share: the command line that names a run
and the run's model, loaded from its checkpoint."""
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint, set_random_seed

from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.models import RLSelector
from pyramidkd_mm.registry import MODELS


def add_run_arguments(parser):
    parser.add_argument('config', help='RL-KD config')
    parser.add_argument('checkpoint', help='checkpoint of its run')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')


def load_rl_run(args, dataloader, teacher=True):
    """The run's distiller (eval mode) and its ``dataloader`` (e.g.
    ``'val_dataloader'``); ``teacher=False`` leaves the teacher's weights
    unloaded when only the student and the policy are needed. Seeded, so
    that a training pipeline's augmentations repeat from call to call."""
    set_random_seed(0)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not teacher:
        cfg.model.teacher.checkpoint = None
    if cfg.get('data_preprocessor') is not None:  # as the Runner merges it
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    trust_checkpoints(args.checkpoint)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        if not isinstance(model.selector, RLSelector):
            raise SystemExit(f'{args.config} has no RLSelector')
        load_checkpoint(model, args.checkpoint, map_location='cpu')
        model.eval()
        return model, Runner.build_dataloader(cfg[dataloader], seed=0)
