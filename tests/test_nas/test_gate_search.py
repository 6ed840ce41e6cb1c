"""DARTS-LS and GDAS-LS on the toy search problem (best mask: ['c3']): the
Runner finds it, the second-order step, straight-through sampling, resume,
and the written mask read back by FixedSelector."""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

import toy_task
from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.models import FixedSelector
from pyramidkd_mm.nas import Architect, GateSearchHook, GDASSelector
from pyramidkd_mm.registry import MODELS


def search_runner(tmp_path, selector, iters=30, unrolled=True,
                  cost_weight=0.0, **kwargs):
    hook = GateSearchHook(
        toy_task.loader(toy_task.SignalImages(offset=1000)), unrolled=unrolled,
        cost_weight=cost_weight,
        arch_optimizer=dict(type='Adam', lr=0.1, betas=(0.5, 0.999)),
        base_config=toy_task.write_kd_config(tmp_path))
    runner = toy_task.build_runner(
        tmp_path, tmp_path / 'work', dict(type=selector),
        dict(by_epoch=False, max_iters=iters), custom_hooks=[hook], **kwargs)
    return runner, hook


ITERS = 30


@pytest.mark.parametrize('selector,unrolled', [
    ('DARTSSelector', True), ('DARTSSelector', False), ('GDASSelector', True)])
def test_gate_search_finds_the_useful_level(tmp_path, selector, unrolled):
    # A small price of compute decides the levels that do not help: without
    # it their gates get no gradient and stay at the initial 0.5.
    runner, hook = search_runner(tmp_path, selector, iters=ITERS,
                                 unrolled=unrolled, cost_weight=0.0005)
    runner.train()
    with open(tmp_path / 'work' / 'search_result.json') as f:
        result = json.load(f)
    assert result['mask'] == ['c3'], result['probabilities']
    # A decision, not the initialisation: every gate away from 0.5.
    margins = result['margins']
    assert margins[1] > 0.1 and max(margins[0], margins[2]) < -0.3, margins
    assert result['search_wall_s'] >= 0 and result['world_size'] == 1
    if selector == 'GDASSelector':  # annealed to the end temperature
        assert runner.model.selector.temperature == pytest.approx(0.1)
    # The fragment extends the KD config with FixedSelector(mask).
    fragment = Config.fromfile(str(tmp_path / 'work' / 'fixed_mask.py'))
    assert fragment.work_dir == str(tmp_path / 'work' / 'fixed_mask')
    fixed = MODELS.build(dict(fragment.model, _scope_='pyramidkd_mm'))
    assert isinstance(fixed.selector, FixedSelector)
    assert fixed.selector.flags.tolist() == [False, True, False]


def exact_hypergradient(distiller, train, val, xi, unrolled):
    """The gate gradient by autograd through the virtual step (no finite
    difference), or its first-order variant (validation gradient at w)."""
    student = distiller.student
    names, params = zip(*((n, p) for n, p in student.named_parameters()
                          if p.requires_grad))
    logits = distiller.selector.logits
    with distiller.kept_buffers():
        with distiller.student_tap.capture() as feats:
            task = student.loss(train['inputs'], train['data_samples'])
        mask = torch.ones(len(train['inputs']), 3, dtype=torch.bool)
        per_sample = distiller.distill(train['inputs'], feats[:3],
                                       mask).losses
        train_loss = task['loss_reg'] + (distiller.selector.gates() *
                                         per_sample.mean(0)).sum()
        grads = torch.autograd.grad(train_loss, params, create_graph=True)
        if unrolled:
            virtual = {n: p - xi * g for n, p, g in zip(names, params, grads)}
            val_loss = torch.func.functional_call(
                student, virtual, (val['inputs'], val['data_samples']),
                dict(mode='loss'))['loss_reg']
            return torch.autograd.grad(val_loss, logits)[0]
        val_loss = student.loss(val['inputs'], val['data_samples'])
        v = torch.autograd.grad(val_loss['loss_reg'], params,
                                allow_unused=True)
        inner = sum((g * u).sum() for g, u in zip(grads, v) if u is not None)
        return torch.autograd.grad(-xi * inner, logits)[0]


