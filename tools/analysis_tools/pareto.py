"""Pareto frontier of distillation methods: metric against the teacher
compute actually spent, per digits task, over budgets and seeds.

    python tools/analysis_tools/pareto.py --task det \
        [--selectors student uniform random_samples random_levels \
         uncertainty early rl mask:p3+p4] [--budgets 0.25 0.5 0.75] \
        [--seeds 0 1 2] [--teacher work_dirs/det_teacher/teacher.pth] \
        [--jobs 2] [--work-root work_dirs/pareto] [--cfg-options k=v ...] \
        [--teacher-cfg-options k=v ...]

Every (selector, budget, seed) is one training run of the task's KD config
(``rl``: its RL-KD config) that differs from the others only in the selector
(and the seed): same teacher, schedule, batches per seed. ``student`` is the
KD config with every level switched off (the student alone, cost 0),
``uniform`` distills every level (cost 1), ``random_samples`` /
``random_levels`` are :class:`RandomSelector`, ``uncertainty`` is
:class:`UncertaintySelector`, ``early`` :class:`EarlySelector` (uniform
KD for the first ``budget`` of the run), ``mask:p3+p4`` a fixed subset
(e.g. a layer search's choice) and ``rl`` RL-KD with its budget;
``rl:key=value,...`` is an RL-KD variant for ablations, with keys ``action``
(levels, sample, sample_levels), ``reward`` (gain, gap, disagreement),
``signals`` (entropy), ``recurrent`` (0/1), ``lam_lr`` (0 fixes the price
of compute), ``gradnorm`` (0/1), ``freeze`` (the student module frozen in
phase 2, or None), ``standardize`` (0/1, the signals standardised),
``features`` (0 leaves the pooled features out of the state), ``calibrate``
(0/1, the rate paced and the rewards centred, see ``RLSelector``) and
``warmup`` (the fraction of the run in phase 1, 0.2 in the configs).
``random_samples:warmup=0.2`` distills every sample for the first fifth of
the run (RL-KD's phase 1) and random samples after it, spending the same
budget: RL-KD's schedule without its policy; ``uncertainty:warmup=0.2`` the
same with the heuristic's choices (``uncertainty:pick=sure``: the samples
the student is surest of). ``stream=N`` (controls and RL-KD) draws the
selector's choices from the random stream of seed N instead of the run's:
``random_samples:warmup=0.2,stream=100`` beside
``random_samples:warmup=0.2`` is an A/A pair, the same student with other
random choices, whose paired difference is the noise floor a selector must
clear. A budgeted selector written
``name@0.6`` runs at that budget instead of ``--budgets`` (e.g. a random
control at the cost another selector spent).
The teacher is trained first unless ``--teacher`` names its weights. Runs
are cached in their work_dirs (:func:`pyramidkd_mm.experiment.run_cached`): an
interrupted grid resumes where it stopped. Writes
``results/pareto_<task>.md`` (mean and std over seeds of the metric, of the
spent cost and of the wall time) and ``results/pareto_<task>.png``.
"""
import argparse
import math
import os
import re
import os.path as osp
import statistics
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed

from mmengine.config import Config
from rich.progress import Progress

from pyramidkd_mm.experiment import TrainingRun, run_cached

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))
from model_converters.extract_weights import extract  # noqa: E402

TASKS = dict(
    det=dict(metric='coco/bbox_mAP', budgets=(0.25, 0.5, 0.75),
             levels=('p2', 'p3', 'p4', 'p5')),
    seg=dict(metric='mIoU', budgets=(0.5, ), levels=('c2', 'c3', 'c4', 'c5')),
    cls=dict(metric='accuracy/top1', budgets=(0.5, ),
             levels=('c2', 'c3', 'c4', 'c5')),
)
BUDGETED = ('random_samples', 'random_levels', 'uncertainty', 'early', 'rl')
# control keys (random_samples:key=value, uncertainty:...) -> config option
RANDOM_KEYS = dict(warmup='model.selector.warmup={}',
                   stream='model.selector.stream_seed={}')
