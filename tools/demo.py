"""The main job: teacher, student alone, uniform KD and RL-KD on the digits
scenes.

Generates the digits detection data, trains the teacher (longer, as a
teacher is), exports its weights, trains the student alone, with uniform
pyramid KD and with RL-KD (phases at 20 % and 50 % of the schedule) for the
same shorter schedule, and evaluates each with mmdet's CocoMetric at the end
of its training. Prints a table (mAP, mAP_s/m/l, distillation cost, wall
time), writes it to ``results/demo_det.md`` and draws the RL policy's
heatmap into ``results/policy_heatmap_det.png``.

Finished runs are reused (their last checkpoint and metrics are kept), so a
second ``make demo`` only prints the table; ``--force`` retrains everything.

    python tools/demo.py [--force] [--teacher-iters N] [--iters N]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from glob import glob

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))
from model_converters.extract_weights import extract  # noqa: E402

STAGES = (('teacher', 'det_teacher'), ('student alone', 'det_student'),
          ('uniform KD', 'det_uniform_kd'), ('RL-KD', 'det_rl_kd'))
METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_s', 'bbox_mAP_m',
           'bbox_mAP_l')


def read_scalars(work_dir):
    """Training and validation scalars of the latest run in ``work_dir``."""
    logs = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        return []
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f]


def run_stage(name, iters, work_root, force):
    """Train one config unless a finished run exists; returns its record."""
    work_dir = osp.join(work_root, name)
    record = osp.join(work_dir, 'demo_record.json')
    if not force and osp.exists(record):
        with open(record) as f:
            done = json.load(f)
        if done['iters'] == iters:
            return done
    config = osp.join(ROOT, 'configs', 'digits', f'{name}.py')
    # The schedule follows the iterations: the configs derive the LR step
    # (at 75 %) from their own max_iters when they are parsed.
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', f'max_iters={iters}',
           f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
           f'param_scheduler.1.end={iters}',
           f'param_scheduler.1.milestones=[{iters * 3 // 4}]',
           f'default_hooks.checkpoint.interval={iters}']
    if 'kd' in name:
        cmd.append('model.teacher.checkpoint=' +
                   osp.join(work_root, 'det_teacher', 'teacher.pth'))
    if 'rl' in name:
        cmd.append(f'custom_hooks.0.milestones=[{iters // 5},{iters // 2}]')
    print(f'\n==> training {name} for {iters} iterations: {" ".join(cmd)}',
          flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.time() - start
    scalars = read_scalars(work_dir)
    val = [s for s in scalars if 'coco/bbox_mAP' in s][-1]
    costs = [s['distill_cost'] for s in scalars if 'distill_cost' in s]
    # RL-KD: what the policy spends once it alone decides (phase 3)
    last = [s['distill_cost'] for s in scalars if s.get('rl_phase') == 3]
    result = dict(name=name, wall_s=wall, iters=iters,
                  distill_cost=sum(costs) / len(costs) if costs else None,
                  distill_cost_phase3=sum(last) / len(last) if last else None,
                  **{m: val[f'coco/{m}'] for m in METRICS})
    with open(record, 'w') as f:
        json.dump(result, f)
    return result


def table(rows):
    head = ('| run | mAP | mAP_50 | mAP_s | mAP_m | mAP_l | distill cost '
            '| iters | wall time |')
    lines = [head, '|---' * (head.count('|') - 1) + '|']
    for label, r in rows:
        cost = '-' if r['distill_cost'] is None else f"{r['distill_cost']:.2f}"
        if r.get('distill_cost_phase3') is not None:
            cost += f" ({r['distill_cost_phase3']:.2f} in phase 3)"
        lines.append(
            f"| {label} | " + ' | '.join(f'{r[m]:.3f}' for m in METRICS) +
            f" | {cost} | {r['iters']} | {r['wall_s'] / 60:.1f} min |")
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--force', action='store_true',
                        help='retrain even where a finished run exists')
    parser.add_argument('--teacher-iters', type=int, default=800,
                        help='training iterations of the teacher')
    parser.add_argument('--iters', type=int, default=500,
                        help='training iterations of each student')
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs'),
                        help='folder holding one work_dir per stage')
    args = parser.parse_args()
    work_root = osp.abspath(args.work_root)
    start = time.time()
    rows = []
    for label, name in STAGES:
        iters = args.teacher_iters if name == 'det_teacher' else args.iters
        rows.append((label, run_stage(name, iters, work_root, args.force)))
        if name == 'det_teacher':
            # The KD configs read the teacher as plain weights.
            work_dir = osp.join(work_root, name)
            extract(osp.join(work_dir, f'iter_{iters}.pth'),
                    osp.join(work_dir, 'teacher.pth'))
    report = (f'# Digits detection demo\n\n{table(rows)}\n\n'
              'mAP: mmdet CocoMetric on the 150 validation scenes. Distill '
              'cost: mean fraction of the teacher pyramid compute spent per '
              'image over the training run (1.00 = every level of every '
              'image, as uniform KD). RL-KD distills uniformly in phase 1.\n')
    os.makedirs(osp.join(ROOT, 'results'), exist_ok=True)
    rl_dir = osp.join(work_root, 'det_rl_kd')
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'analysis_tools', 'policy_heatmap.py'),
        osp.join(ROOT, 'configs', 'digits', 'det_rl_kd.py'),
        osp.join(rl_dir, f'iter_{args.iters}.pth'),
        '--out', osp.join(ROOT, 'results', 'policy_heatmap_det.png')],
        check=True, cwd=ROOT)
    out = osp.join(ROOT, 'results', 'demo_det.md')
    with open(out, 'w') as f:
        f.write(report)
    print('\n' + report + f'\nwritten to {out} '
          f'({(time.time() - start) / 60:.1f} min)')


if __name__ == '__main__':
    main()
