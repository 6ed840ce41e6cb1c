"""Iteration time and peak memory: student alone vs uniform KD vs teacher.

Each mode runs in its own process (clean peak-memory accounting) on the same
real batches of the digits data: ``student`` trains the plain student,
``kd`` trains the uniform-KD distiller (student + teacher pyramid +
distillation losses), ``teacher`` runs the teacher's pyramid forward under
no_grad (the extra work KD adds). Ratios are taken against the student,
measured side by side in one run.

    python tools/analysis_tools/benchmark_kd.py [--task det] [--iters 20]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODES = ('student', 'kd', 'teacher')


def rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure(task, mode, iters, warmup):
    """Run one mode in this process; returns timing and memory."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from pyramidkd_mm.datasets import prepare_data
    from pyramidkd_mm.models import build_teacher
    from pyramidkd_mm.registry import MODELS

    torch.manual_seed(0)
    cfg = Config.fromfile(f'configs/digits/{task}_'
                          f'{"student" if mode == "student" else "uniform_kd"}'
                          '.py')
    prepare_data(cfg)
    if cfg.get('data_preprocessor') is not None:  # as the Runner merges it
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        batches = [b for _, b in zip(range(iters + warmup), loader)]
        if mode == 'teacher':
            model = build_teacher(cfg.model.teacher.config, None).eval()
        else:
            if mode == 'kd':  # speed does not depend on the weights
                cfg.model.teacher.checkpoint = None
            model = MODELS.build(cfg.model).train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3,
                                         momentum=0.9))
    base = rss_mib()
    times = []
    for i, data in enumerate(batches):
        start = time.perf_counter()
        if mode == 'teacher':
            with torch.no_grad():
                model.extract_feat(
                    model.data_preprocessor(data, False)['inputs'])
        else:
            model.train_step(data, optim)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(mode=mode, iter_s=sum(times) / len(times), peak_mib=peak,
                peak_over_model_mib=peak - base)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='det', choices=['det', 'seg', 'cls'])
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--mode', choices=MODES, help='(internal) one mode')
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.task, args.mode, args.iters,
                                 args.warmup)))
        return
    results = {}
    for mode in MODES:
        print(f'measuring {mode} ...', flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, '--task', args.task, '--mode', mode,
             '--iters', str(args.iters), '--warmup', str(args.warmup)],
            capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f'{mode} failed:\n{proc.stderr[-3000:]}')
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ref = results['student']
    print(f'\n{args.task}: {args.iters} iterations after {args.warmup} '
          f'warm-up, torch threads {os.environ.get("OMP_NUM_THREADS", "default")}')
    print('| mode | iter time | vs student | peak RSS | peak over model '
          '| vs student |\n|---|---|---|---|---|---|')
    for mode, r in results.items():
        print(f"| {mode} | {r['iter_s']:.3f} s | "
              f"{r['iter_s'] / ref['iter_s']:.2f}x | {r['peak_mib']:.0f} MiB"
              f" | {r['peak_over_model_mib']:.0f} MiB | "
              f"{r['peak_over_model_mib'] / ref['peak_over_model_mib']:.2f}x |")


if __name__ == '__main__':
    main()