UNCERTAINTY_KEYS = dict(RANDOM_KEYS, pick='model.selector.pick={}')
# the other budgeted controls -> (selector type, their keys)
CONTROLS = dict(uncertainty=('UncertaintySelector', UNCERTAINTY_KEYS),
                early=('EarlySelector', {}))


# RL-KD ablation keys (rl:key=value,...) -> config option
RL_KEYS = dict(
    action='model.selector.action={}', reward='model.selector.env.reward={}',
    signals='model.selector.signals=[{}]',
    recurrent='model.selector.policy.recurrent={}',
    lam_lr='model.selector.env.lam_lr={}',
    standardize='model.selector.env.standardize_signals={}',
    features='model.selector.env.pooled_features={}',
    calibrate='model.selector.calibrate={}',
    gradnorm='model.loss_balancer.type={}',
    freeze='custom_hooks.0.freeze={}',
    warmup='custom_hooks.0.milestones=[{},{}]',
    stream=RANDOM_KEYS['stream'])


def budgeted(name):
    return name.split(':')[0] in BUDGETED


def phase_iters(task):
    """(iterations, start of phase 3) of the task's RL-KD config."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'digits',
                                   f'{task}_rl_kd.py'))
    return cfg.train_cfg.max_iters, cfg.custom_hooks[0]['milestones'][1]


def spec_items(spec):
    """{key: value} of a selector variant 'key=value,...'."""
    return dict(item.partition('=')[::2]
                for item in filter(None, spec.split(',')))


def variant_options(spec, keys, task=None):
    """--cfg-options of a selector variant 'key=value,...' (``keys``:
    RL_KEYS or a control's keys; ``task`` for RL-KD's ``warmup``)."""
    options = []
    for key, value in spec_items(spec).items():
        if key not in keys:
            raise ValueError(f'unknown selector option {key!r}; known: '
                             f'{sorted(keys)}')
        if key in ('recurrent', 'standardize', 'features', 'calibrate'):
            value = bool(int(value))
        if key == 'gradnorm':
            if not int(value):
                continue  # the configs have no balancer
            value = 'GradNorm'
        if keys is RL_KEYS and key == 'warmup':  # phase 2 starts earlier
            iters, joint = phase_iters(task)
            value = (int(float(value) * iters), joint)
            options.append(keys[key].format(*value))
            continue
        options.append(keys[key].format(value))
    return options


def fixed_mask(flags):
    return ['model.selector.type=FixedSelector',
            'model.selector.mask=[' + ','.join(map(str, flags)) + ']']


def selector_options(name, budget, task):
    """(config kind, --cfg-options) of a selector at a budget."""
    levels = TASKS[task]['levels']
    if name == 'student':
        return 'uniform_kd', fixed_mask([0] * len(levels))
    if name == 'uniform':
        return 'uniform_kd', []
    if name.startswith('mask:'):
        return 'uniform_kd', fixed_mask(
            [int(level in name[5:].split('+')) for level in levels])
    base, _, spec = name.partition(':')
    if base in ('random_samples', 'random_levels'):
        return 'uniform_kd', ['model.selector.type=RandomSelector',
                              f'model.selector.budget={budget}',
                              f'model.selector.mode={base[7:]}',
                              *variant_options(spec, RANDOM_KEYS)]
    if base in CONTROLS:
        selector, keys = CONTROLS[base]
        return 'uniform_kd', [f'model.selector.type={selector}',
                              f'model.selector.budget={budget}',
                              *variant_options(spec, keys)]
    if base == 'rl':
        return 'rl_kd', [f'model.selector.env.budget={budget}',
                         *variant_options(spec, RL_KEYS, task)]
    raise ValueError(f'unknown selector {name!r}')


def grid(task, selectors, budgets, seeds, teacher, work_root, extra=()):
    """The runs of the grid: {(selector, budget, seed): TrainingRun};
    ``extra`` options apply to every run."""
    runs = {}
    for name in selectors:
        name, _, own = name.partition('@')  # a budget of its own
        its_budgets = [float(own)] if own else budgets
        for budget in (its_budgets if budgeted(name) else (None, )):
            kind, options = selector_options(name, budget, task)
            for seed in seeds:
                label = re.sub(r'[^A-Za-z0-9.]+', '_', name)
                label += f'_b{budget}' if budget is not None else ''
                runs[name, budget, seed] = TrainingRun(
                    osp.join(ROOT, 'configs', 'digits',
                             f'{task}_{kind}.py'),
                    osp.join(work_root, task, f'{label}_s{seed}'),
                    [f'randomness.seed={seed}',
                     f'model.teacher.checkpoint={teacher}', *options,
                     *extra])
    return runs


def train_teacher(task, work_root, extra=()):
    """Train the task's teacher once; returns its weights file."""
    run = TrainingRun(osp.join(ROOT, 'configs', 'digits',
                               f'{task}_teacher.py'),
                      osp.join(work_root, task, 'teacher'), list(extra))
    record = run_cached(run)
    weights = osp.join(run.work_dir, 'teacher.pth')
    if not osp.exists(weights):
        extract(osp.join(run.work_dir, f'iter_{record.iters}.pth'), weights)
    return weights, record


