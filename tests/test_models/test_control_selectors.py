"""RandomSelector (with and without warm-up, with importance weights),
UncertaintySelector and EarlySelector in the toy distiller: they spend their
budget, and a skipped sample does no teacher work."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from test_distiller import LEVELS, batch, count_calls, make


def mean_cost(model, steps=150, size=8):
    costs = []
    for step in range(steps):
        costs.append(model.loss(*batch(size, seed=step))['distill_cost'])
    return torch.stack(costs).mean().item()


@pytest.mark.parametrize('mode', ['samples', 'levels'])
@pytest.mark.parametrize('budget', [0.25, 0.6])
def test_random_selector_spends_its_budget(toy_teacher, mode, budget):
    torch.manual_seed(0)
    model = make(toy_teacher, selector=dict(
        type='RandomSelector', budget=budget, mode=mode)).train()
    assert mean_cost(model) == pytest.approx(budget, abs=0.03)
    if mode == 'levels':  # one probability for every pair
        p = model.selector.probability
        assert model.teacher_cost.expected(torch.full((3, ), p)).item() == \
            pytest.approx(budget, abs=1e-4)


@pytest.mark.parametrize('mode', ['samples', 'levels'])
def test_importance_weights_make_random_choice_unbiased(toy_teacher, mode):
    torch.manual_seed(0)
    uniform = make(toy_teacher).train()
    models = {importance: make(toy_teacher, selector=dict(
        type='RandomSelector', budget=0.3, mode=mode,
        importance=importance)).train() for importance in (False, True)}
    for model in models.values():
        model.load_state_dict(uniform.state_dict(), strict=False)
    p = models[True].selector.probability
    totals = dict.fromkeys(('uniform', False, True), 0.0)
    for step in range(200):
        losses = {}
        for key, model in [('uniform', uniform), *models.items()]:
            losses[key] = model.loss(*batch(8, seed=step))['loss_distill_c3']
            totals[key] += losses[key].item()
        # one stream seed: the same pairs, each weighted 1 / p
        assert losses[True].item() == pytest.approx(
            losses[False].item() / p, rel=1e-5, abs=1e-7)
    # so a random choice's loss averages uniform KD's (1600 draws: within
    # 15 %), where unweighted it averages p times it
    assert totals[True] == pytest.approx(totals['uniform'], rel=0.15)
    assert totals[False] == pytest.approx(p * totals['uniform'], rel=0.15)


@pytest.mark.parametrize('selector', [
    dict(type='UncertaintySelector', budget=0.25),
    dict(type='GapOracleSelector', budget=0.25, pick='near')])
def test_importance_weighs_a_chosen_quarter_four_times(toy_teacher, selector):
    # the same choices, each distilled sample at 1 / rate: uniform KD's
    # strength per sample
    torch.manual_seed(0)
    plain = make(toy_teacher, selector=selector).train()
    weighted = make(toy_teacher, selector=dict(selector, importance=True))
    weighted.train().load_state_dict(plain.state_dict())
    for step in range(3):
        inputs = batch(8, seed=step)
        losses = plain.loss(*inputs), weighted.loss(*inputs)
        for level in LEVELS:
            assert losses[0][f'sel_{level}'] == losses[1][f'sel_{level}']
            assert losses[1][f'loss_distill_{level}'].item() == \
                pytest.approx(4 * losses[0][f'loss_distill_{level}'].item(),
                              rel=1e-5)
            assert losses[0][f'loss_distill_{level}'] > 0


def test_uncertainty_selector_picks_the_least_sure(toy_teacher):
    torch.manual_seed(0)
    model = make(toy_teacher, selector=dict(
        type='UncertaintySelector', budget=0.25)).train()
    inputs, labels = batch(8, seed=3)
    masks = []
    model.selector.register_forward_hook(
        lambda m, args, mask: masks.append(mask))
    model.loss(inputs, labels)
    with torch.no_grad():
        logits = model.student(inputs)
    entropy = -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1)
    picked = masks[0][:, 0]
    assert picked.sum() == 2  # a quarter of 8
    assert entropy[picked].min() >= entropy[~picked].max()
    # the opposite heuristic picks the other end
    model.selector.pick = 'sure'
    model.loss(inputs, labels)
    sure = masks[1][:, 0]
    assert sure.sum() == 2
    assert entropy[sure].max() <= entropy[~sure].min()
    assert (masks[0] == picked[:, None]).all()  # every level of a sample
    spent = mean_cost(model, steps=40, size=6)
    assert spent == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize('selector', [
    dict(type='RandomSelector', budget=0.5),
    dict(type='UncertaintySelector', budget=0.5)])
def test_skipped_samples_do_no_teacher_work(toy_teacher, selector):
    torch.manual_seed(0)
    model = make(toy_teacher, selector=selector).train()
    teacher = count_calls({'stem': model.teacher.backbone.layer1})
    masks = []
    model.selector.register_forward_hook(
        lambda m, args, mask: masks.append(mask))
    for step in range(6):
        model.loss(*batch(8, seed=step))
    selected = [int(m.any(1).sum()) for m in masks]
    # the teacher's first stage ran on exactly the selected samples
    assert teacher['stem'] == [n for n in selected if n]
    assert 0 < sum(selected) < 6 * 8
    assert math.isclose(sum(selected) / 48, 0.5, abs_tol=0.2)


def test_early_selector_distills_the_first_part_of_the_run(toy_teacher):
    model = make(toy_teacher, selector=dict(type='EarlySelector',
                                            budget=0.3)).train()
    teacher = count_calls({'stem': model.teacher.backbone.layer1})
    hub = MessageHub.get_instance('test_early_selector')  # as a Runner's
    hub.update_info('max_iters', 20)
    costs = []
    for step in range(20):
        hub.update_info('iter', step)
        costs.append(model.loss(*batch(4, seed=step))['distill_cost'].item())
    assert costs == [1.0] * 6 + [0.0] * 14
    assert teacher['stem'] == [4] * 6  # no teacher work afterwards
    assert model.spent[0] / model.spent[1] == pytest.approx(0.3)
    MessageHub.get_instance('test_early_selector_outside_a_runner')
    with pytest.raises(RuntimeError, match='MessageHub'):
        model.loss(*batch(4, seed=0))


@pytest.mark.parametrize('selector', [
    dict(type='RandomSelector', mode='samples'),
    dict(type='RandomSelector', mode='levels'),
    dict(type='UncertaintySelector')])
def test_a_control_after_a_warmup_pays_it_back(toy_teacher, selector):
    torch.manual_seed(0)
    model = make(toy_teacher, selector=dict(
        selector, budget=0.5, warmup=0.2)).train()
    hub = MessageHub.get_instance(f'test_warmup_{len(selector)}_'
                                  f'{selector.get("mode")}')
    hub.update_info('max_iters', 100)
    costs = []
    for step in range(100):
        hub.update_info('iter', step)
        costs.append(model.loss(*batch(8, seed=step))['distill_cost'].item())
    assert costs[:20] == [1.0] * 20  # RL-KD's uniform phase 1
    # afterwards (0.5 - 0.2) / 0.8 = 0.375 a sample, so the run spends 0.5
    assert sum(costs[20:]) / 80 == pytest.approx(0.375, abs=0.04)
    assert model.spent[0] / model.spent[1] == pytest.approx(0.5, abs=0.03)


def test_budget_outside_zero_one_is_one_clear_error(toy_teacher):
    with pytest.raises(ValueError, match='budget'):
        make(toy_teacher, selector=dict(type='RandomSelector', budget=1.5))
    with pytest.raises(ValueError, match="'samples' or 'levels'"):
        make(toy_teacher, selector=dict(type='RandomSelector', budget=0.5,
                                        mode='pairs'))
    with pytest.raises(ValueError, match='warmup'):
        make(toy_teacher, selector=dict(type='RandomSelector', budget=0.3,
                                        warmup=0.5))
    with pytest.raises(ValueError, match="'unsure' or 'sure'"):
        make(toy_teacher, selector=dict(type='UncertaintySelector',
                                        budget=0.3, pick='easy'))
    with pytest.raises(ValueError, match='UncertaintySelector warmup'):
        make(toy_teacher, selector=dict(type='UncertaintySelector',
                                        budget=0.3, warmup=-0.1))
