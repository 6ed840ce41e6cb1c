import copy
import gc
import importlib.util
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.visualization import LocalVisBackend
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pyramidkd_mm.models.gradnorm import GradNorm
from pyramidkd_mm.registry import MODELS

NAMES = ('loss_a', 'loss_b', 'loss_c')
TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools',
                 'analysis_tools')


class _Net(nn.Module):
    """A shared layer and one head per task."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 8)
        self.heads = nn.ModuleList(nn.Linear(8, 1) for _ in NAMES)

    def forward(self, x):
        feat = torch.relu(self.shared(x))
        return [head(feat) for head in self.heads]


def _losses(net, x):
    """Task losses whose gradients differ in scale by 1:9:100."""
    return {n: (s * out).pow(2).mean()
            for n, s, out in zip(NAMES, (1., 3., 10.), net(x))}


def _train(gradnorm, net, steps, drop=(), zero=()):
    """Steps of the net with GradNorm; ``drop`` losses are left out and
    ``zero`` losses multiplied by zero (a level nobody selected)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4)
    for _ in range(steps):
        losses = _losses(net, torch.randn(16, 4))
        for name in drop:
            del losses[name]
        for name in zero:
            losses[name] = losses[name] * 0
        total, log_vars = gradnorm(losses, net.shared.parameters())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return log_vars


def test_registered_and_logs_every_weight():
    gradnorm = MODELS.build(dict(type='pyramidkd_mm.GradNorm', names=NAMES))
    torch.manual_seed(0)
    log_vars = _train(gradnorm, _Net(), 1, drop=('loss_a', ))
    assert list(log_vars) == [
        'gradnorm_w_a', 'gradnorm_w_b', 'gradnorm_w_c'
    ]
    # the model's optimiser, weight decay included, leaves the weights alone
    model = nn.ModuleDict(dict(net=_Net(), gradnorm=gradnorm))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1)
    weights = gradnorm.weights.clone()
    total, _ = gradnorm(_losses(model.net, torch.randn(16, 4)),
                        model.net.shared.parameters(), update=False)
    total.backward()
    optimizer.step()
    assert torch.equal(gradnorm.weights, weights)
    with pytest.raises(ValueError, match='contain "loss"'):
        GradNorm(['distill_loss'])


@pytest.mark.parametrize('lr', [1e-2, 1e3])
def test_renormalisation_keeps_sum_and_positivity(lr):
    torch.manual_seed(0)
    gradnorm, net = GradNorm(NAMES, lr=lr), _Net()
    for _ in range(10):
        _train(gradnorm, net, 1)
        assert gradnorm.weights.sum().item() == pytest.approx(3, abs=1e-5)
        assert (gradnorm.weights > 0).all()
    # the unscaled task has the smallest gradients: pushed up
    assert gradnorm.weights.argmax() == 0


def test_initial_losses_from_first_presence():
    torch.manual_seed(0)
    gradnorm, net = GradNorm(NAMES), _Net()
    x = torch.randn(16, 4)
    losses = _losses(net, x)
    del losses['loss_c']
    gradnorm(losses, net.shared.parameters())
    assert gradnorm.initialized.tolist() == [True, True, False]
    first = torch.stack([losses['loss_a'], losses['loss_b']]).detach()
    assert torch.allclose(gradnorm.initial_losses[:2], first)

    losses = _losses(net, 2 * x)
    gradnorm(losses, net.shared.parameters())
    assert gradnorm.initialized.all()
    assert torch.allclose(gradnorm.initial_losses[:2], first)
    assert gradnorm.initial_losses[2] == losses['loss_c'].detach()


@pytest.mark.parametrize('mode', ['drop', 'zero'])
def test_absent_task_keeps_weight(mode):
    torch.manual_seed(0)
    gradnorm, net = GradNorm(NAMES, lr=0.1), _Net()
    _train(gradnorm, net, 3)
    before = gradnorm.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    _train(gradnorm, net, 3, **{mode: ('loss_a', )})
    for key in ('weights', 'exp_avg', 'exp_avg_sq', 'adam_steps'):
        assert gradnorm.state_dict()[key][0] == before[key][0], key
    assert not torch.equal(gradnorm.weights[1:], before['weights'][1:])
    assert gradnorm.weights.sum().item() == pytest.approx(3, abs=1e-5)