def provenance(records):
    """Which code trained the grid's runs (see ``code_version``)."""
    counts = Counter(record.code or 'unknown' for record in records.values())
    return 'Trained with the code of ' + ', '.join(
        f'{code} ({n} run{"s" if n > 1 else ""})'
        for code, n in sorted(counts.items())) + '.'


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values)
                                     if len(values) > 1 else 0.0)


def aggregate(records, metric):
    """{(selector, budget): dict(metric, cost, wall mean and std, n and the
    metric per seed)}."""
    points = {}
    for (name, budget, seed), record in records.items():
        points.setdefault((name, budget), {})[seed] = record
    rows = {}
    for key, group in points.items():
        per_seed = {s: r.metrics[metric] for s, r in sorted(group.items())}
        rows[key] = dict(
            n=len(group), per_seed=per_seed,
            metric=mean_std(list(per_seed.values())),
            cost=mean_std([r.distill_cost or 0.0 for r in group.values()]),
            wall=mean_std([r.wall_s / 60 for r in group.values()]))
    return rows


def fmt(pair, digits=3):
    mean, std = pair
    return '-' if mean is None else f'{mean:.{digits}f} ± {std:.{digits}f}'


def table(rows, metric, teacher):
    lines = [f'| selector | budget | {metric} | per seed | spent teacher '
             'compute | wall time (min) | seeds |', '|---' * 7 + '|']
    for (name, budget), row in sorted(
            rows.items(), key=lambda kv: (kv[1]['cost'][0], kv[0][0])):
        seeds = ' / '.join(f'{v:.3f}' for v in row['per_seed'].values())
        lines.append(f"| {name} | {'-' if budget is None else budget} | "
                     f"{fmt(row['metric'])} | {seeds} | "
                     f"{fmt(row['cost'], 2)} | {fmt(row['wall'], 1)} | "
                     f"{row['n']} |")
    if teacher is not None:
        lines.append(f'| teacher | - | {teacher.metrics[metric]:.3f} | - | '
                     f'- | {teacher.wall_s / 60:.1f} | 1 |')
    return '\n'.join(lines)


def pooled(*stds):
    return math.sqrt(sum(s * s for s in stds) / len(stds))


def paired(row, base):
    """'; paired by seed ...' text: mean ± std of ``row`` - ``base`` over
    the seeds both ran (same initial state and batches per seed), or ''."""
    seeds = sorted(set(row['per_seed']) & set(base['per_seed']))
    if len(seeds) < 2:
        return ''
    mean, std = mean_std([row['per_seed'][s] - base['per_seed'][s]
                          for s in seeds])
    return f'; paired by seed {mean:+.3f} ± {std:.3f} over {len(seeds)}'


