"""RLSelector inside the toy distiller: modes, outcome, PPO, state."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from test_distiller import LEVELS, batch, count_calls, make
from test_distiller_toolboxes import save_random_teacher, tiny

RL = dict(type='RLSelector', policy=dict(hidden_dim=16), rollout_iters=2,
          ppo=dict(minibatch_size=4, lr=1e-2))


def rl_model(toy_teacher):
    torch.manual_seed(0)
    return make(toy_teacher, selector=RL).train()


def step(model, optimizer, seed):
    """One training step and the selector's update, as the hook runs it."""
    losses = model.loss(*batch(seed=seed))
    optimizer.zero_grad()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    optimizer.step()
    return losses, model.selector.learn(model.outcome())


def student_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.5)


def test_policy_sized_from_the_student(toy_teacher):
    model = rl_model(toy_teacher)
    # top 16 + levels 4 + 8 + 16 + loss 1 + selected 3 + budget 1
    assert model.selector.policy.state_dim == 16 + 28 + 5
    assert model.selector.policy.num_levels == len(LEVELS)
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    assert ignored == {f'selector.{n}' for n, _ in
                       model.selector.named_parameters()}
    assert 'selector.policy.encoder.0.weight' in ignored


def test_building_the_policy_leaves_the_global_rng_alone(toy_teacher):
    # The Runner draws the student's initial weights from the global RNG
    # after building the model: RL-KD must start where uniform KD starts.
    torch.manual_seed(0)
    make(toy_teacher)
    uniform_next = torch.rand(8)
    rl_model(toy_teacher)
    assert torch.equal(torch.rand(8), uniform_next)


def test_uniform_phase_selects_everything_and_waits_for_nothing(
        toy_teacher):
    model = rl_model(toy_teacher)
    model.selector.uniform = True
    losses = model.loss(*batch())
    assert losses['distill_cost'].item() == pytest.approx(1.0)
    assert not model.selector.needs_outcome and model._outcome is None


def test_learning_needs_the_outcome_of_each_step(toy_teacher):
    model = rl_model(toy_teacher)
    model.loss(*batch())
    assert model.selector.needs_outcome
    with pytest.raises(RuntimeError, match='DistillPhaseHook'):
        model.loss(*batch())


def test_eval_is_deterministic_and_records_nothing(toy_teacher):
    model = rl_model(toy_teacher).eval()
    feats = model.student_tap
    inputs, _ = batch()
    with torch.no_grad(), feats.capture() as pyramid:
        model.student.extract_feat(inputs)
    masks = [model.selector(pyramid, None) for _ in range(3)]
    assert all(torch.equal(masks[0], m) for m in masks)
    assert not model.selector.needs_outcome


def test_outcome_measures_the_step_on_the_selected_pairs(toy_teacher):
    model = rl_model(toy_teacher)
    optimizer = student_optimizer(model)
    losses = model.loss(*batch())
    optimizer.zero_grad()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    optimizer.step()
    mask = model._outcome.mask
    outcome = model.outcome()
    before, after, cost = outcome.loss_before, outcome.loss_after, \
        outcome.cost
    assert torch.equal(before != 0, mask) and torch.equal(after != 0, mask)
    # the student stepped towards the teacher on the distilled pairs
    assert (after[mask] < before[mask]).float().mean() > 0.5
    torch.testing.assert_close(cost, model.teacher_cost(mask))
    assert model._outcome is None


def test_rollouts_update_the_policy_and_leave_no_gradients(toy_teacher):
    model = rl_model(toy_teacher)
    optimizer = student_optimizer(model)
    policy = model.selector.policy
    start = torch.nn.utils.parameters_to_vector(policy.parameters()).clone()
    _, first = step(model, optimizer, seed=1)
    assert {'reward', 'gain', 'cost_saved', 'lam'} == set(first)
    assert model.selector.buffer.pos == 1
    _, second = step(model, optimizer, seed=2)  # rollout complete: PPO
    assert {'policy_loss', 'value_loss', 'entropy', 'clip_fraction',
            'approx_kl', 'explained_variance'} <= set(second)
    assert model.selector.buffer.pos == 0
    moved = torch.nn.utils.parameters_to_vector(policy.parameters())
    assert not torch.allclose(start, moved)
    # the student's optimiser holds the policy too but must skip it
    assert all(p.grad is None for p in policy.parameters())


