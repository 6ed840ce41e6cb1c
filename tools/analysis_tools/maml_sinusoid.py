"""Few-shot sinusoid regression (Finn et al., 2017, section 5.1) with the
project's MAMLTrainer: MAML, first-order MAML and Reptile against a network
pretrained on all tasks.

A task is ``y = A sin(x - phi)`` with A in [0.1, 5], phi in [0, pi] and x
in [-5, 5]; the model is a 1-40-40-1 ReLU MLP; K = 10 support points. MAML
and FOMAML take one inner SGD step of 0.01 during meta-training (as the
paper), Reptile five (one step would make it plain joint training); the
outer optimiser is Adam 1e-3 for all, and the pretrained network is trained
with Adam 1e-3 on the same task samples (support and query points pooled).
At meta-test time every model is fine-tuned on K points of each of 600 new
tasks with SGD (0.01 for the meta-learned ones, 0.02 for the pretrained
one, the paper's step sizes) and the MSE is taken on 100 evenly spaced
points after 0-10 steps. The fine-tuning steps are MAMLTrainer.adapt.

Writes ``results/maml_sinusoid.md`` (table, mean +- std over seeds) and
``results/maml_sinusoid.png`` (MSE against adaptation steps, and one task).

    python tools/analysis_tools/maml_sinusoid.py [--iters 4000] \
        [--meta-batch 10] [--seeds 0 1 2]
"""
import argparse
import math
import os
import os.path as osp
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from pyramidkd_mm.rl import MAMLTrainer, MetaTask

K = 10
STEPS = 10
METHODS = ('MAML', 'FOMAML', 'Reptile', 'pretrained')
# Inner SGD steps and step size in meta-training; step size at meta-test.
SETTINGS = dict(MAML=('maml', 1, 0.01), FOMAML=('fomaml', 1, 0.01),
                Reptile=('reptile', 5, 0.01))
TEST_LR = dict(MAML=0.01, FOMAML=0.01, Reptile=0.01, pretrained=0.02)
PAPER = dict(
    MAML='Finn et al. Fig. 3 (K=10): from about the pretrained level to '
    'well below 1 after one step, still improving at 10 steps',
    FOMAML='Finn et al. report the first-order approximation nearly as '
    'good as MAML (MiniImagenet; no sinusoid number)',
    Reptile='Nichol et al. (2018): close to MAML on few-shot benchmarks; '
    'their sinusoid figure is qualitative',
    pretrained='Finn et al. Fig. 3: fine-tuning barely helps, the error '
    'stays far above MAML\'s after 10 steps')


def sample_tasks(num, generator):
    amplitude = torch.empty(num).uniform_(0.1, 5.0, generator=generator)
    phase = torch.empty(num).uniform_(0, math.pi, generator=generator)
    return amplitude, phase


def points(amplitude, phase, num, generator):
    x = torch.empty(num, 1).uniform_(-5, 5, generator=generator)
    return x, amplitude * torch.sin(x - phase)


def mse(model_fn, data):
    x, y = data
    return F.mse_loss(model_fn(x), y)


def mlp():
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40),
                         nn.ReLU(), nn.Linear(40, 1))