def standings(rows):
    """What the table says, as text lines: the distillation gap in pooled
    standard deviations (and how many seeds give the resolution of 6 pooled
    std at 3 seeds: the standard error of a difference of means shrinks as
    sqrt(2 / seeds)), and each selector against random samples at the
    nearest spent cost (a selector with a warm-up, RL-KD's included, also
    against random samples and the heuristic after the same warm-up):
    ``beats`` / ``loses to`` by more than the pooled std, else ``ties``.
    Each line adds the per-seed paired difference, which seed-to-seed
    swings of a whole run do not blur."""
    lines = []
    if ('student', None) in rows and ('uniform', None) in rows:
        (low, s_low), (high, s_high) = (rows['student', None]['metric'],
                                        rows['uniform', None]['metric'])
        spread = pooled(s_low, s_high)
        n = min(rows['student', None]['n'], rows['uniform', None]['n'])
        if spread > 0:
            gap = (high - low) / spread
            # gap * sqrt(seeds / 2) standard errors = 6 * sqrt(3 / 2)
            seeds = math.ceil(3 * 6 ** 2 / gap ** 2) if gap > 0 else None
            lines.append(
                f'- uniform − student = {high - low:.3f}, {gap:.1f} pooled '
                f'std over {n} seeds; 6 pooled std at 3 seeds would need '
                f'{seeds or "∞"} seeds at this gap'
                + paired(rows['uniform', None], rows['student', None]))
    for (name, budget), (spread, streams, seeds) in choice_noise(
            rows).items():
        lines.append(f'- A/A: {name}@{budget} with {streams} random streams '
                     f'beside the same student: within-seed std {spread:.3f} '
                     f'over {seeds} seeds, the noise floor of a paired '
                     'difference per run')
    for (name, budget), row in rows.items():
        if name in ('student', 'uniform', 'random_samples'):
            continue
        label = name if budget is None else f'{name}@{budget}'
        lines += versus(label, row, rows, 'random_samples')
        base, _, spec = name.partition(':')
        warmup = spec_items(spec).get('warmup',
                                      '0.2' if base == 'rl' else None)
        if warmup is None:
            continue
        # and the same schedule with the controls' choices
        for control in ('random_samples', 'uncertainty'):
            if name != f'{control}:warmup={warmup}':
                lines += versus(label, row, rows, f'{control}:warmup={warmup}')
    return '\n'.join(lines)


def choice_noise(rows):
    """{(selector, budget): (pooled within-seed std, streams, seeds)} of
    the selectors that ran with other random streams (``stream=N``) beside
    their default one: the spread of their choices alone."""
    groups = {}
    for (name, budget), row in rows.items():
        base, _, spec = name.partition(':')
        items = spec_items(spec)
        items.pop('stream', None)
        plain = base + (':' + ','.join(f'{k}={v}' for k, v in items.items())
                        if items else '')
        groups.setdefault((plain, budget), []).append(row['per_seed'])
    noise = {}
    for key, replicates in groups.items():
        seeds = set.intersection(*(set(r) for r in replicates))
        if len(replicates) > 1 and seeds:
            variance = statistics.mean(statistics.variance(
                [r[s] for r in replicates]) for s in seeds)
            noise[key] = math.sqrt(variance), len(replicates), len(seeds)
    return noise


def versus(label, row, rows, control):
    """['- label ... beats / ties / loses to <control> at its nearest spent
    cost'], or [] when the grid has no such control."""
    controls = [(r['cost'][0], r) for (name, _), r in rows.items()
                if name == control]
    if not controls:
        return []
    cost, base = min(controls, key=lambda c: abs(c[0] - row['cost'][0]))
    diff = row['metric'][0] - base['metric'][0]
    spread = pooled(row['metric'][1], base['metric'][1])
    verdict = ('beats' if diff > spread else
               'loses to' if diff < -spread else 'ties')
    return [f'- {label} at {row["cost"][0]:.2f} spent {verdict} '
            f'{control.replace("_", " ")} at {cost:.2f} ({diff:+.3f}, '
            f'pooled std {spread:.3f}{paired(row, base)})']


