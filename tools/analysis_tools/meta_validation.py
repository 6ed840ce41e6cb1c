"""The meta-learned start in a real RL-KD run: digits detection with the
policy initialised from the MAML start of ``meta_adaptation.py`` (meta-
trained on seg and cls, a new det adapter) next to the same run from the
random start (same adapter initialisation), everything else equal (seed,
data order, student initialisation, schedule).

Each run trains ``configs/digits/det_rl_kd_meta.py`` with its phase 4
pushed past the end (so phases 1-3 only), loading the start with
``load_from``, and is evaluated with CocoMetric at the end. Writes
``results/meta_validation.md``; finished runs are reused (``--force``
retrains).

    python tools/analysis_tools/meta_validation.py \
        [--starts work_dirs/meta/starts] [--iters 300]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from glob import glob

STARTS = (('random start', 'det_random_start.pth'),
          ('MAML start', 'det_maml_start.pth'))


def scalars(work_dir):
    logs = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f]


def train(start, args):
    """Trains (or reuses a finished run of) one start; returns its row."""
    work_dir = osp.join(args.work_root, osp.splitext(start)[0])
    record = osp.join(work_dir, 'validation_record.json')
    n = args.iters
    cmd = [sys.executable, 'tools/train.py',
           'configs/digits/det_rl_kd_meta.py', '--work-dir', work_dir,
           '--cfg-options',
           f'model.teacher.checkpoint={args.teacher}',
           f'load_from={osp.join(args.starts, start)}',
           f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
           f'param_scheduler.1.end={n}',
           f'param_scheduler.1.milestones=[{n * 3 // 4}]',
           f'default_hooks.checkpoint.interval={n}',
           f'custom_hooks.0.milestones=[{n // 5},{n // 2},{n}]']
    if args.force or not osp.exists(record):
        clock = time.time()
        subprocess.run(cmd, check=True)
        with open(record, 'w') as f:
            json.dump(dict(wall=time.time() - clock, iters=n), f)
    with open(record) as f:
        done = json.load(f)
    if done['iters'] != n:
        sys.exit(f'{work_dir} holds a {done["iters"]}-iteration run; pass '
                 '--force to retrain')
    logs = scalars(work_dir)
    val = [s for s in logs if 'coco/bbox_mAP' in s][-1]
    joint = [s for s in logs if s.get('rl_phase') == 3]
    learning = [s for s in logs if s.get('rl_phase', 1) > 1]
    return dict(
        mAP=val['coco/bbox_mAP'], mAP_s=val['coco/bbox_mAP_s'],
        cost=sum(s['distill_cost'] for s in joint) / len(joint),
        reward=sum(s['rl_reward'] for s in learning) / len(learning),
        lam=joint[-1]['rl_lam'], wall=done['wall'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--starts', default='work_dirs/meta/starts')
    parser.add_argument('--teacher',
                        default='work_dirs/det_teacher/teacher.pth')
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--work-root', default='work_dirs/meta/validation')
    parser.add_argument('--out', default='results')
    parser.add_argument('--force', action='store_true',
                        help='retrain runs that finished before')
    args = parser.parse_args()
    rows = [(label, train(start, args)) for label, start in STARTS]
    lines = [f'Command: `python {" ".join(sys.argv)}`', '',
             f'Digits detection, {args.iters} iterations (phase 2 from '
             f'{args.iters // 5}, phase 3 from {args.iters // 2}), seed 0, '
             'one run each.', '',
             '| policy start | mAP | mAP_s | distill cost (phase 3) | mean '
             'logged reward (phases 2-3) | price of compute at the end '
             '| wall time |',
             '|---|---|---|---|---|---|---|']
    for label, r in rows:
        lines.append(f"| {label} | {r['mAP']:.3f} | {r['mAP_s']:.3f} | "
                     f"{r['cost']:.2f} | {r['reward']:.3f} | "
                     f"{r['lam']:.2f} | {r['wall'] / 60:.1f} min |")
    table = '\n'.join(lines)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'meta_validation.md'), 'w') as f:
        f.write(table + '\n')
    print(table)


if __name__ == '__main__':
    main()
