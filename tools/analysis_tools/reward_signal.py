"""Does an RL-KD reward tell samples apart? Per-sample reward signal, the
student's difficulty and the policy's choice on training batches.

For every sample of ``--batches`` training batches (the training pipeline,
the trained student of the checkpoint) it computes what distilling the
sample pays in a reward (``--reward``, by default the run's: ``gap``, the
distillation losses of all levels over the environment's level scales, or
``disagreement``, the teacher-student KL of the class predictions; see
:class:`DistillationEnvironment`), relative to the mean sample, the
student's prediction entropy (:meth:`Predictions.entropy`) and the
probability that the policy distills it. A policy can only learn to tell
samples apart if the reward does: the tool prints the reward's spread
across samples (its coefficient of variation), its mean per difficulty
third and the Spearman
rank correlations between the three.

    python tools/analysis_tools/reward_signal.py \\
        configs/digits/det_rl_kd.py work_dirs/det_rl_kd/iter_500.pth \\
        --batches 25 [--reward gap|disagreement]
"""
import argparse
import statistics

import torch
from rl_run import add_run_arguments, load_rl_run
from tqdm import tqdm

from pyramidkd_mm.models.student_predictions import StudentPredictions
from pyramidkd_mm.models.teacher_predictions import TeacherPredictions

DIFFICULTY = ('sure', 'middle', 'unsure')


def spearman(a, b):
    """Rank correlation of two (n,) tensors (ties broken by order)."""
    a, b = (x.argsort().argsort().float() for x in (a, b))
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


@torch.no_grad()
def signals(model, loader, batches, reward):
    """(reward, entropy, probability), each (samples,), over ``batches``
    training batches; the reward relative to its mean."""
    selector = model.selector
    predictions = StudentPredictions(model.student)
    levels = len(selector.levels)
    teacher = None if reward == 'gap' else TeacherPredictions(
        model.teacher_tap, model.teacher_cost, levels)
    out = ([], [], [])
    for _, data in zip(tqdm(range(batches), desc='reward'), loader):
        data = model.data_preprocessor(data, True)
        with model.student_tap.capture() as feats:
            model.student.loss(data['inputs'], data['data_samples'])
        batch = len(data['data_samples'])
        student = predictions.take(batch)
        prob = selector.level_probabilities(feats).mean(1)
        every = torch.ones(batch, levels, dtype=torch.bool,
                           device=prob.device)
        result = model.distill(data['inputs'], feats[:levels], every)
        if teacher is None:
            paid = selector.env.relative_gain(result.losses, every)
        else:
            paid = teacher.disagreement(student, result.teacher_feats,
                                        data['inputs'][0, 0].numel()).kl
        for values, new in zip(out, (paid, student.entropy(), prob)):
            values.append(new.cpu())
    reward, entropy, prob = (torch.cat(values) for values in out)
    return reward / reward.mean(), entropy, prob


def report(reward, entropy, prob, name='gap'):
    """Markdown lines: spread, per difficulty third, correlations."""
    cv = (reward.std() / reward.mean().abs().clamp_min(1e-12)).item()
    lines = [f'samples: {len(reward)}; {name} reward {reward.mean():.3f} ± '
             f'{reward.std():.3f} (coefficient of variation {cv:.2f}); '
             f'policy probability {prob.mean():.3f} ± {prob.std():.3f}', '',
             f'| difficulty | entropy | {name} reward | policy probability |',
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
    parser.add_argument('--reward', choices=('gap', 'disagreement'),
                        help="the reward to score; by default the run's "
                        "('gap' for a run trained with 'gain')")
    args = parser.parse_args()
    model, loader = load_rl_run(args, 'train_dataloader')
    reward = args.reward or ('disagreement' if model.selector.env.reward
                             == 'disagreement' else 'gap')
    print('\n'.join(report(*signals(model, loader, args.batches, reward),
                           reward)))


if __name__ == '__main__':
    main()
