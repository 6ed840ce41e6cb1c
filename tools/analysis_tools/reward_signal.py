"""Does an RL-KD reward tell samples apart? Per-sample reward signal, the
student's difficulty and the policy's choice on training batches.

For every sample of ``--batches`` training batches (the training pipeline,
the trained student of the checkpoint) it computes what distilling the
sample pays in the ``gap`` reward (the distillation losses of all levels over
the environment's level scales and gain scale, see
:class:`DistillationEnvironment`; 1 is a typical sample), the student's
prediction entropy (:class:`PredictionEntropy`) and the probability that the
policy distills it. A policy can only learn to tell samples apart if the
reward does: the tool prints the reward's spread across samples (its
coefficient of variation), its mean per difficulty third and the Spearman
rank correlations between the three.

    python tools/analysis_tools/reward_signal.py \\
        configs/digits/det_rl_kd.py work_dirs/det_rl_kd/iter_500.pth \\
        --batches 25
"""
import argparse
import statistics

import torch
from rl_run import add_run_arguments, load_rl_run
from tqdm import tqdm

from pyramidkd_mm.models.prediction_entropy import PredictionEntropy

DIFFICULTY = ('sure', 'middle', 'unsure')


def spearman(a, b):
    """Rank correlation of two (n,) tensors (ties broken by order)."""
    a, b = (x.argsort().argsort().float() for x in (a, b))
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


@torch.no_grad()
def signals(model, loader, batches):
    """(reward, entropy, probability), each (samples,), over ``batches``
    training batches."""
    selector, env = model.selector, model.selector.env
    entropy = PredictionEntropy(model.student)
    levels = len(selector.levels)
    out = ([], [], [])
    for _, data in zip(tqdm(range(batches), desc='reward'), loader):
        data = model.data_preprocessor(data, True)
        with model.student_tap.capture() as feats:
            model.student.loss(data['inputs'], data['data_samples'])
        batch = len(data['data_samples'])
        difficulty = entropy.take(batch)
        prob = selector.level_probabilities(feats).mean(1)
        every = torch.ones(batch, levels, dtype=torch.bool,
                           device=prob.device)
        losses = model.distill(data['inputs'], feats[:levels], every).losses
        reward = env.relative_gain(losses, every) / env.gain_scale
        for values, new in zip(out, (reward, difficulty, prob)):
            values.append(new.cpu())
    return tuple(torch.cat(values) for values in out)


def report(reward, entropy, prob):
    """Markdown lines: spread, per difficulty third, correlations."""
    cv = (reward.std() / reward.mean().abs().clamp_min(1e-12)).item()
    lines = [f'samples: {len(reward)}; gap reward {reward.mean():.3f} ± '
             f'{reward.std():.3f} (coefficient of variation {cv:.2f}); '
             f'policy probability {prob.mean():.3f} ± {prob.std():.3f}', '',
             '| difficulty | entropy | gap reward | policy probability |',
             '|---|---|---|---|']
    cuts = entropy.quantile(torch.tensor([1 / 3, 2 / 3]))
    third = (entropy[:, None] > cuts).sum(1)
    for i, name in enumerate(DIFFICULTY):
        pick = third == i
        lines.append(
            f'| {name} | {entropy[pick].mean():.3f} | '
            f'{statistics.fmean(reward[pick].tolist()):.3f} | '
            f'{prob[pick].mean():.3f} |')
    lines += ['', 'Spearman: reward~entropy '
              f'{spearman(reward, entropy):+.2f}, probability~reward '
              f'{spearman(prob, reward):+.2f}, probability~entropy '
              f'{spearman(prob, entropy):+.2f}']
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument('--batches', type=int, default=25,
                        help='training batches to score')
    args = parser.parse_args()
    model, loader = load_rl_run(args, 'train_dataloader')
    print('\n'.join(report(*signals(model, loader, args.batches))))


if __name__ == '__main__':
    main()
