"""Meta-Weight-Net on a tiny real mmpretrain classifier (BN included) and on
the toy distiller: the bi-level step's meta-gradient against an independent
exact computation, what the step leaves alone, and that mislabelled samples
end up with lower weights."""
import copy

import pytest
import torch
from mmpretrain.structures import DataSample
from torch.func import functional_call

from conftest import tiny_classifier
from pyramidkd_mm.engine import meta_weight_step
from pyramidkd_mm.models import MetaWeightedModel

CLASSES = 3


PATTERNS = torch.randn(CLASSES, 3, 4, 4,
                       generator=torch.Generator().manual_seed(0))


def images(classes, seed, dtype=torch.float32):
    """Images of the given true classes: the class's fixed pattern plus
    noise."""
    g = torch.Generator().manual_seed(seed)
    noise = 0.8 * torch.randn(len(classes), 3, 4, 4, generator=g)
    return (PATTERNS[classes] + noise).to(dtype)


def batch(x, labels):
    return dict(inputs=x,
                data_samples=[DataSample().set_gt_label(int(y))
                              for y in labels])


def weighted_model(seed=0, normalize=True):
    torch.manual_seed(seed)
    return MetaWeightedModel(model=tiny_classifier(CLASSES),
                             normalize=normalize)


def trainable(model):
    return {n: p for n, p in model.named_parameters()
            if not n.startswith('weight_net.')}


def per_sample_losses(model, data):
    """The classifier's per-sample cross-entropy, computed directly."""
    clf = model.model
    return torch.nn.functional.cross_entropy(
        clf.head(clf.extract_feat(data['inputs'])),
        torch.cat([s.gt_label for s in data['data_samples']]),
        reduction='none')


@pytest.mark.parametrize('normalize', [False, True])
def test_meta_gradient_matches_exact_computation(normalize):
    """Shu et al.'s meta-gradient, dL_meta(theta')/dphi =
    -lr/N sum_i <grad l_i(theta), grad L_meta(theta')> dw_i/dphi, computed
    from per-sample first-order gradients only (no gradient through a
    gradient), in float64, against the step's second-order autograd. With
    ``normalize`` the weights are w_i * N / sum_j w_j."""
    model = weighted_model(normalize=normalize).double()
    lr, n = 0.7, 8
    y = torch.arange(n) % CLASSES
    train = batch(images(y, 1, torch.float64), (y + 1) % CLASSES)
    meta = batch(images(y[:6], 2, torch.float64), y[:6])

    ref = copy.deepcopy(model)  # its BN buffers may change; model's not
    params = trainable(ref)
    losses = per_sample_losses(ref, train)
    weights = ref.weight_net(losses)
    if normalize:
        weights = weights * n / weights.sum()
    per_sample_grads = [
        torch.autograd.grad(losses[i], list(params.values()),
                            retain_graph=True, allow_unused=True)
        for i in range(n)]
    per_sample_grads = [[torch.zeros_like(p) if g is None else g
                         for p, g in zip(params.values(), grads)]
                        for grads in per_sample_grads]
    virtual = {name: (p - lr / n * sum(w * grads[j] for w, grads in zip(
        weights.detach(), per_sample_grads))).detach().requires_grad_()
        for j, (name, p) in enumerate(params.items())}
    meta_loss = functional_call(ref, virtual, (meta['inputs'],
                                               meta['data_samples']),
                                dict(mode='meta_loss'))['loss']
    v = torch.autograd.grad(meta_loss, list(virtual.values()))
    coef = torch.stack([sum((g * vj).sum() for g, vj in zip(grads, v))
                        for grads in per_sample_grads])
    expected = torch.autograd.grad(weights, list(ref.weight_net.parameters()),
                                   grad_outputs=-lr / n * coef)

    before = [p.detach().clone() for p in model.weight_net.parameters()]
    sgd = torch.optim.SGD(model.weight_net.parameters(), lr=1.0)
    step = meta_weight_step(model, sgd, train, meta, lr)
    assert step.finite
    assert step.meta_loss == pytest.approx(meta_loss.item(), rel=1e-10)
    norm = torch.cat([g.flatten() for g in expected]).norm()
    assert norm > 1e-4  # a first-order (detached) step would give zero
    assert step.grad_norm == pytest.approx(norm.item(), rel=1e-8)
    for b, p, g in zip(before, model.weight_net.parameters(), expected):
        torch.testing.assert_close(b - p.detach(), g, rtol=1e-8, atol=1e-12)


