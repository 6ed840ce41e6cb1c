"""Record a digits task for meta-learning: the states and per-level gains of
a short uniform-KD run, as a TaskCache.

Trains the task's RL-KD config (``configs/digits/{task}_rl_kd.py``) with
every level of every sample distilled, as phase 1 does: ``--warmup``
iterations, then ``--iters`` recorded ones. For each recorded sample it
keeps the state the policy would see (the environment's state) and, for
each level, the gain its distillation bought in the step: the drop of the
level's loss across the optimiser step, relative to the level's running
loss, in units of the running typical gain, exactly as
:class:`DistillationEnvironment` scales rewards. The teacher cost of every
mask and the environment's budget and price complete the cache (see
:class:`TaskCache` for the reward it replays).

    python tools/analysis_tools/record_task.py --task det \
        [--warmup 100] [--iters 100] [--out work_dirs/meta/det_cache.pth] \
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import os
import os.path as osp
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

from pyramidkd_mm.datasets import prepare_data
from pyramidkd_mm.engine import unwrapped_model
from pyramidkd_mm.models.selectors import UniformSelector
from pyramidkd_mm.registry import MODELS
from pyramidkd_mm.rl import DistillationEnvironment
from pyramidkd_mm.rl.task_cache import TaskCache


@MODELS.register_module()
class RecordingSelector(UniformSelector):
    """Every level of every sample, keeping the environment's states and
    asking the distiller for the step's outcome while ``recording``."""

    def __init__(self, env=dict(), **kwargs):
        super().__init__(**kwargs)
        self.env = DistillationEnvironment(len(self.levels), **env)
        self.recording = False
        self.states = None

    @property
    def needs_outcome(self):
        return self.recording and self.training

    def forward(self, student_feats, data_samples):
        if self.needs_outcome:
            self.states = self.env.reset(student_feats.top,
                                         student_feats[:len(self.levels)])
        return self.all_levels(student_feats)


class TaskRecorder(Hook):
    """Records states and per-level gains after each step from ``start``."""

    def __init__(self, start):
        self.start = start
        self.states, self.gains = [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        unwrapped_model(runner).selector.recording = runner.iter >= self.start

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = unwrapped_model(runner)
        selector = model.selector
        if not selector.recording:
            return
        outcome = model.outcome()
        before, after = outcome.loss_before, outcome.loss_after
        env = selector.env
        first = env.steps.item() == 0
        scales = (env.level_scale.clone(), env.gain_scale.clone())
        env.step(torch.ones_like(before), before, after, outcome.cost)
        if first:  # the first step sets the scales it uses
            scales = (env.level_scale, env.gain_scale)
        self.states.append(selector.states.cpu())
        self.gains.append(((before - after) / scales[0] / scales[1]).cpu())


def record(task, warmup, iters, teacher, work_dir, options=None):
    """Runs the recording; returns the TaskCache."""
    cfg = Config.fromfile(f'configs/digits/{task}_rl_kd.py')
    if options:
        cfg.merge_from_dict(options)
    # per-level gains across the step, as phase 4 scores them, whatever the
    # reward the task's RL-KD config trains with
    env = dict(cfg.model.selector.env, reward='gain')
    cfg.model.selector = dict(type='pyramidkd_mm.RecordingSelector', env=env)
    cfg.model.teacher.checkpoint = teacher
    total = warmup + iters
    cfg.train_cfg.max_iters = total
    cfg.train_cfg.val_interval = total
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=total + 1, save_last=False)
    cfg.custom_hooks = []
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.work_dir = work_dir
    prepare_data(cfg)
    runner = Runner.from_cfg(cfg)
    recorder = TaskRecorder(warmup)
    runner.register_hook(recorder, 'LOW')
    runner.train()
    model = unwrapped_model(runner)
    num_levels = len(model.levels)
    masks = (torch.arange(2**num_levels)[:, None]
             & 2**torch.arange(num_levels)).gt(0)
    with torch.no_grad():
        costs = model.teacher_cost(masks.to(model.teacher_cost.own.device))
    costs = costs.cpu()
    return TaskCache(task, torch.cat(recorder.states),
                     torch.cat(recorder.gains), costs, budget=env['budget'],
                     lam=env['lam'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', required=True, choices=['det', 'seg', 'cls'])
    parser.add_argument('--warmup', type=int, default=100,
                        help='uniform-KD iterations before recording')
    parser.add_argument('--iters', type=int, default=100,
                        help='recorded iterations')
    parser.add_argument('--teacher', help='teacher weights (default: '
                        'work_dirs/{task}_teacher/teacher.pth)')
    parser.add_argument('--out', help='cache file (default: '
                        'work_dirs/meta/{task}_cache.pth)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    args = parser.parse_args()
    teacher = args.teacher or f'work_dirs/{args.task}_teacher/teacher.pth'
    out = args.out or f'work_dirs/meta/{args.task}_cache.pth'
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    start = time.time()
    cache = record(args.task, args.warmup, args.iters, teacher,
                   osp.join(osp.dirname(osp.abspath(out)),
                            f'record_{args.task}'), args.cfg_options)
    cache.save(out)
    gains = cache.gains
    print(f'{args.task}: {len(cache)} samples, states of size '
          f'{cache.state_dim}, mean gain per level '
          f'{[round(g, 3) for g in gains.mean(0).tolist()]}, mask costs '
          f'{[round(c, 2) for c in cache.mask_costs.tolist()]}; '
          f'{time.time() - start:.0f} s -> {out}')


if __name__ == '__main__':
    main()
