"""PyramidDistiller on the toy teacher and student (fast, CPU)."""
import pytest
import torch
from mmengine.registry import MODELS

from pyramidkd_mm.models import PyramidDistiller
from pyramidkd_mm.models.selectors import LevelSelector

LEVELS = ('c2', 'c3', 'c4')


def make(toy_teacher, student_channels=(4, 8, 16), **kwargs):
    config, checkpoint = toy_teacher
    kwargs.setdefault('levels', LEVELS)
    return PyramidDistiller(
        student=dict(type='ToyPyramidModel', channels=student_channels,
                     _scope_='pyramidkd_mm'),
        teacher=dict(config=config, checkpoint=checkpoint), **kwargs)


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 2


class RowSelector(LevelSelector):
    """Selects a given (batch, levels) mask, to drive per-sample tests."""

    def __init__(self, mask):
        super().__init__(LEVELS)
        self.mask = mask

    def forward(self, feats, data_samples):
        return self.mask


def count_calls(modules):
    """Forward hooks recording the batch size of every call."""
    calls = {name: [] for name in modules}
    for name, module in modules.items():
        module.register_forward_hook(
            lambda m, a, o, name=name: calls[name].append(a[0].shape[0]))
    return calls


def test_losses_keep_student_and_add_levels(toy_teacher):
    model = make(toy_teacher).train()
    losses = model.loss(*batch())
    assert {'loss_cls', 'loss_distill_c2', 'loss_distill_c3',
            'loss_distill_c4', 'sel_c2', 'cost_c2', 'distill_cost'} <= set(
                losses)
    assert losses['distill_cost'].item() == pytest.approx(1.0)
    # Backbone pyramid: only the deepest level saves compute when dropped.
    assert losses['cost_c2'].item() == losses['cost_c3'].item() == 0
    assert 0 < losses['cost_c4'].item() < 1
    assert not model.teacher.training and model.student.training
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.student.parameters())


def test_distillation_moves_the_student_towards_the_teacher(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, distill_loss=dict(type='NormalizedMSELoss'))
    optim = torch.optim.SGD(model.student.parameters(), lr=0.05)
    inputs, labels = batch(8)
    first = None
    for _ in range(40):
        losses = model.loss(inputs, labels)
        distill = sum(losses[f'loss_distill_{n}'] for n in LEVELS)
        first = distill.item() if first is None else first
        optim.zero_grad()
        distill.backward()
        optim.step()
    assert distill.item() < 0.7 * first


def test_connectors_only_where_channels_differ(toy_teacher):
    same = make(toy_teacher)
    narrow = make(toy_teacher, student_channels=(2, 4, 8))
    assert all(isinstance(c, torch.nn.Identity)
               for c in same.connectors.values())
    assert [c.in_channels for c in narrow.connectors.values()] == [2, 4, 8]
    assert [c.out_channels for c in narrow.connectors.values()] == [4, 8, 16]
    narrow.loss(*batch())  # shapes line up through the connectors


def test_masked_levels_and_samples_do_no_work(toy_teacher):
    mask = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]]).bool()
    model = make(toy_teacher, student_channels=(2, 4, 8))
    model.selector = RowSelector(mask)
    teacher = count_calls({n: getattr(model.teacher.backbone, n)
                           for n in ('layer1', 'layer2', 'layer3')})
    connectors = count_calls(dict(model.connectors))
    losses = model.loss(*batch())
    # The teacher sees the 2 selected samples, each only as deep as its
    # levels need: c3 for one, c2 for the other (c4 gets an empty batch).
    assert teacher == {'layer1': [2], 'layer2': [1], 'layer3': [0]}
    assert connectors == {'c2': [2], 'c3': [1], 'c4': []}
    assert losses['loss_distill_c4'].item() == 0
    assert losses['sel_c2'].item() == pytest.approx(0.5)
    # Relative cost: a c3-deep prefix for 1 sample, c2 for another, of 4.
    full = model.teacher_cost(torch.ones(1, 3, dtype=torch.bool)).item()
    c2, c3 = (model.teacher_cost(torch.tensor([m]).bool()).item()
              for m in ([1, 0, 0], [0, 1, 0]))
    assert full == pytest.approx(1)
    assert losses['distill_cost'].item() == pytest.approx((c2 + c3) / 4)

    model.selector = RowSelector(torch.zeros(4, 3, dtype=torch.bool))
    teacher['layer1'].clear()
    losses = model.loss(*batch())
    assert teacher['layer1'] == [] and losses['distill_cost'].item() == 0


def test_fixed_selector_from_config(toy_teacher):
    model = make(toy_teacher, selector=dict(type='FixedSelector',
                                            mask=['c2', 'c4']))
    losses = model.loss(*batch())
    assert [losses[f'sel_{n}'].item() for n in LEVELS] == [1, 0, 1]
    with pytest.raises(ValueError, match='not levels of the distiller'):
        make(toy_teacher, selector=dict(type='FixedSelector', mask=['p9']))
    with pytest.raises(ValueError, match='has 2 flags'):
        make(toy_teacher, selector=dict(type='FixedSelector', mask=[1, 0]))


