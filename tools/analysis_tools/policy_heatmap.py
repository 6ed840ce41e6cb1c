"""Draw the RL policy's selection rate per pyramid level as a heatmap.

Runs a trained RL-KD checkpoint's policy over the validation set and averages
each level's selection probability (the rate at which the learning policy
distills the level, whatever its action space: see
:meth:`RLSelector.level_probabilities`; the deterministic choice is
``probability > 0.5``) by group: object-size bucket for detection (COCO's
small / medium / large areas; each object counts its image's
probabilities), class for classification and segmentation (each class
present in the image counts it), and difficulty for every task (the
student's prediction entropy on the image, in thirds over the validation
set: ``sure``, ``middle``, ``unsure``). A policy that discriminates selects
at different rates across groups. Prints the table and writes a PNG.

    python tools/analysis_tools/policy_heatmap.py \\
        configs/digits/det_rl_kd.py work_dirs/det_rl_kd/iter_500.pth \\
        --out heatmap.png
"""
import argparse
from collections import defaultdict

import matplotlib
import torch
from rl_run import add_run_arguments, load_rl_run
from tqdm import tqdm

from pyramidkd_mm.models.student_predictions import StudentPredictions

matplotlib.use('Agg')  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

SIZES = (('small', 32**2), ('medium', 96**2), ('large', float('inf')))
DIFFICULTY = ('sure', 'middle', 'unsure')


def groups(sample, classes):
    """Names of the groups one validation sample counts towards."""
    if 'gt_instances' in sample:
        boxes = sample.gt_instances.bboxes
        areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        return [next(name for name, limit in SIZES if a < limit)
                for a in areas.tolist()]
    if 'gt_label' in sample:
        labels = sample.gt_label.tolist()
    else:
        seg = sample.gt_sem_seg.data.unique().tolist()
        labels = [c for c in seg if c < len(classes)]
    return [classes[c] if classes else str(c) for c in labels]


@torch.no_grad()
def selection_rates(model, loader, classes):
    """Mean selection probability per (group, level)."""
    predictions = StudentPredictions(model.student)  # its difficulty
    samples = []  # (groups, entropy, probabilities) per image
    for data in tqdm(loader, desc='policy'):
        data = model.data_preprocessor(data, False)
        with model.student_tap.capture() as pyramid:
            model.student.predict(data['inputs'], data['data_samples'])
        probs = model.selector.level_probabilities(pyramid)
        for sample, h, prob in zip(data['data_samples'],
                                   predictions.take(len(probs)).entropy(),
                                   probs):
            samples.append((groups(sample, classes), h.item(), prob))
    cuts = torch.tensor([h for _, h, _ in samples]).quantile(
        torch.tensor([1 / 3, 2 / 3])).tolist()
    totals, counts = defaultdict(float), defaultdict(int)
    for names, h, prob in samples:
        for group in names + [DIFFICULTY[sum(h > c for c in cuts)]]:
            totals[group] = totals[group] + prob
            counts[group] += 1
    return {g: (totals[g] / counts[g]).tolist() for g in totals}, counts


def order(rates, known_order):
    """Size buckets in size order, classes in their dataset order."""
    known = [g for g in known_order if g in rates]
    return known + sorted(set(rates) - set(known))


def plot(rates, counts, levels, out):
    names = list(rates)
    grid = torch.tensor([rates[g] for g in names]).T
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 3.2))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap='viridis', aspect='auto')
    for (i, j), value in zip(
            [(i, j) for i in range(len(levels)) for j in range(len(names))],
            grid.flatten().tolist()):
        ax.text(j, i, f'{value:.2f}', ha='center', va='center',
                color='white' if value < 0.6 else 'black', fontsize=8)
    ax.set_xticks(range(len(names)),
                  [f'{g}\n(n={counts[g]})' for g in names], fontsize=8)
    ax.set_yticks(range(len(levels)), levels)
    ax.set_ylabel('pyramid level')
    ax.set_title('policy selection rate')
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument('--out', default='policy_heatmap.png')
    args = parser.parse_args()
    # the policy needs no teacher
    model, loader = load_rl_run(args, 'val_dataloader', teacher=False)
    meta = loader.dataset.metainfo
    classes = list(meta.get('classes', ()))
    rates, counts = selection_rates(model, loader, classes)
    names = order(rates, [n for n, _ in SIZES] + classes + list(DIFFICULTY))
    rates = {g: rates[g] for g in names}
    levels = list(model.selector.levels)
    print('| group | n | ' + ' | '.join(levels) + ' |\n|---|---|'
          + '---|' * len(levels))
    for g, r in rates.items():
        print(f'| {g} | {counts[g]} | '
              + ' | '.join(f'{v:.2f}' for v in r) + ' |')
    plot(rates, counts, levels, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