def test_state_dicts_carry_policy_ppo_and_rollout(toy_teacher):
    model = rl_model(toy_teacher)
    optimizer = student_optimizer(model)
    for seed in range(3):  # one PPO update, then half a rollout
        step(model, optimizer, seed)
    resumed = rl_model(toy_teacher)
    resumed.load_state_dict(model.state_dict())
    resumed.selector.load_learner_state_dict(
        model.selector.learner_state_dict())
    assert resumed.selector.buffer.pos == 1
    torch.testing.assert_close(resumed.selector.buffer.states,
                               model.selector.buffer.states)
    torch.testing.assert_close(resumed.selector.env.select_rate,
                               model.selector.env.select_rate)
    saved = model.selector.trainer.optimizer.state_dict()['state']
    loaded = resumed.selector.trainer.optimizer.state_dict()['state']
    assert saved.keys() == loaded.keys() and saved
    for key in saved:
        torch.testing.assert_close(loaded[key]['exp_avg'],
                                   saved[key]['exp_avg'])


def test_a_smaller_last_batch_is_not_stored(toy_teacher):
    model = rl_model(toy_teacher)
    optimizer = student_optimizer(model)
    step(model, optimizer, seed=1)
    losses = model.loss(*batch(n=3, seed=2))
    optimizer.zero_grad()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    optimizer.step()
    stats = model.selector.learn(model.outcome())
    assert 'reward' in stats and model.selector.buffer.pos == 1


def test_non_finite_outcome_is_not_rewarded(toy_teacher):
    model = rl_model(toy_teacher)
    optimizer = student_optimizer(model)
    step(model, optimizer, seed=1)
    env_state = {k: v.clone() for k, v in model.selector.env.state_dict()
                 .items()}
    losses = model.loss(*batch(seed=2))
    optimizer.zero_grad()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    optimizer.step()
    outcome = model.outcome()
    outcome.loss_after[0, 0] = float('nan')
    assert model.selector.learn(outcome) == dict(nonfinite=1.0)
    assert model.selector.buffer.pos == 1  # the step was not stored
    for key, value in model.selector.env.state_dict().items():
        assert torch.equal(value, env_state[key]), key
    assert not model.selector.needs_outcome  # ready for the next decision


def rl_variant(toy_teacher, **options):
    torch.manual_seed(0)
    selector = dict(RL, **options)
    return make(toy_teacher, selector=selector).train()


@pytest.mark.parametrize('action,decisions', [
    ('sample', 1), ('sample_levels', 1 + len(LEVELS))])
def test_sample_actions_skip_whole_samples(toy_teacher, action, decisions):
    model = rl_variant(toy_teacher, action=action)
    assert model.selector.policy.num_levels == decisions
    optimizer = student_optimizer(model)
    masks = []
    model.selector.register_forward_hook(
        lambda m, args, mask: masks.append(mask))
    for seed in range(3):  # a PPO update after 2 steps, then one more
        step(model, optimizer, seed)
    decision = model.selector.buffer.actions[0]  # the third step's
    assert decision.shape == (4, decisions)
    mask = masks[2]
    if action == 'sample':  # all levels of a sample, or none
        assert (mask == mask[:, :1]).all()
        torch.testing.assert_close(mask.float(), decision.expand(-1, 3))
    else:
        expected = decision[:, :1].bool() & decision[:, 1:].bool()
        assert torch.equal(mask, expected)


@pytest.mark.parametrize('target', [0.25, 0.75])
def test_calibrated_policy_spends_the_target_whatever_it_prefers(
        toy_teacher, target):
    model = rl_variant(toy_teacher, action='sample', calibrate=True,
                       env=dict(budget=target, reward='gap'))
    policy = model.selector.policy
    assert policy.logit_offset and policy.state_dim == 16 + 28 + 5 + 1
    torch.nn.init.constant_(policy.logit_head.bias, 6.0)  # prefers all
    torch.nn.init.normal_(policy.logit_head.weight, std=0.1)
    optimizer = student_optimizer(model)
    masks = []
    model.selector.register_forward_hook(
        lambda m, args, mask: masks.append(mask[:, 0]))
    step(model, optimizer, 0)
    # the stored states carry the offset the decisions were drawn with
    raw = model.selector.buffer.states[0].clone()
    assert (raw[:, -1] < -1).all()
    # without the offset, the same policy distills nearly every sample
    raw[:, -1] = 0
    with torch.no_grad():
        free = policy.logits(raw).sigmoid()
    assert free.mean() > 0.9
    for seed in range(1, 40):  # whatever PPO makes of its preference
        step(model, optimizer, seed)
    rate = torch.stack(masks).float().mean().item()
    assert rate == pytest.approx(target, abs=0.1)  # 160 Bernoulli draws


def test_calibration_needs_one_decision_per_sample(toy_teacher):
    with pytest.raises(ValueError, match="calibrate=True needs"):
        rl_variant(toy_teacher, action='levels', calibrate=True)
    with pytest.raises(ValueError, match="importance=True needs"):
        rl_variant(toy_teacher, action='sample', importance=True)


