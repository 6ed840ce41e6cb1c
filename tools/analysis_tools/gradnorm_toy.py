"""GradNorm's toy experiment (Chen et al., ICML 2018, section 4).

T regression tasks f_i(x) = σ_i·tanh((B + ε_i)x) with 250-d inputs and 100-d
outputs; B and ε_i have IID entries from N(0, 10) and N(0, 3.5) (read as
standard deviations). A 4-layer, 100-unit ReLU trunk feeds one linear head
per task, each trained with MSE. The same network, data and seed are trained
once with equal weights and once with GradNorm (shared layer: the last trunk
layer), and the final weights and loss ratios L_i(t)/L_i(0) are printed.

Example:
    python tools/analysis_tools/gradnorm_toy.py --steps 3000
"""
import argparse

import torch
from torch import nn

from pyramidkd_mm.models.gradnorm import GradNorm

IN_DIM, OUT_DIM, WIDTH = 250, 100, 100


class ToyTasks:
    """The T target functions, fixed by a seed."""

    def __init__(self, sigmas, seed):
        gen = torch.Generator().manual_seed(seed)
        self.sigmas = torch.tensor(sigmas, dtype=torch.float32)
        base = torch.randn(OUT_DIM, IN_DIM, generator=gen) * 10
        self.maps = base + torch.randn(
            len(sigmas), OUT_DIM, IN_DIM, generator=gen) * 3.5

    def sample(self, num, gen):
        """Inputs (num, 250) and per-task targets (T, num, 100)."""
        x = torch.randn(num, IN_DIM, generator=gen)
        y = self.sigmas[:, None, None] * torch.tanh(
            torch.einsum('toi,ni->tno', self.maps, x))
        return x, y


class ToyNet(nn.Module):
    """A 4-layer ReLU trunk and one linear head per task."""

    def __init__(self, num_tasks):
        super().__init__()
        dims = [IN_DIM] + [WIDTH] * 4
        self.trunk = nn.Sequential(*[
            m for i in range(4)
            for m in (nn.Linear(dims[i], dims[i + 1]), nn.ReLU())
        ])
        self.heads = nn.ModuleList(
            nn.Linear(WIDTH, OUT_DIM) for _ in range(num_tasks))

    @property
    def shared_layer(self):
        return self.trunk[-2]

    def forward(self, x):
        feat = self.trunk(x)
        return [head(feat) for head in self.heads]


def task_losses(net, x, y):
    return {
        f'task{i}': nn.functional.mse_loss(out, y[i])
        for i, out in enumerate(net(x))
    }


def train(sigmas=(1.0, 100.0),
          steps=3000,
          gradnorm=True,
          alpha=0.12,
          gradnorm_lr=1e-2,
          lr=1e-3,
          batch_size=100,
          seed=0):
    """Train the toy once; same seed, same init and data with or without
    GradNorm.

    Returns:
        tuple[Tensor, Tensor]: final weights (all ones without GradNorm) and
        loss ratios L_i(t)/L_i(0) on a fixed held-out batch.
    """
    tasks = ToyTasks(sigmas, seed)
    torch.manual_seed(seed)
    net = ToyNet(len(sigmas))
    balancer = GradNorm([f'task{i}' for i in range(len(sigmas))],
                        alpha=alpha, lr=gradnorm_lr)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    x_eval, y_eval = tasks.sample(1000, gen)

    def eval_losses():
        with torch.no_grad():
            return torch.stack(list(task_losses(net, x_eval, y_eval).values()))

    initial = eval_losses()
    for _ in range(steps):
        losses = task_losses(net, *tasks.sample(batch_size, gen))
        if gradnorm:
            total, _ = balancer(losses, net.shared_layer.parameters())
        else:
            total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return balancer.weights.clone(), eval_losses() / initial


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3000)
    parser.add_argument('--sigmas', type=float, nargs='+', default=[1, 100])
    parser.add_argument('--alpha', type=float, default=0.12)
    parser.add_argument('--gradnorm-lr', type=float, default=1e-2)
    parser.add_argument('--lr', type=float, default=1e-3,
                        help='Adam learning rate of the network')
    parser.add_argument('--batch-size', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # 100-wide layers: more threads only add sync
    print(f'sigmas {args.sigmas}, {args.steps} steps, alpha {args.alpha}')
    for gradnorm in (False, True):
        weights, ratios = train(args.sigmas, args.steps, gradnorm, args.alpha,
                                args.gradnorm_lr, args.lr, args.batch_size,
                                args.seed)
        fmt = lambda t: ' '.join(f'{v:.4f}' for v in t.tolist())  # noqa
        print(f'{"GradNorm" if gradnorm else "equal weights":>13}: '
              f'weights [{fmt(weights)}] (sum {weights.sum():.4f}), '
              f'L(t)/L(0) [{fmt(ratios)}], '
              f'max/min ratio {(ratios.max() / ratios.min()):.3f}')


if __name__ == '__main__':
    main()