def test_clear_errors(toy_teacher, tmp_path):
    config, checkpoint = toy_teacher
    with pytest.raises(FileNotFoundError, match='does not exist'):
        make((config, str(tmp_path / 'missing.pth')))
    with pytest.raises(ValueError, match='has only 3 pyramid levels'):
        make(toy_teacher, levels=('c2', 'c3', 'c4', 'c5'))
    other = MODELS.build(dict(type='ToyPyramidModel', channels=(4, 8, 32),
                              _scope_='pyramidkd_mm'))
    torch.save(other.state_dict(), tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='does not match the teacher'):
        make((config, str(tmp_path / 'other.pth')))


def test_teacher_weights_are_loaded(toy_teacher):
    model = make(toy_teacher)
    saved = torch.load(toy_teacher[1])['state_dict']
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, saved[key])


def test_gradnorm_reweights_the_level_losses(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, student_channels=(2, 4, 8),
                 loss_balancer=dict(type='GradNorm', lr=0.1))
    assert model.balance_layer == 'backbone.layer1'
    optim = torch.optim.SGD(model.student.parameters(), lr=0.01)
    for step in range(5):
        losses = model.loss(*batch(seed=step))
        weights = torch.stack([losses[f'gradnorm_w_distill_{n}']
                               for n in LEVELS])
        optim.zero_grad()
        model.parse_losses(losses)[0].backward()
        optim.step()
    assert weights.sum().item() == pytest.approx(3)
    assert not torch.allclose(weights, torch.ones(3))  # the weights moved
    # The weighted level losses are what trains.
    inputs, labels = batch(seed=9)
    losses = model.loss(inputs, labels)
    with torch.no_grad(), model.student_tap.capture() as feats:
        model.student.extract_feat(inputs)
        raw = model.distill(inputs, feats,
                            torch.ones(4, 3, dtype=torch.bool)).losses
    assert losses['loss_distill_c2'].item() == pytest.approx(
        (losses['gradnorm_w_distill_c2'] * raw[:, 0].mean()).item(),
        rel=1e-5)


def nan_row(module, row):
    """A forward hook that makes one row of the module's output NaN."""
    def hook(m, args, out):
        out = out.clone()
        out[row] = float('nan')
        return out
    return module.register_forward_hook(hook)


def train_step(model, seed=0):
    losses = model.loss(*batch(seed=seed))
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.parse_losses(losses)[0].backward()
    optim.step()
    return losses


def test_non_finite_teacher_features_are_left_out(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, student_channels=(2, 4, 8)).train()
    nan_row(model.teacher.backbone.layer2, row=1)  # c3 and c4 of sample 1
    losses = train_step(model)
    assert losses['distill_nonfinite'].item() == 2
    assert all(losses[f'loss_distill_{n}'].item() > 0 for n in LEVELS)
    assert all(p.isfinite().all() for p in model.parameters())


def test_non_finite_distillation_loss_skips_distillation(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, student_channels=(2, 4, 8)).train()
    nan_row(model.connectors['c3'], row=2)  # on the student's side
    before = [p.detach().clone() for p in model.connectors.parameters()]
    losses = train_step(model)
    assert losses['distill_nonfinite'].item() == 1
    assert all(losses[f'loss_distill_{n}'].item() == 0 for n in LEVELS)
    assert losses['loss_cls'].isfinite()  # the student's own loss trains
    assert all(p.isfinite().all() for p in model.parameters())
    # no distillation gradient reached the connectors
    assert all(torch.equal(b, p) for b, p in
               zip(before, model.connectors.parameters()))


def test_fp16_autocast_keeps_costs_and_losses_in_float32(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, student_channels=(2, 4, 8), selector=dict(
        type='RLSelector', policy=dict(hidden_dim=16))).train()
    with torch.autocast('cpu', dtype=torch.float16):
        losses = model.loss(*batch())
    assert model._outcome.autocast == torch.float16
    for name in LEVELS:
        assert losses[f'loss_distill_{name}'].dtype == torch.float32
    assert losses['distill_cost'].dtype == torch.float32
    # No optimiser step: the outcome, recomputed under the same autocast,
    # must measure exactly no change.
    outcome = model.outcome()
    assert outcome.loss_before.dtype == outcome.loss_after.dtype == \
        torch.float32
    assert (outcome.loss_before > 0).any()
    torch.testing.assert_close(outcome.loss_after, outcome.loss_before,
                               rtol=0, atol=0)


def test_distill_cost_mean_counts_every_sample_of_the_run(toy_teacher):
    """The logged per-batch cost is what loggers subsample; the run's mean
    must count every batch, and survive a checkpoint."""
    model = make(toy_teacher).train()
    masks = [torch.tensor([[1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]),
             torch.ones(4, 3), torch.zeros(4, 3),
             torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]])]
    costs = []
    for mask in masks:
        model.selector = RowSelector(mask.bool())
        losses = model.loss(*batch())
        costs.append(losses['distill_cost'].item())
        assert losses['distill_cost_mean'].item() == pytest.approx(
            sum(costs) / len(costs))
    assert costs[0] == pytest.approx(0.25) and costs[2] == 0
    restored = make(toy_teacher)
    restored.load_state_dict(model.state_dict())
    restored.selector = RowSelector(torch.ones(4, 3, dtype=torch.bool))
    assert restored.train().loss(*batch())['distill_cost_mean'].item() \
        == pytest.approx((sum(costs) + 1) / 5)