def test_importance_weighs_distilled_samples_by_the_inverse_target(
        toy_teacher):
    model = rl_variant(toy_teacher, action='sample', calibrate=True,
                       importance=True, env=dict(budget=0.25, reward='gap'))
    plain = rl_variant(toy_teacher, action='sample', calibrate=True,
                       env=dict(budget=0.25, reward='gap'))
    plain.load_state_dict(model.state_dict())
    inputs, labels = batch(16, seed=3)
    weighted, unweighted = model.loss(inputs, labels), plain.loss(inputs,
                                                                  labels)
    # the same decisions (one seed, one stream), four times the weight
    assert 0 < weighted['sel_c2'] < 1
    for level in LEVELS:
        assert weighted[f'sel_{level}'] == unweighted[f'sel_{level}']
        assert weighted[f'loss_distill_{level}'].item() == pytest.approx(
            4 * unweighted[f'loss_distill_{level}'].item())
    model.selector.uniform = True  # phase 1 distills every sample at 1
    assert model.selector.loss_weights() is None


def test_gap_reward_needs_no_pass_after_the_step(toy_teacher):
    model = rl_variant(toy_teacher, env=dict(reward='gap'))
    assert not model.selector.needs_after_pass
    optimizer = student_optimizer(model)
    losses = model.loss(*batch(seed=1))
    optimizer.zero_grad()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    optimizer.step()
    passes = count_calls({'student': model.student.backbone.layer1})
    outcome = model.outcome()
    assert outcome.loss_after is None and passes['student'] == []
    stats = model.selector.learn(outcome)
    # the gain is the distance from the teacher on what was distilled
    scale = model.selector.env.level_scale
    gap = (outcome.loss_before / scale).sum(1)
    assert stats['gain'] == pytest.approx(gap.mean().item(), rel=1e-5)


def test_entropy_signal_is_in_the_state(toy_teacher):
    model = rl_variant(toy_teacher, signals=('entropy', ))
    assert model.selector.policy.state_dim == 16 + 28 + 5 + 1
    inputs, labels = batch(seed=4)
    model.loss(inputs, labels)
    states = model.selector._pending[0]
    with torch.no_grad():
        logits = model.student(inputs)
    probs = logits.softmax(1)
    entropy = -(probs * probs.log()).sum(1) / torch.log(torch.tensor(2.))
    torch.testing.assert_close(states[:, -1], entropy)


def test_unknown_action_or_signal_is_one_clear_error(toy_teacher):
    with pytest.raises(ValueError, match='action must be one of'):
        rl_variant(toy_teacher, action='pairs')
    with pytest.raises(ValueError, match='unknown RLSelector signals'):
        rl_variant(toy_teacher, signals=('loss', ))
    with pytest.raises(ValueError, match="needs action='sample'"):
        rl_variant(toy_teacher, action='levels',
                   env=dict(reward='disagreement'))


@pytest.mark.parametrize('task,calibrate', [
    ('det', False), ('seg', False), ('cls', False), ('det', True)])
def test_disagreement_reward_on_every_toolbox(task, calibrate, digits_data,
                                              tmp_path, monkeypatch):
    """The teacher's head runs on what the policy distilled, its compute
    is in the spent cost, and the policy is paid the KL (calibrated: in
    the real detector too)."""
    monkeypatch.chdir(digits_data + '/../..')
    cfg = tiny(Config.fromfile(f'configs/digits/{task}_rl_kd.py'), tmp_path,
               iters=3)
    cfg.model.teacher.checkpoint = save_random_teacher(
        cfg.model.teacher.config, tmp_path / 'teacher.pth')
    cfg.model.selector.env.reward = 'disagreement'
    cfg.model.selector.calibrate = calibrate
    cfg.custom_hooks[0].milestones = [0, 3]
    runner = Runner.from_cfg(cfg)
    model = runner.model
    spent = []
    model.selector.register_forward_hook(
        lambda m, args, mask: spent.append(model.teacher_cost(mask)))
    runner.train()
    pyramid = torch.cat(spent)
    # every distilled sample paid its pyramid and the teacher's head (a
    # classifier's linear head is next to nothing)
    head = (model.spent[0] - pyramid.sum()) / (pyramid > 0).sum()
    assert head > dict(det=0.01, seg=0.01, cls=1e-6)[task]
    hub = runner.message_hub
    assert hub.get_scalar('train/rl_gain').current() >= 0


def test_a_state_without_pooled_features_is_statistics_and_signals(
        toy_teacher):
    model = rl_variant(toy_teacher, signals=('entropy', ),
                       env=dict(pooled_features=False))
    assert model.selector.policy.state_dim == 5 + 1  # loss, 3 rates, budget
    model.loss(*batch(seed=4))
    states = model.selector._pending[0]
    assert states.shape == (4, 6)
    # every sample shares the statistics; only the entropy tells them apart
    assert (states[:, :5] == states[:1, :5]).all()
    assert states[:, 5].unique().numel() == 4