def plot(rows, metric, task, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name in dict.fromkeys(n for n, _ in rows):
        keys = sorted((k for k in rows if k[0] == name),
                      key=lambda k: rows[k]['cost'][0])
        for ax, x in zip(axes, ('cost', 'wall')):
            ax.errorbar([rows[k][x][0] for k in keys],
                        [rows[k]['metric'][0] for k in keys],
                        xerr=[rows[k][x][1] for k in keys],
                        yerr=[rows[k]['metric'][1] for k in keys],
                        marker='o', capsize=3, label=name)
    axes[0].set_xlabel('teacher compute spent (fraction of uniform KD)')
    axes[1].set_xlabel('wall time per run (min)')
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(f'digits {task}: mean ± std over seeds')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=sorted(TASKS), required=True)
    parser.add_argument('--selectors', nargs='+', default=[
        'student', 'uniform', 'random_samples', 'random_levels',
        'uncertainty', 'rl'])
    parser.add_argument('--budgets', nargs='+', type=float)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--teacher', help='teacher weights (trained once '
                        'into the work root if not given)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs in parallel (threads split the cores, '
                        'unless OMP_NUM_THREADS is set: then each run has '
                        'that many, e.g. 1 for two grids side by side)')
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs',
                                                        'pareto'))
    parser.add_argument('--out', default=osp.join(ROOT, 'results'))
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every student run')
    parser.add_argument('--teacher-cfg-options', nargs='+', default=[],
                        help='key=value overrides for the teacher run')
    args = parser.parse_args()
    spec = TASKS[args.task]
    teacher_record = None
    if args.teacher is None:
        args.teacher, teacher_record = train_teacher(
            args.task, args.work_root, args.teacher_cfg_options)
    runs = grid(args.task, args.selectors, args.budgets or spec['budgets'],
                args.seeds, osp.abspath(args.teacher), args.work_root,
                args.cfg_options)
    threads = os.environ.get('OMP_NUM_THREADS') or str(
        max(1, (os.cpu_count() or 1) // args.jobs))
    records = {}
    with Progress() as progress, ThreadPoolExecutor(args.jobs) as pool:
        bar = progress.add_task(f'pareto {args.task}', total=len(runs))
        futures = {pool.submit(run_cached, run,
                               env=dict(OMP_NUM_THREADS=threads)): key
                   for key, run in runs.items()}
        for future in as_completed(futures):
            key = futures[future]
            records[key] = record = future.result()
            progress.console.print(
                f'{key}: {spec["metric"]} '
                f'{record.metrics[spec["metric"]]:.3f}, cost '
                f'{record.distill_cost or 0:.2f}, '
                f'{record.wall_s / 60:.1f} min')
            progress.advance(bar)
    rows = aggregate(records, spec['metric'])
    os.makedirs(args.out, exist_ok=True)
    command = 'python tools/analysis_tools/pareto.py ' + ' '.join(
        sys.argv[1:])
    report = (f'# Pareto frontier, digits {args.task}\n\n`{command}`\n\n'
              f'{table(rows, spec["metric"], teacher_record)}\n\n'
              f'{standings(rows)}\n\n'
              'Mean ± std over seeds (per seed: in seed order); spent '
              'teacher compute: the teacher '
              'FLOPs of the calls made per sample over the whole run '
              '(distill_cost_mean), 1 = uniform KD; wall time with '
              f'{args.jobs} run(s) in parallel on the machine.\n\n'
              f'{provenance(records)}\n')
    with open(osp.join(args.out, f'pareto_{args.task}.md'), 'w') as f:
        f.write(report)
    plot(rows, spec['metric'], args.task,
         osp.join(args.out, f'pareto_{args.task}.png'))
    print(report)


if __name__ == '__main__':
    main()
