"""Draw GradNorm's weight curves from an mmengine training log as a PNG.

Reads the ``scalars.json`` that mmengine's LocalVisBackend writes (one JSON
object per logged step) and plots every ``gradnorm_w_<name>`` key against
the step.

Example:
    python tools/analysis_tools/plot_gradnorm.py work_dirs/kd_gradnorm
    python tools/analysis_tools/plot_gradnorm.py \\
        work_dirs/kd_gradnorm/20240101_120000/vis_data/scalars.json \\
        --out weights.png
"""
import argparse
import glob
import json
import os.path as osp

import matplotlib

matplotlib.use('Agg')  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

PREFIX = 'gradnorm_w_'


def find_scalars(path):
    """``path`` itself if a file, else the newest run's scalars.json under
    the work_dir ``path``."""
    if osp.isfile(path):
        return path
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise FileNotFoundError(
            f'no <timestamp>/vis_data/scalars.json under {path}; was the run '
            'logged with LocalVisBackend?')
    return runs[-1]  # timestamped folder names sort chronologically


def read_weights(scalars):
    """Steps and values of every GradNorm weight, keyed by task name."""
    curves = {}
    with open(scalars) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            for key, value in record.items():
                if key.startswith(PREFIX):
                    steps, values = curves.setdefault(key[len(PREFIX):],
                                                      ([], []))
                    steps.append(record['step'])
                    values.append(value)
    return curves


def plot(curves, out, title=None):
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, values) in sorted(curves.items()):
        ax.plot(steps, values, label=name)
    ax.set_xlabel('iteration')
    ax.set_ylabel('GradNorm weight')
    ax.set_title(title or 'GradNorm task weights')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('path', help='work_dir or a scalars.json')
    parser.add_argument('--out', help='PNG path; default: gradnorm_weights'
                        '.png beside scalars.json')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args()
    scalars = find_scalars(args.path)
    curves = read_weights(scalars)
    if not curves:
        raise SystemExit(f'no {PREFIX}* keys in {scalars}; was GradNorm on?')
    out = args.out or osp.join(osp.dirname(scalars), 'gradnorm_weights.png')
    plot(curves, out, args.title)
    print(f'{len(curves)} weight curves from {scalars} -> {out}')


if __name__ == '__main__':
    main()