def test_virtual_step_leaves_weights_and_bn_statistics_untouched():
    model = weighted_model().train()
    y = torch.arange(16) % CLASSES
    train, meta = batch(images(y, 1), y), batch(images(y, 2), y)
    state = {k: v.clone() for k, v in model.model.state_dict().items()}
    assert any('running_mean' in k for k in state)
    net = [p.detach().clone() for p in model.weight_net.parameters()]
    adam = torch.optim.Adam(model.weight_net.parameters(), lr=1e-2)
    meta_weight_step(model, adam, train, meta, lr=0.1)
    for key, value in model.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in model.model.parameters())
    assert not all(torch.equal(a, b) for a, b in
                   zip(net, model.weight_net.parameters()))
    # The real step trains the model, never the weighting net, and does
    # update the BN statistics.
    loss = model(**train, mode='loss')['loss']
    loss.backward()
    assert all(p.grad is None for p in model.weight_net.parameters())
    assert model.model.head.fc.weight.grad is not None
    assert not torch.equal(
        model.model.backbone.bn1.running_mean,
        state['backbone.bn1.running_mean'])


@pytest.mark.parametrize('normalize', [False, True])
def test_mislabelled_samples_get_lower_weights(normalize):
    torch.manual_seed(0)
    n, rate = 240, 0.4
    true = torch.arange(n) % CLASSES
    g = torch.Generator().manual_seed(3)
    # MW-Net's uniform noise: with probability rate a label is redrawn
    # from all classes
    redraw = torch.rand(n, generator=g) < rate
    noisy = torch.where(redraw, torch.randint(CLASSES, (n, ), generator=g),
                        true)
    wrong = noisy != true
    assert 0.25 < wrong.float().mean() < 0.35
    x = images(true, 1)
    meta_y = torch.arange(30) % CLASSES
    meta = batch(images(meta_y, 2), meta_y)
    model = weighted_model(normalize=normalize)
    # start from a constant weight: any preference is learned
    torch.nn.init.zeros_(model.weight_net.layers[2].weight)
    sgd = torch.optim.SGD(model.model.parameters(), lr=0.1, momentum=0.9)
    adam = torch.optim.Adam(model.weight_net.parameters(), lr=1e-3)
    for _ in range(80):
        idx = torch.randperm(n, generator=g)[:32]
        train = batch(x[idx], noisy[idx])
        meta_weight_step(model, adam, train, meta, lr=0.1)
        sgd.zero_grad()
        model(**train, mode='loss')['loss'].backward()
        sgd.step()
    model.eval()
    losses = model.sample_losses(**batch(x, noisy))  # what the net sees
    with torch.no_grad():
        torch.testing.assert_close(
            losses, per_sample_losses(model, batch(x, noisy)))
        weights = model.weight_net(losses)
    # (normalised weights count relative to each other: compare ratios)
    assert weights[wrong].mean() < 0.5 * weights[~wrong].mean()


def test_distiller_weighs_its_distillation_losses(toy_teacher):
    config, checkpoint = toy_teacher
    torch.manual_seed(0)
    model = MetaWeightedModel(model=dict(
        type='pyramidkd_mm.PyramidDistiller',
        student=dict(type='pyramidkd_mm.ToyPyramidModel'),
        teacher=dict(config=config, checkpoint=checkpoint),
        levels=('c2', 'c3', 'c4')))
    x, y = torch.randn(6, 3, 16, 16), torch.arange(6) % 2
    distiller = model.model
    plain = distiller.loss(x, y)
    zero = distiller.loss(x, y, weigh_samples=torch.zeros_like)
    one = distiller.loss(x, y, weigh_samples=torch.ones_like)
    for name in ('c2', 'c3', 'c4'):
        assert plain[f'loss_distill_{name}'] > 0
        assert zero[f'loss_distill_{name}'] == 0
        assert torch.equal(one[f'loss_distill_{name}'],
                           plain[f'loss_distill_{name}'])
    assert torch.equal(zero['loss_cls'], plain['loss_cls'])  # unweighted
    # the meta step reaches the weighting net through the distillation
    # losses only, and leaves student and teacher as they were
    state = {k: v.clone() for k, v in distiller.state_dict().items()}
    adam = torch.optim.Adam(model.weight_net.parameters(), lr=1e-2)
    step = meta_weight_step(model, adam, dict(inputs=x, data_samples=y),
                            dict(inputs=x.flip(0), data_samples=y), lr=0.1)
    assert step.grad_norm > 0
    for key, value in distiller.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model._ddp_params_and_buffers_to_ignore[:2] == [
        'weight_net.layers.0.weight', 'weight_net.layers.0.bias']
