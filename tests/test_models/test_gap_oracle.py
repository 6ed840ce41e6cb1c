"""GapOracleSelector in the toy distiller: the teacher runs on every sample,
and only the samples farthest from it (or nearest) train the student."""
import pytest
import torch
from mmengine.logging import MessageHub

from test_distiller import LEVELS, batch, count_calls, make


def per_sample_gaps(model, inputs, labels):
    """Every sample's distillation loss summed over the levels, computed
    with the oracle's own weights (the selector does not change them)."""
    with model.student_tap.capture() as feats:
        model.student.loss(inputs, labels)
    mask = torch.ones(len(inputs), len(LEVELS), dtype=torch.bool)
    return model.distill(inputs, feats[:len(LEVELS)], mask).losses


@pytest.mark.parametrize('pick', ['far', 'near'])
def test_oracle_distills_the_samples_by_their_gap(toy_teacher, pick):
    torch.manual_seed(0)
    model = make(toy_teacher, selector=dict(
        type='GapOracleSelector', budget=0.25, pick=pick)).train()
    teacher = count_calls({'stem': model.teacher.backbone.layer1})
    inputs, labels = batch(8, seed=3)
    inputs.requires_grad_()
    losses = model.loss(inputs, labels)
    assert teacher['stem'] == [8]  # the teacher saw every sample
    assert losses['distill_cost'].item() == pytest.approx(1.0)
    gaps = per_sample_gaps(model, inputs.detach(), labels)
    order = gaps.sum(1).argsort(descending=pick == 'far')
    kept = gaps[order[:2]]  # a quarter of 8
    for j, level in enumerate(LEVELS):
        assert losses[f'loss_distill_{level}'].item() == pytest.approx(
            kept[:, j].sum().item() / 8, rel=1e-5)
        assert losses[f'sel_{level}'].item() == 0.25
    # only the kept samples' distillation reaches the student
    sum(losses[f'loss_distill_{level}'] for level in LEVELS).backward()
    reached = inputs.grad.flatten(1).abs().sum(1) > 0
    assert reached.tolist() == [i in order[:2] for i in range(8)]


def test_oracle_trains_every_sample_in_its_warmup(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, selector=dict(
        type='GapOracleSelector', budget=0.5, warmup=0.2)).train()
    hub = MessageHub.get_instance('test_gap_oracle_warmup')
    hub.update_info('max_iters', 50)
    rates = []
    for step in range(50):
        hub.update_info('iter', step)
        losses = model.loss(*batch(8, seed=step))
        rates.append(losses['sel_c2'].item())
        assert losses['distill_cost'].item() == pytest.approx(1.0)
    assert rates[:10] == [1.0] * 10
    # afterwards (0.5 - 0.2) / 0.8 = 0.375 of the samples train
    assert sum(rates[10:]) / 40 == pytest.approx(0.375, abs=0.04)


def test_oracle_pick_is_one_clear_error(toy_teacher):
    with pytest.raises(ValueError, match="'far' or 'near'"):
        make(toy_teacher, selector=dict(type='GapOracleSelector',
                                        budget=0.3, pick='hard'))
