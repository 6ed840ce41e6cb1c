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
(0/1, the rate paced and the rewards centred, see ``RLSelector``),
``importance`` (0/1, with ``calibrate``: distilled samples weigh 1/target,
as ``random_samples:importance=1``) and
``warmup`` (the fraction of the run in phase 1, 0.2 in the configs).
``random_samples:warmup=0.2`` distills every sample for the first fifth of
the run (RL-KD's phase 1) and random samples after it, spending the same
budget: RL-KD's schedule without its policy; ``uncertainty:warmup=0.2`` the
same with the heuristic's choices (``uncertainty:pick=sure``: the samples
the student is surest of). ``oracle`` is :class:`GapOracleSelector`:
the teacher on every sample (spent cost 1), and the ``budget`` fraction
farthest from it distilled (``oracle:pick=near``: the nearest); beside
random samples at the same budget it says what choosing samples can be
worth at all. ``stream=N`` (controls and RL-KD) draws the
selector's choices from the random stream of seed N instead of the run's:
``random_samples:warmup=0.2,stream=100`` beside
``random_samples:warmup=0.2`` is an A/A pair, the same student with other
random choices, whose paired difference is the noise floor a selector must
clear. ``random_samples:importance=1`` weighs each distilled sample by
the inverse of its probability, so that the distillation loss is an
unbiased estimate of uniform KD's; ``uncertainty`` and ``oracle`` take
``importance=1`` too (their distilled samples weigh ``1 / rate``). A
budgeted selector written ``name@0.6`` runs at that budget instead of
``--budgets`` (e.g. a random control at the cost another selector spent).
The teacher is trained first unless ``--teacher`` names its weights. Runs
are cached in their work_dirs (:func:`pyramidkd_mm.experiment.run_cached`): an
interrupted grid resumes where it stopped. Writes
``results/pareto_<task>.md`` (mean and std over seeds of the metric, of the
spent cost and of the wall time) and ``results/pareto_<task>.png``.
"""
import argparse
import os
import re
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

from mmengine.config import Config
from rich.progress import Progress

from grid_summary import aggregate, provenance, spec_items, standings, table
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
BUDGETED = ('random_samples', 'random_levels', 'uncertainty', 'early',
            'oracle', 'rl')
# control keys (random_samples:key=value, uncertainty:...) -> config option
STREAM_KEYS = dict(warmup='model.selector.warmup={}',
                   stream='model.selector.stream_seed={}')
RANDOM_KEYS = dict(STREAM_KEYS, importance='model.selector.importance={}')
UNCERTAINTY_KEYS = dict(RANDOM_KEYS, pick='model.selector.pick={}')
# the other budgeted controls -> (selector type, their keys)
CONTROLS = dict(uncertainty=('UncertaintySelector', UNCERTAINTY_KEYS),
                early=('EarlySelector', {}),
                oracle=('GapOracleSelector', UNCERTAINTY_KEYS))


# RL-KD ablation keys (rl:key=value,...) -> config option
RL_KEYS = dict(
    action='model.selector.action={}', reward='model.selector.env.reward={}',
    signals='model.selector.signals=[{}]',
    recurrent='model.selector.policy.recurrent={}',
    lam_lr='model.selector.env.lam_lr={}',
    standardize='model.selector.env.standardize_signals={}',
    features='model.selector.env.pooled_features={}',
    calibrate='model.selector.calibrate={}',
    importance='model.selector.importance={}',
    gradnorm='model.loss_balancer.type={}',
    freeze='custom_hooks.0.freeze={}',
    warmup='custom_hooks.0.milestones=[{},{}]',
    stream=STREAM_KEYS['stream'])


def budgeted(name):
    return name.split(':')[0] in BUDGETED


def phase_iters(task):
    """(iterations, start of phase 3) of the task's RL-KD config."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'digits',
                                   f'{task}_rl_kd.py'))
    return cfg.train_cfg.max_iters, cfg.custom_hooks[0]['milestones'][1]


def variant_options(spec, keys, task=None):
    """--cfg-options of a selector variant 'key=value,...' (``keys``:
    RL_KEYS or a control's keys; ``task`` for RL-KD's ``warmup``)."""
    options = []
    for key, value in spec_items(spec).items():
        if key not in keys:
            raise ValueError(f'unknown selector option {key!r}; known: '
                             f'{sorted(keys)}')
        if key in ('recurrent', 'standardize', 'features', 'calibrate',
                   'importance'):
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
