"""The main job: teacher, student alone, uniform KD, RL-KD and the random
control at RL-KD's spent compute, on the digits detection scenes.

Generates the digits detection data, trains the teacher (800 iterations),
then the student alone, with uniform pyramid KD, with RL-KD (phases at 20 %
and 50 % of the schedule) and with a random sample selector whose budget is
the teacher compute RL-KD actually spent (500 iterations each, two at a
time), all from the KD config with only the selector changed (the student
alone is the KD config with every level switched off). Each is evaluated
with mmdet's CocoMetric at the end. Prints the table (mAP, mAP_s/m/l, spent
teacher compute, wall time), writes it to ``results/demo_det.md`` and draws
the RL policy's heatmap into ``results/policy_heatmap_det.png``.

Runs are the Pareto tool's (``work_dirs/pareto/det``, seed 0, cached):
a second ``make demo`` only prints the table, and the det grid of
``tools/analysis_tools/pareto.py`` reuses them; ``--force`` retrains.

    python tools/demo.py [--force]
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
import pareto  # noqa: E402
from pyramidkd_mm.experiment import run_cached  # noqa: E402

METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_s', 'bbox_mAP_m',
           'bbox_mAP_l')


def table(rows):
    head = ('| run | mAP | mAP_50 | mAP_s | mAP_m | mAP_l | spent teacher '
            'compute | iters | wall time |')
    lines = [head, '|---' * (head.count('|') - 1) + '|']
    for label, r in rows:
        cost = '-' if r.distill_cost is None else f'{r.distill_cost:.2f}'
        lines.append(
            f'| {label} | ' + ' | '.join(
                f"{r.metrics[f'coco/{m}']:.3f}" for m in METRICS) +
            f' | {cost} | {r.iters} | {r.wall_s / 60:.1f} min |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--force', action='store_true',
                        help='retrain even where a finished run exists')
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs',
                                                        'pareto'))
    args = parser.parse_args()
    start = time.time()
    teacher, teacher_record = pareto.train_teacher('det', args.work_root)

    def runs(selector, budget=None):
        return pareto.grid('det', [selector], [budget], [0], teacher,
                           args.work_root).popitem()[1]

    env = dict(OMP_NUM_THREADS='1')  # two runs at a time on 2 cores
    with ThreadPoolExecutor(2) as pool:
        rl = pool.submit(run_cached, runs('rl', 0.5), args.force, env)
        others = [pool.submit(run_cached, runs(name), args.force, env)
                  for name in ('student', 'uniform')]
        spent = round(rl.result().distill_cost, 2)
        random = pool.submit(run_cached, runs('random_samples', spent),
                             args.force, env)
        student, uniform = (f.result() for f in others)
        rows = [('teacher', teacher_record), ('student alone', student),
                ('uniform KD', uniform), ('RL-KD (budget 0.5)', rl.result()),
                (f'random samples at RL-KD\'s spent {spent}',
                 random.result())]
    report = (f'# Digits detection demo\n\n`python tools/demo.py`\n\n'
              f'{table(rows)}\n\nmAP: mmdet CocoMetric on the 150 '
              'validation scenes, seed 0. Spent teacher compute: mean '
              'fraction of the teacher pyramid FLOPs of uniform KD spent per '
              'image over the run (RL-KD distills uniformly in its first '
              'phase). Students: 500 iterations, two runs at a time, one '
              'thread each.\n')
    os.makedirs(osp.join(ROOT, 'results'), exist_ok=True)
    rl_run = rl.result().run
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'analysis_tools', 'policy_heatmap.py'),
        rl_run['config'],
        osp.join(rl_run['work_dir'], f'iter_{rl.result().iters}.pth'),
        '--out', osp.join(ROOT, 'results', 'policy_heatmap_det.png'),
        '--cfg-options', *rl_run['options']], check=True, cwd=ROOT)
    out = osp.join(ROOT, 'results', 'demo_det.md')
    with open(out, 'w') as f:
        f.write(report)
    print('\n' + report + f'\nwritten to {out} '
          f'({(time.time() - start) / 60:.1f} min)')


if __name__ == '__main__':
    main()