@pytest.mark.parametrize('unrolled', [True, False])
def test_architect_step_matches_exact_hypergradient(tmp_path, unrolled):
    runner, _ = search_runner(tmp_path, 'DARTSSelector')
    distiller = runner.model
    torch.manual_seed(0)
    distiller.selector.logits.data.normal_()
    data = [toy_task.SignalImages()[i] for i in range(16)]
    train = dict(inputs=torch.stack([d['inputs'] for d in data[:8]]),
                 data_samples=torch.stack([d['data_samples']
                                           for d in data[:8]]))
    val = dict(inputs=torch.stack([d['inputs'] for d in data[8:]]),
               data_samples=torch.stack([d['data_samples']
                                         for d in data[8:]]))
    xi = 0.5
    expected = exact_hypergradient(distiller, train, val, xi, unrolled)
    weights = [p.detach().clone() for p in Architect(distiller,
                                                     None).weights()]
    logits = distiller.selector.logits.detach().clone()
    optimizer = torch.optim.SGD(distiller.selector.parameters(), lr=1.0)
    Architect(distiller, optimizer, unrolled).step(train, val, xi)
    # The gates moved by the hypergradient (SGD, lr 1) ...
    step = logits - distiller.selector.logits.detach()
    assert expected.abs().max() > 1e-4
    torch.testing.assert_close(step, expected, rtol=0.05, atol=1e-5)
    # ... and the virtual step and finite differences left w untouched.
    for before, after in zip(weights, Architect(distiller, None).weights()):
        assert torch.equal(before, after)


def test_gdas_straight_through_sample():
    selector = GDASSelector(levels=('a', 'b'))
    selector.logits.data = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    selector.temperature = 2.0
    selector.resample()
    gates = selector.gates()
    assert set(gates.tolist()) <= {0.0, 1.0}  # hard in the forward pass
    soft = ((selector.logits + selector.noise) / 2.0).softmax(-1)[:, 1]
    weights = torch.tensor([1.0, 2.0])
    (grad_hard, ) = torch.autograd.grad((gates * weights).sum(),
                                        selector.logits)
    (grad_soft, ) = torch.autograd.grad((soft * weights).sum(),
                                        selector.logits)
    torch.testing.assert_close(grad_hard, grad_soft)  # soft's gradient
    feats = [torch.zeros(5, 1, 2, 2)]
    assert selector.train()(feats, None).tolist() == [
        gates.bool().tolist()] * 5
    # Samples follow softmax(logits), whatever the temperature.
    torch.manual_seed(0)
    draws = []
    for _ in range(2000):
        selector.resample()
        draws.append(selector.gates().detach())
    rate = torch.stack(draws).mean(0)
    torch.testing.assert_close(rate, selector.probabilities(), atol=0.04,
                               rtol=0)


class GateWatcher(Hook):
    """The gates right after each iteration's gate step."""

    priority = 'LOW'  # after GateSearchHook's step

    def __init__(self):
        self.after_gate_step = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.after_gate_step.append(
            runner.model.selector.logits.detach().clone())


def test_only_the_gate_optimiser_moves_the_gates(tmp_path):
    runner, _ = search_runner(
        tmp_path, 'DARTSSelector', iters=4,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                                          weight_decay=0.1)))
    watcher = GateWatcher()
    runner.register_hook(watcher)
    recorder = GateRecorder()  # at the start of each iteration
    runner.register_hook(recorder)
    runner.train()
    # Between a gate step and the next iteration only the Runner's
    # optimiser (momentum, weight decay) ran: it must not move the gates.
    assert len(recorder.seen) == 4
    for after, start in zip(watcher.after_gate_step, recorder.seen[1:]):
        assert torch.equal(after, start)
    assert not torch.equal(recorder.seen[0], recorder.seen[-1])


class GateRecorder(Hook):
    """The gates each iteration starts from."""

    priority = 'HIGHEST'  # before GateSearchHook's step

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(runner.model.selector.logits.detach().clone())


def test_gate_search_resumes(tmp_path):
    runner, _ = search_runner(
        tmp_path, 'DARTSSelector', iters=4, default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=2)))
    runner.train()
    checkpoint = str(tmp_path / 'work' / 'iter_2.pth')
    trust_checkpoints(str(tmp_path / 'work'))
    saved = torch.load(checkpoint, weights_only=False)
    assert saved['gate_search']['optimizer']['state'][0]['step'] == 2

    resumed, hook = search_runner(tmp_path, 'DARTSSelector', iters=4,
                                  resume=True, load_from=checkpoint)
    recorder = GateRecorder()
    resumed.register_hook(recorder)
    resumed.train()
    assert len(recorder.seen) == 2  # iterations 3 and 4
    torch.testing.assert_close(recorder.seen[0],
                               saved['state_dict']['selector.logits'])
    assert hook.architect.optimizer.state_dict()['state'][0]['step'] == 4
    # The time spent before the interruption is carried over (the result
    # rounds to 0.1 s, so compare rounded values: no dependence on speed).
    with open(tmp_path / 'work' / 'search_result.json') as f:
        assert json.load(f)['search_wall_s'] >= round(
            saved['gate_search']['seconds'], 1)