def test_autocast_bfloat16_losses():
    torch.manual_seed(0)
    gradnorm, net = GradNorm(NAMES, lr=0.1), _Net()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = _losses(net, torch.randn(16, 4))
        assert losses['loss_a'].dtype == torch.bfloat16
        total, _ = gradnorm(losses, net.shared.parameters())
    total.backward()
    assert net.shared.weight.grad.isfinite().all()
    assert gradnorm.weights.dtype == torch.float32
    assert not torch.equal(gradnorm.weights, torch.ones(3))
    assert gradnorm.weights.sum().item() == pytest.approx(3, abs=1e-5)


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    net = _Net()
    model = nn.ModuleDict(dict(net=net, gradnorm=GradNorm(NAMES, lr=0.1)))
    _train(model.gradnorm, net, 3, drop=('loss_c', ))
    state = copy.deepcopy(model.state_dict())
    for key in ('weights', 'initial_losses', 'initialized', 'adam_steps',
                'exp_avg', 'exp_avg_sq'):
        assert f'gradnorm.{key}' in state

    restored = nn.ModuleDict(dict(net=_Net(), gradnorm=GradNorm(NAMES,
                                                                lr=0.1)))
    restored.load_state_dict(state)
    losses = _losses(net, torch.randn(16, 4))
    model.gradnorm(losses, net.shared.parameters())
    restored.gradnorm(losses, net.shared.parameters())
    assert torch.equal(model.gradnorm.weights, restored.gradnorm.weights)
    assert torch.equal(model.gradnorm.initial_losses,
                       restored.gradnorm.initial_losses)


def test_update_false_leaves_state():
    torch.manual_seed(0)
    gradnorm, net = GradNorm(NAMES), _Net()
    state = copy.deepcopy(gradnorm.state_dict())
    total, _ = gradnorm(_losses(net, torch.randn(16, 4)),
                        net.shared.parameters(), update=False)
    assert total.requires_grad
    for key, value in gradnorm.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_non_finite_values_skip_the_update():
    torch.manual_seed(0)
    gradnorm, net = GradNorm(NAMES), _Net()
    losses = _losses(net, torch.randn(16, 4))
    losses['loss_b'] = losses['loss_b'] * float('inf')  # fp16 overflow
    gradnorm(losses, net.shared.parameters())
    assert torch.equal(gradnorm.weights, torch.ones(3))
    assert not gradnorm.initialized.any()
    assert gradnorm.nonfinite_updates == 1  # counted (and logged)


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_direction():
    toy = _load_tool('gradnorm_toy')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: threads only add sync overhead
    try:
        _, equal = toy.train(steps=300, gradnorm=False)
        weights, balanced = toy.train(steps=300, gradnorm=True)
    finally:
        torch.set_num_threads(threads)
    assert weights[1] < 1 < weights[0]
    assert weights.sum().item() == pytest.approx(2, abs=1e-5)
    assert balanced.max() / balanced.min() < equal.max() / equal.min()


def test_plot_weight_curves(tmp_path):
    backend = LocalVisBackend(str(tmp_path / '20240101_000000' / 'vis_data'))
    gradnorm = GradNorm(NAMES)
    torch.manual_seed(0)
    net = _Net()
    for step in range(1, 4):
        log_vars = _train(gradnorm, net, 1)
        backend.add_scalars({k: v.item() for k, v in log_vars.items()},
                            step=step)
    plot = _load_tool('plot_gradnorm')
    scalars = plot.find_scalars(str(tmp_path))
    curves = plot.read_weights(scalars)
    assert sorted(curves) == ['a', 'b', 'c']
    assert curves['a'][0] == [1, 2, 3]
    plot.plot(curves, str(tmp_path / 'w.png'))
    assert (tmp_path / 'w.png').stat().st_size > 0


class _Balanced(nn.Module):
    """Balances its task losses inside forward, as the distiller does."""

    def __init__(self):
        super().__init__()
        self.net = _Net()
        self.gradnorm = GradNorm(NAMES, lr=0.1)

    def forward(self, x, zero=()):
        losses = _losses(self.net, x)
        for name in zero:
            losses[name] = losses[name] * 0
        total, _ = self.gradnorm(losses, self.net.shared.parameters())
        return total


def _ddp_worker(rank, world_size, init_file):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world_size)
    ddp = total = None
    try:
        torch.manual_seed(0)  # same init; DDP broadcasts it anyway
        model = _Balanced()
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-4)
        torch.manual_seed(1 + rank)  # different data on each rank
        for step in range(4):
            # at step 2, level a was selected on rank 0 only
            zero = ('loss_a', ) if rank == 1 and step == 2 else ()
            total = ddp(torch.randn(16, 4), zero)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
        weights = [torch.zeros(3) for _ in range(world_size)]
        dist.all_gather(weights, model.gradnorm.weights.detach().clone())
        assert torch.equal(weights[0], weights[1]), weights
        assert not torch.equal(weights[0], torch.ones(3))
    finally:
        # Drop the DDP model before the group: a group whose last owner
        # is DDP's Reducer is destroyed holding the GIL and can deadlock
        # with a gloo thread freeing a finished collective.
        del ddp, total  # the output's graph refers to DDP too
        gc.collect()
        dist.destroy_process_group()


def test_ddp_weights_identical_on_every_rank(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    # spawn, not fork: a worker forked after other tests have started
    # torch's OpenMP pool deadlocks in it
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / 'rendezvous')),
                       nprocs=2, start_method='spawn')
