"""Meta-Weight-Net on noisy and long-tailed digits: CE, MW-Net, KD and
KD + MW-Net (on the distillation loss) per setting and seed, the learned
weighting functions, and the cost of an MW-Net step.

Every run is ``tools/train.py`` on its method's config
(``configs/digits/cls_noisy.py``, ``cls_mwn.py``, ``cls_noisy_kd.py``,
``cls_noisy_kd_mwn.py``) pointed at the setting's annotation files
(:func:`generate_noisy_digits`, noise drawn with seed 0 for every run), with
``randomness.seed`` the run's seed. The KD teacher of a setting
(``cls_noisy_teacher.py``, seed 0) is trained on the same noisy labels.
After an MW-Net run the tool evaluates its weighting net on the training
set (per-sample losses of the final model, no augmentation): the mean
weight of mislabelled and of correctly labelled samples, per class, and the
curve weight(loss). Runs are cached as the Pareto tool's are
(:func:`pyramidkd_mm.experiment.run_cached`), so an interrupted grid
resumes where it stopped. The step cost is measured
side by side in this process: plain and MW-Net iterations alternate on the
same batches (``benchmark_meta_weight.py``).

Writes ``results/meta_weight_net.md`` and one
``results/meta_weight_net_<setting>.png`` per setting.

    python tools/analysis_tools/meta_weight_net.py [--settings clean ...]
        [--seeds 0 1 2] [--methods ce mwn kd kd_mwn] [--iters 1200]
        [--kd-settings clean uniform40] [--bench-iters 20]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))
from analysis_tools.benchmark_meta_weight import (  # noqa: E402
    benchmark, markdown)
from analysis_tools.plot_meta_weights import plot_weighting  # noqa: E402
from model_converters.extract_weights import extract  # noqa: E402
from pyramidkd_mm.datasets import prepare_data  # noqa: E402
from pyramidkd_mm.experiment import (  # noqa: E402
    TrainingRun, read_scalars, run_cached)

SETTINGS = dict(  # in the order they run: the targets' settings first
    clean=dict(), uniform40=dict(noise='uniform', rate=0.4),
    uniform60=dict(noise='uniform', rate=0.6),
    pair40=dict(noise='pair', rate=0.4), lt100=dict(imbalance=100),
    uniform20=dict(noise='uniform', rate=0.2), lt50=dict(imbalance=50),
    lt10=dict(imbalance=10))
METHODS = dict(  # config; mwn_raw: MW-Net without normalised weights
    teacher='cls_noisy_teacher', ce='cls_noisy', ce_long='cls_noisy',
    mwn='cls_mwn', mwn_raw='cls_mwn',
    kd='cls_noisy_kd', kd_mwn='cls_noisy_kd_mwn')
LABELS = dict(ce='CE', ce_long='CE, MW-Net\'s compute', mwn='MW-Net',
              mwn_raw='MW-Net, unnormalised', kd='KD', kd_mwn='KD + MW-Net',
              teacher='teacher (seed 0)')
CONFIGS = osp.join(ROOT, 'configs', 'digits')


def method_config(method, setting, iters, seed, teacher=None):
    """The config of ``method`` on ``setting`` with the schedule."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, f'{METHODS[method]}.py'))
    if method == 'mwn_raw':
        cfg.model.normalize = False
    rel = f'cls_noisy/{setting}/'
    cfg.noisy_digits_data = dict(
        root=osp.join(ROOT, 'data', 'digits', rel),
        images=osp.join(ROOT, 'data', 'digits', 'cls'), **SETTINGS[setting])
    cfg.train_dataloader.dataset.ann_file = rel + 'train.txt'
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.ann_file = rel + 'val.txt'
    for hook in cfg.get('custom_hooks', []):
        if 'meta_dataloader' in hook:
            hook.meta_dataloader.dataset.ann_file = rel + 'meta.txt'
    cfg.randomness.seed = seed
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters // 10
    cfg.param_scheduler.T_max = iters
    cfg.default_hooks.checkpoint.interval = iters
    inner = cfg.model.get('model', cfg.model)
    if 'teacher' in inner:
        inner.teacher = dict(
            config=osp.join(CONFIGS, 'cls_noisy_teacher.py'),
            checkpoint=teacher)
    return cfg


def train(method, setting, seed, iters, work_dir, teacher=None):
    """One training run, cached (:func:`run_cached`): its top-1 at every
    evaluation, the last and best, wall and CPU time, and for an MW-Net run
    its weighting net on the training set."""
    config = work_dir + '.py'  # beside the work_dir, which a rerun clears
    os.makedirs(osp.dirname(work_dir), exist_ok=True)
    method_config(method, setting, iters, seed, teacher).dump(config)
    print(f'==> {setting} {method} seed {seed}', flush=True)
    record = run_cached(TrainingRun(config, work_dir))
    top1 = [(s['step'], s['accuracy/top1']) for s in read_scalars(work_dir)
            if 'accuracy/top1' in s]
    result = dict(top1=top1, last=top1[-1][1], best=max(a for _, a in top1),
                  wall_s=record.wall_s, cpu_s=record.cpu_s)
    if 'mwn' in method:
        weights = osp.join(work_dir, 'weights.json')
        if not osp.exists(weights):
            analysis = analyse(work_dir, setting, iters)
            with open(weights, 'w') as f:
                json.dump(analysis, f)
        with open(weights) as f:
            result.update(json.load(f))
    return result


