"""Run a layer search and compare it with the other searches beside it.

    python tools/search_layers.py CONFIG [--work-dir DIR] [--resume]
        [--cfg-options k=v ...] [--launcher none|pytorch]

CONFIG is a search config (``configs/digits/search/det_{darts,gdas,
evolution,exhaustive}.py``, ``configs/search/*_coco.py``). The search runs
in mmengine's Runner with a progress bar and writes, into its work_dir,
``search_result.json`` (mask, distillation cost, metric, search wall time and
device-hours) and ``fixed_mask.py``, a config that trains the chosen mask
with ``FixedSelector``: ``python tools/train.py WORK_DIR/fixed_mask.py``.
Then it prints one row per ``search_result.json`` in the work_dir's parent
folder (the searches run side by side), and the candidates a mask search
scored.
"""
import argparse
import json
import os.path as osp
from glob import glob

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import Runner
from rich.progress import Progress

from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.datasets import prepare_data
from pyramidkd_mm.engine import setup_cpu_distributed
from train import build_cfg, parse_common


class ProgressHook(Hook):
    """A progress bar over the search's iterations (an upper bound for
    EA-LS, which may stop early)."""

    priority = 'LOWEST'

    def __init__(self, progress):
        self.progress = progress

    def before_train(self, runner):
        self.task = self.progress.add_task(
            osp.basename(runner.work_dir), total=runner.max_iters,
            completed=runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.progress.update(self.task, completed=runner.iter + 1)


def comparison(root):
    """Markdown rows for every search result under ``root``."""
    lines = ['| searcher | mask | distill cost | metric | search wall time '
             '| device-hours |', '|---|---|---|---|---|---|']
    for path in sorted(glob(osp.join(root, '*', 'search_result.json'))):
        with open(path) as f:
            r = json.load(f)
        scores = {k: v for k, v in r['metric'].items()
                  if isinstance(v, float)}
        main = {k: v for k, v in scores.items()
                if k.endswith(('mAP', 'top1', 'mIoU'))} or scores
        metric = ', '.join(f'{k.split("/")[-1]} {v:.3f}'
                           for k, v in main.items())
        lines.append(
            f"| {r['searcher']} | {' '.join(r['mask']) or '(none)'} | "
            f"{r['distill_cost']:.2f} | {metric} ({r['metric']['source']}) | "
            f"{r['search_wall_s'] / 60:.1f} min | {r['device_hours']:.3f} |")
    return '\n'.join(lines)


def candidates(result):
    lines = ['| mask | metric | distill cost | fitness | seconds |',
             '|---|---|---|---|---|']
    for c in result.get('candidates', []):
        score = c['fitness'] + result['cost_weight'] * c['cost']
        lines.append(f"| {' '.join(c['mask']) or '(none)'} | {score:.3f} | "
                     f"{c['cost']:.2f} | {c['fitness']:.4f} | "
                     f"{c['seconds']:.0f} |")
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description='Search pyramid levels')
    parser.add_argument('config', help='search config file path')
    parser.add_argument('--work-dir', help='folder for the search')
    parser.add_argument('--resume', action='store_true',
                        help='continue the search in work_dir')
    args = parse_common(parser)
    cfg = build_cfg(args)
    if args.resume:
        cfg.resume, cfg.load_from = True, None
    trust_checkpoints(cfg.work_dir)
    prepare_data(cfg)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    with Progress(disable=not is_main_process()) as progress:
        runner.register_hook(ProgressHook(progress))
        runner.train()
    if is_main_process():
        with open(osp.join(cfg.work_dir, 'search_result.json')) as f:
            result = json.load(f)
        if result.get('candidates'):
            print(candidates(result))
        print(comparison(osp.dirname(osp.abspath(cfg.work_dir))))


if __name__ == '__main__':
    main()
