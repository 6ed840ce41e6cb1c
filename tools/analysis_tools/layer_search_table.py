"""The layer-search comparison: every search's chosen mask, what the search
cost, and the mask retrained with the standard schedule over several seeds
next to uniform KD and the student alone.

    python tools/analysis_tools/layer_search_table.py work_dirs/search \
        --task det --teacher work_dirs/pareto/det/teacher/teacher.pth \
        [--seeds 0 1 2] [--jobs 2]

Reads every ``ROOT/*/search_result.json`` (``tools/search_layers.py``), then
trains each distinct chosen mask with the task's KD config and a
``FixedSelector`` (the runs of ``pareto.py``, cached in its work root, so a
mask, uniform KD or the student alone is trained once for both tools), and
writes ``results/layer_search_<task>.md``.
"""
import argparse
import json
import os
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor
from glob import glob

import pareto
from grid_summary import aggregate, fmt
from pyramidkd_mm.experiment import run_cached


def selector_of(mask, levels):
    if not mask:
        return 'student'
    if len(mask) == len(levels):
        return 'uniform'
    return 'mask:' + '+'.join(mask)


def search_details(result):
    """Gate margins from the threshold, or the masks a search scored."""
    if 'margins' in result:
        return 'margins ' + ' / '.join(f'{m:+.2f}' for m in result['margins'])
    if 'probabilities' in result:
        return 'gates ' + ' / '.join(f'{p:.3f}'
                                     for p in result['probabilities'])
    return f"{len(result.get('candidates', []))} masks scored"


def table(results, rows, spec, seeds):
    """The markdown table lines: one row per search (its mask's retrained
    ``rows`` entry, see :func:`aggregate`), then uniform KD and the student
    alone."""
    metric = spec['metric'].split('/')[-1]
    lines = [f'| searcher | mask | search | search proxy {metric} | '
             'distill cost | search wall time | device-hours | '
             f'{metric} retrained ({seeds} seeds) |',
             '|---|---|---|---|---|---|---|---|']
    for r in results:
        proxy = r['metric'].get(spec['metric'])
        row = rows[selector_of(r['mask'], spec['levels']), None]
        lines.append(
            f"| {r['searcher']} | {' '.join(r['mask']) or '(none)'} | "
            f"{search_details(r)} | "
            f"{'-' if proxy is None else f'{proxy:.3f}'} | "
            f"{r['distill_cost']:.2f} | {r['search_wall_s'] / 60:.1f} min | "
            f"{r['device_hours']:.3f} | {fmt(row['metric'])} |")
    for name, label in (('uniform', 'uniform KD (no search)'),
                        ('student', 'student alone')):
        row = rows[name, None]
        lines.append(f"| {label} | - | - | - | {row['cost'][0]:.2f} | - | - "
                     f"| {fmt(row['metric'])} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='folder of the searches\' work_dirs')
    parser.add_argument('--task', default='det', choices=sorted(pareto.TASKS))
    parser.add_argument('--teacher', required=True)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--work-root', default=osp.join(
        pareto.ROOT, 'work_dirs', 'pareto'))
    parser.add_argument('--out', default=osp.join(pareto.ROOT, 'results'))
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every retrain')
    args = parser.parse_args()
    spec = pareto.TASKS[args.task]
    results = []
    for path in sorted(glob(osp.join(args.root, '*', 'search_result.json'))):
        with open(path) as f:
            results.append(json.load(f))
    selectors = {selector_of(r['mask'], spec['levels']) for r in results}
    selectors |= {'student', 'uniform'}
    runs = pareto.grid(args.task, sorted(selectors), [None], args.seeds,
                       osp.abspath(args.teacher), args.work_root,
                       args.cfg_options)
    threads = str(max(1, (os.cpu_count() or 1) // args.jobs))
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {key: pool.submit(run_cached, run,
                                    env=dict(OMP_NUM_THREADS=threads))
                   for key, run in runs.items()}
        records = {key: f.result() for key, f in futures.items()}
    lines = table(results, aggregate(records, spec['metric']), spec,
                  len(args.seeds))
    command = 'python tools/analysis_tools/layer_search_table.py ' + \
        ' '.join(sys.argv[1:])
    report = (f'# Layer search, digits {args.task}\n\n`{command}`\n\n'
              + '\n'.join(lines) + '\n\nRetrained: the chosen mask with the '
              "KD config's schedule from scratch on all training images, "
              'mean ± std over seeds; distill cost: the spent teacher '
              'compute of the mask (1 = uniform KD).\n')
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, f'layer_search_{args.task}.md'), 'w') as f:
        f.write(report)
    print(report)


if __name__ == '__main__':
    main()