def train(method, iters, meta_batch, seed):
    """Meta-trains (or pretrains) a network; returns it."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = mlp()
    if method == 'pretrained':
        optim = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(iters):
            amp, phase = sample_tasks(meta_batch, g)
            x, y = zip(*[points(a, p, 2 * K, g) for a, p in zip(amp, phase)])
            loss = F.mse_loss(model(torch.cat(x)), torch.cat(y))
            optim.zero_grad()
            loss.backward()
            optim.step()
        return model
    algorithm, steps, inner_lr = SETTINGS[method]
    trainer = MAMLTrainer(model, inner_lr=inner_lr, outer_lr=1e-3,
                          num_inner_steps=steps, algorithm=algorithm,
                          loss=mse)
    for _ in range(iters):
        amp, phase = sample_tasks(meta_batch, g)
        trainer.meta_update([
            MetaTask(support=points(a, p, K, g), query=points(a, p, K, g))
            for a, p in zip(amp, phase)])
    return model


def evaluate(model, method, num_tasks):
    """MSE on 100 grid points after 0..STEPS fine-tuning steps on K points,
    averaged over ``num_tasks`` test tasks (the same for every model)."""
    g = torch.Generator().manual_seed(12345)
    trainer = MAMLTrainer(model, inner_lr=TEST_LR[method], loss=mse)
    grid = torch.linspace(-5, 5, 100).unsqueeze(1)
    errors = torch.zeros(STEPS + 1)
    amp, phase = sample_tasks(num_tasks, g)
    for a, p in zip(amp, phase):
        support, truth = points(a, p, K, g), a * torch.sin(grid - p)
        params = trainer.meta_parameters()
        for step in range(STEPS + 1):
            if step:
                params = trainer.adapt(support, params, num_steps=1)
            with torch.no_grad():
                errors[step] += mse(trainer.functional(params),
                                    (grid, truth)) / num_tasks
    return errors


def example(model, method):
    """Predictions on one task before and after 1 and 10 steps."""
    g = torch.Generator().manual_seed(7)
    a, p = torch.tensor(3.0), torch.tensor(1.0)
    support = points(a, p, K, g)
    trainer = MAMLTrainer(model, inner_lr=TEST_LR[method], loss=mse)
    grid = torch.linspace(-5, 5, 100).unsqueeze(1)
    curves = {}
    for steps in (1, 10):
        params = trainer.adapt(support, num_steps=steps)
        with torch.no_grad():
            curves[steps] = trainer.functional(params)(grid).squeeze(1)
    return grid.squeeze(1), a * torch.sin(grid.squeeze(1) - p), support, \
        curves


def plot(curves, examples, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = range(STEPS + 1)
    for method, runs in curves.items():
        runs = torch.stack(runs)
        mean, std = runs.mean(0), runs.std(0) if len(runs) > 1 else 0 * runs[0]
        axes[0].plot(steps, mean, marker='o', label=method)
        axes[0].fill_between(steps, mean - std, mean + std, alpha=0.2)
    axes[0].set(xlabel='gradient steps at meta-test', ylabel='MSE',
                title=f'K={K} sinusoid regression (mean +- std over seeds)')
    axes[0].legend()
    for ax, method in zip(axes[1:], ('MAML', 'pretrained')):
        grid, truth, (sx, sy), preds = examples[method]
        ax.plot(grid, truth, 'r', label='ground truth')
        ax.scatter(sx.squeeze(1), sy.squeeze(1), marker='^', c='purple',
                   label='K points')
        for steps, pred in preds.items():
            ax.plot(grid, pred, '--', label=f'{steps} step(s)')
        ax.set(title=f'{method}, one task', ylim=(-5, 5))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=4000,
                        help='meta-iterations (pretraining iterations)')
    parser.add_argument('--meta-batch', type=int, default=10,
                        help='tasks per meta-iteration')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--test-tasks', type=int, default=600)
    parser.add_argument('--out', default='results')
    args = parser.parse_args()
    curves = {m: [] for m in METHODS}
    examples, walls = {}, {m: 0.0 for m in METHODS}
    for seed in args.seeds:
        for method in METHODS:
            start = time.time()
            model = train(method, args.iters, args.meta_batch, seed)
            walls[method] += time.time() - start
            curves[method].append(evaluate(model, method, args.test_tasks))
            if seed == args.seeds[0]:
                examples[method] = example(model, method)
            print(f'seed {seed} {method}: MSE after 0/1/10 steps '
                  + ' / '.join(f'{curves[method][-1][s]:.3f}'
                               for s in (0, 1, 10)), flush=True)
    os.makedirs(args.out, exist_ok=True)
    plot(curves, examples, osp.join(args.out, 'maml_sinusoid.png'))
    command = 'python ' + ' '.join(sys.argv)
    lines = [
        f'Command: `{command}`', '',
        f'K={K} support points, {args.iters} meta-iterations of '
        f'{args.meta_batch} tasks (the paper: 70,000 of 25), seeds '
        f'{args.seeds}; MSE on {args.test_tasks} test tasks, mean +- std '
        'over seeds.', '',
        '| method | meta-test step size | MSE, 0 steps | 1 step | 10 steps '
        '| training time per seed | reported in the papers |',
        '|---|---|---|---|---|---|---|']
    for method in METHODS:
        runs = torch.stack(curves[method])
        cells = [f'{runs[:, s].mean():.3f} +- {runs[:, s].std():.3f}'
                 if len(runs) > 1 else f'{runs[0, s]:.3f}' for s in (0, 1, 10)]
        lines.append(f'| {method} | {TEST_LR[method]} | ' + ' | '.join(cells)
                     + f' | {walls[method] / len(args.seeds):.0f} s '
                     f'| {PAPER[method]} |')
    table = '\n'.join(lines)
    with open(osp.join(args.out, 'maml_sinusoid.md'), 'w') as f:
        f.write(table + '\n')
    print(table)


if __name__ == '__main__':
    main()