def analyse(work_dir, setting, iters):
    """The final weighting net on the training set (no augmentation)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from pyramidkd_mm.registry import MODELS
    cfg = Config.fromfile(work_dir + '.py')  # as train() wrote it
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(dict(cfg.model,
                                  data_preprocessor=cfg.data_preprocessor))
        loader = Runner.build_dataloader(dict(
            cfg.train_dataloader, batch_size=256,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(cfg.train_dataloader.dataset,
                         pipeline=cfg.test_pipeline)))
    state = torch.load(osp.join(work_dir, f'iter_{iters}.pth'),
                       map_location='cpu', weights_only=False)
    model.load_state_dict(state['state_dict'])
    model.eval()
    losses = torch.cat([model.sample_losses(**model.data_preprocessor(b))
                        for b in loader])
    with torch.no_grad():
        weights = model.weight_net(losses).numpy()
        grid = torch.linspace(0, float(losses.quantile(0.99)), 100)
        curve = model.weight_net(grid).numpy()
    with open(osp.join(ROOT, 'data', 'digits', 'cls_noisy', setting,
                       'info.json')) as f:
        info = json.load(f)
    observed = np.array([int(line.split()[1]) for line in open(
        osp.join(ROOT, 'data', 'digits', 'cls_noisy', setting,
                 'train.txt'))])
    wrong = observed != np.array(info['true_labels'])
    losses = losses.numpy()
    return dict(
        weight_clean=float(weights[~wrong].mean()),
        weight_wrong=float(weights[wrong].mean()) if wrong.any() else None,
        class_weights=[float(weights[observed == c].mean())
                       for c in range(10)],
        curve=[grid.tolist(), curve.tolist()],
        loss_clean=losses[~wrong].tolist(), loss_wrong=losses[wrong].tolist())


def grid(args, work):
    """Every run of the grid, teachers first; {(setting, method): [result
    per seed]}."""
    results = {}
    for setting in args.settings:
        methods = [m for m in args.methods if all(
            setting in only for key, only in (
                ('kd', args.kd_settings), ('ce_long', args.long_settings),
                ('mwn_raw', args.raw_settings)) if key in m)]
        teacher = None
        if any('kd' in m for m in methods):
            folder = osp.join(work, setting, 'teacher')
            results[setting, 'teacher'] = [train(
                'teacher', setting, 0, args.iters, folder)]
            teacher = osp.join(folder, 'teacher.pth')
            if not osp.exists(teacher):
                extract(osp.join(folder, f'iter_{args.iters}.pth'), teacher)
        for seed in args.seeds:
            for method in methods:
                iters = args.iters * (args.long if method == 'ce_long'
                                      else 1)
                results.setdefault((setting, method), []).append(train(
                    method, setting, seed, iters,
                    osp.join(work, setting, f'{method}_s{seed}'), teacher))
    return results


def mean_std(values):
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f'{np.mean(values):.1f} ± {std:.1f}'


def weights_cell(runs, setting):
    """Mean weights of the final weighting nets: mislabelled / clean, tail
    class / head class under a long tail, else all samples."""
    if 'weight_clean' not in runs[0]:
        return '-'

    def mean(key, index=None):
        return np.mean([r[key] if index is None else r[key][index]
                        for r in runs])

    if SETTINGS[setting].get('imbalance'):
        return (f"tail {mean('class_weights', 9):.3g} / "
                f"head {mean('class_weights', 0):.3g}")
    if runs[0]['weight_wrong'] is not None:
        return (f"mislabelled {mean('weight_wrong'):.3g} / "
                f"clean {mean('weight_clean'):.3g}")
    return f"all {mean('weight_clean'):.3g}"


def table(results, settings):
    lines = ['| setting | wrong labels | method | top-1 last | top-1 best | '
             'mean weight | runs |', '|---' * 7 + '|']
    for setting in settings:
        cfg = method_config('ce', setting, 10, 0)
        prepare_data(cfg)  # runs cached elsewhere leave no data here
        with open(osp.join(cfg.noisy_digits_data.root, 'info.json')) as f:
            wrong = f"{100 * json.load(f)['mislabelled_fraction']:.0f} %"
        for method in METHODS:
            runs = results.get((setting, method))
            if runs:
                label = LABELS[method]
                lines.append(
                    f'| {setting} | {wrong} | {label} | '
                    f"{mean_std([r['last'] for r in runs])} | "
                    f"{mean_std([r['best'] for r in runs])} | "
                    f'{weights_cell(runs, setting)} | {len(runs)} |')
    return '\n'.join(lines)


def targets(results, times):
    """The issue's targets, checked on what ran."""
    def mean(setting, method, key='last'):
        runs = results.get((setting, method))
        return np.mean([r[key] for r in runs]) if runs else np.nan

    ce, mwn = mean('uniform40', 'ce'), mean('uniform40', 'mwn')
    clean_ce, clean_mwn = mean('clean', 'ce'), mean('clean', 'mwn')
    clean_std = np.std([r['last'] for r in results.get(('clean', 'ce'), [])],
                       ddof=1)
    lower = {m: [r['weight_wrong'] < r['weight_clean']
                 for (_, method), runs in results.items() if method == m
                 for r in runs if r.get('weight_wrong') is not None]
             for m in ('mwn', 'kd_mwn', 'mwn_raw')}
    out = [
        f'- 40 % uniform: MW-Net last - CE last = {mwn - ce:+.1f} points '
        f'(target >= +10); MW-Net last {mwn:.1f} vs CE best '
        f"{mean('uniform40', 'ce', 'best'):.1f} (target: not below); CE "
        f"at MW-Net's compute: last {mean('uniform40', 'ce_long'):.1f}, "
        f"best {mean('uniform40', 'ce_long', 'best'):.1f}.",
        f'- 0 % noise: MW-Net - CE = {clean_mwn - clean_ce:+.2f} points at '
        f'the last evaluation, CE std {clean_std:.2f} (target: within one '
        'std).',
        '- Mislabelled samples weighted lower than clean ones: ' + ', '.join(
            f'{LABELS[m]} in {sum(v)} of {len(v)} runs'
            for m, v in lower.items()) + ' (settings with label noise).']
    if times:
        out.append(f"- MW-Net step cost: {times['CE']:.2f}x a plain CE step, "
                   f"{times['KD']:.2f}x a plain KD step (target <= 3x).")
    return '\n'.join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS),
                        choices=list(SETTINGS))
    students = [m for m in METHODS if m != 'teacher']
    parser.add_argument('--methods', nargs='+', default=students,
                        choices=students)
    parser.add_argument('--kd-settings', nargs='+',
                        default=['clean', 'uniform40'],
                        help='settings that also run the KD methods')
    parser.add_argument('--long-settings', nargs='+', default=['uniform40'],
                        help="settings that also run CE for MW-Net's "
                        'compute (--long times the iterations)')
    parser.add_argument('--long', type=int, default=4)
    parser.add_argument('--raw-settings', nargs='+',
                        default=['clean', 'uniform40'],
                        help='settings that also run MW-Net without '
                        'normalised weights')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=1200)
    parser.add_argument('--bench-iters', type=int, default=20,
                        help='timed iterations per method (0: skip)')
    parser.add_argument('--work-dir',
                        default=osp.join(ROOT, 'work_dirs', 'meta_weight_net'))
    args = parser.parse_args()
    start = time.time()
    results = grid(args, args.work_dir)
    times = benchmark(args.bench_iters) if args.bench_iters else None
    runs = [r for rs in results.values() for r in rs]
    command = 'python tools/analysis_tools/meta_weight_net.py ' + ' '.join(
        sys.argv[1:])
    report = [
        '# Meta-Weight-Net on noisy and long-tailed digits', '',
        f'`{command}`', '', table(results, args.settings), '',
        f'Top-1 (%) on the 360 clean validation crops, mean ± std (n-1) over '
        f'seeds {args.seeds}, at the last of 10 evaluations and at the best '
        f'one ({args.iters} iterations of batch 64; "CE, MW-Net\'s compute": '
        f'{args.long * args.iters}, about the CPU time of an MW-Net run). '
        'Mean weight: the final '
        'weighting net on the final model\'s per-sample training losses '
        '(long tail: tail class 9 / head class 0). The teacher is trained '
        'on the same noisy labels.', '', targets(results, times), '',
        f'{len(runs)} runs: {sum(r["cpu_s"] for r in runs) / 3600:.2f} '
        f'CPU-hours, {sum(r["wall_s"] for r in runs) / 3600:.2f} h wall '
        f'(this invocation: {(time.time() - start) / 3600:.2f} h).']
    if times:
        report += ['', markdown(times, args.bench_iters)]
    os.makedirs(osp.join(ROOT, 'results'), exist_ok=True)
    for setting in args.settings:
        panels = {f'{LABELS[m]}, {setting}: mean weight '
                  f'{weights_cell(results[setting, m], setting)}':
                  results[setting, m] for m in ('mwn', 'kd_mwn', 'mwn_raw')
                  if (setting, m) in results}
        if panels:
            plot_weighting(panels, osp.join(
                ROOT, 'results', f'meta_weight_net_{setting}.png'))
    out = osp.join(ROOT, 'results', 'meta_weight_net.md')
    with open(out, 'w') as f:
        f.write('\n'.join(report) + '\n')
    print('\n'.join(report) + f'\n\nwritten to {out}')


if __name__ == '__main__':
    main()
