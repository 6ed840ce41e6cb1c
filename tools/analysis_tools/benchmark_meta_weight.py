"""Iteration time of a Meta-Weight-Net step against a plain one, for CE and
for KD, measured side by side: plain and MW-Net iterations alternate on the
same batches in one process (one thread), the MW-Net one doing what
``MetaWeightHook`` does before the Runner's step. The configs are the noisy
digits ones (40 % uniform noise); the KD teacher has random weights (speed
does not depend on them).

    python tools/analysis_tools/benchmark_meta_weight.py [--iters 20]
"""
import argparse
import os.path as osp
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAIRS = (('CE', 'cls_noisy', 'cls_mwn'),
         ('KD', 'cls_noisy_kd', 'cls_noisy_kd_mwn'))


def build(name):
    """Model, optim wrapper, train loader and endless meta batches (None
    without a MetaWeightHook) of a digits config."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from pyramidkd_mm.datasets import prepare_data
    from pyramidkd_mm.engine import endless_batches
    from pyramidkd_mm.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'digits', f'{name}.py'))
    prepare_data(cfg)
    inner = cfg.model.get('model', cfg.model)
    if 'teacher' in inner:
        inner.teacher.checkpoint = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(dict(cfg.model,
                                  data_preprocessor=cfg.data_preprocessor))
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        train = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        meta = None
        for hook in cfg.get('custom_hooks', []):
            meta = endless_batches(Runner.build_dataloader(
                hook.meta_dataloader, seed=0))
    return model.train(), optim, train, meta


def benchmark(iters, warmup=3):
    """Median seconds per iteration of each config, keyed by name, and the
    MW-Net / plain ratios, keyed 'CE' and 'KD'."""
    import torch

    from pyramidkd_mm.engine import meta_weight_step
    torch.set_num_threads(1)
    times = {}
    for kind, plain, mwn in PAIRS:
        runs = {name: build(name) for name in (plain, mwn)}
        batches = [b for _, b in zip(range(iters + warmup), runs[plain][2])]
        adam = torch.optim.Adam(runs[mwn][0].weight_net.parameters(), 1e-3)
        spent = {plain: [], mwn: []}
        for i, batch in enumerate(batches):
            for name in ((plain, mwn) if i % 2 else (mwn, plain)):
                model, optim, _, meta = runs[name]
                start = time.perf_counter()
                if meta is not None:  # as MetaWeightHook.before_train_iter
                    meta_weight_step(
                        model, adam, model.data_preprocessor(batch, True),
                        model.data_preprocessor(next(meta), True),
                        optim.get_lr()['lr'][0])
                model.train_step(batch, optim)
                if i >= warmup:
                    spent[name].append(time.perf_counter() - start)
        times.update({name: float(np.median(t)) for name, t in spent.items()})
        times[kind] = times[mwn] / times[plain]
    return times


def markdown(times, iters):
    """The timing table and how it was measured."""
    return '\n'.join(
        ['| step | plain | MW-Net | ratio |', '|---|---|---|---|'] +
        [f'| {kind} | {times[plain]:.3f} s | {times[mwn]:.3f} s | '
         f'{times[kind]:.2f}x |' for kind, plain, mwn in PAIRS] +
        ['', f'Seconds per iteration, median over {iters} iterations each, '
         'plain and MW-Net alternating on the same batches in one process, '
         'one thread (`tools/analysis_tools/benchmark_meta_weight.py`).'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=20)
    args = parser.parse_args()
    print(markdown(benchmark(args.iters), args.iters))


if __name__ == '__main__':
    main()
