"""DistillationEnvironment: states and the reward, computed by hand."""
import pytest
import torch

from pyramidkd_mm.rl import (DistillationEnvironment, PolicyNetwork,
                             PPOTrainer, RolloutBuffer)
from pyramidkd_mm.rl.policy import offset_for_rate


def test_state_layout_and_size():
    env = DistillationEnvironment(num_levels=3, budget=0.4)
    top = torch.randn(2, 16, 2, 2)
    levels = [torch.randn(2, c, 4, 4) for c in (4, 8, 8)]
    states = env.reset(top, levels)
    assert states.shape == (2, PolicyNetwork.state_dim_for(16, [4, 8, 8]))
    # Pooled blocks are layer-normalised; the last five entries are the
    # loss, the selection rate per level and the budget remaining.
    assert states[:, :16].mean().abs() < 1e-5
    torch.testing.assert_close(states[0, -5:],
                               torch.tensor([0., 1., 1., 1., 0.4 - 1.]))


def test_reward_is_relative_gain_plus_budget_saved():
    env = DistillationEnvironment(num_levels=2, budget=0.5, lam=0.2)
    actions = torch.tensor([[1., 0.], [1., 1.]])
    before = torch.tensor([[2., 0.], [4., 1.]])
    after = torch.tensor([[1.5, 0.], [3., 1.1]])
    cost = torch.tensor([0.3, 1.0])
    rewards, dones, info = env.step(actions, before, after, cost)
    # first step: the level scales are the mean losses of the selecting
    # samples, (2 + 4) / 2 = 3 and 1, and the gain scale the mean |gain|
    gains = torch.tensor([0.5 / 3, 1.0 / 3 - 0.1 / 1])
    expected = gains / gains.abs().mean() + 0.2 * torch.tensor([0.2, -0.5])
    torch.testing.assert_close(rewards, expected)
    torch.testing.assert_close(info['gain'], gains)
    assert dones.tolist() == [1., 1.]
    assert info['selected'].tolist() == [[True, False], [True, True]]
    torch.testing.assert_close(info['cost_saved'], torch.tensor([0.7, 0.]))
    torch.testing.assert_close(info['distill_loss'], torch.tensor([2., 5.]))


def test_running_statistics_follow_the_steps():
    env = DistillationEnvironment(num_levels=2, budget=0.5, momentum=0.5)
    actions = torch.tensor([[1., 0.], [1., 0.]])
    losses = torch.tensor([[2., 0.], [2., 0.]])
    for _ in range(2):
        env.step(actions, losses, losses, torch.tensor([0.2, 0.2]))
    torch.testing.assert_close(env.select_rate, torch.tensor([1., 0.]))
    torch.testing.assert_close(env.cost_mean, torch.tensor([0.2]))
    # the unselected level keeps its scale; the selected one tracks its loss
    torch.testing.assert_close(env.level_scale, torch.tensor([2., 1.]))
    states = env.reset(torch.randn(1, 4, 1, 1),
                       [torch.randn(1, 4, 1, 1)] * 2)
    torch.testing.assert_close(states[0, -4:],
                               torch.tensor([2., 1., 0., 0.3]))


def test_budget_must_be_a_fraction():
    with pytest.raises(ValueError, match='budget'):
        DistillationEnvironment(num_levels=2, budget=2)


@pytest.mark.parametrize('cost,direction', [(0.9, 1), (0.1, -1)])
def test_price_of_compute_follows_the_budget(cost, direction):
    env = DistillationEnvironment(num_levels=1, budget=0.5, lam=0.05,
                                  lam_lr=0.01)
    lams = []
    for _ in range(3):
        _, _, info = env.step(torch.ones(2, 1), torch.ones(2, 1),
                              torch.ones(2, 1), torch.full((2, ), cost))
        lams.append(info['lam'][0].item())
    # overspending raises the price, saving lowers it, never below zero
    assert lams[0] == pytest.approx(0.05)
    assert (lams[2] - lams[1]) * direction > 0
    assert env.lam.item() == pytest.approx(
        max(0.05 + 3 * 0.01 * (cost - 0.5), 0))
    fixed = DistillationEnvironment(num_levels=1, lam=0.05, lam_lr=0)
    fixed.step(torch.ones(2, 1), torch.ones(2, 1), torch.ones(2, 1),
               torch.full((2, ), cost))
    assert fixed.lam.item() == pytest.approx(0.05)


def test_pace_spreads_what_is_left_of_the_budget():
    env = DistillationEnvironment(num_levels=1, budget=0.5, lam=1.0,
                                  lam_lr=0)
    # a uniform fifth of the run (cost 1 on 40 samples) leaves 0.375
    env.pace(torch.tensor([40., 40.], dtype=torch.float64), 0.2)
    torch.testing.assert_close(env.target, torch.tensor([0.375]))
    rewards, _, _ = env.step(torch.ones(2, 1), torch.ones(2, 1),
                             torch.ones(2, 1), torch.tensor([0.375, 1.]))
    # no gain (before == after): the reward is the price of the cost
    torch.testing.assert_close(rewards, torch.tensor([0., -0.625]))
    states = env.reset(torch.randn(1, 4, 1, 1), [torch.randn(1, 4, 1, 1)])
    assert states[0, -1].item() == pytest.approx(0.375 - env.cost_mean[0])
    # having spent less than the budget leaves more; never above 1 or
    # below 0
    env.pace(torch.tensor([10., 100.], dtype=torch.float64), 0.5)
    assert env.target.item() == pytest.approx(0.9)
    env.pace(torch.tensor([0., 100.], dtype=torch.float64), 0.9)
    assert env.target.item() == 1
    env.pace(torch.tensor([100., 100.], dtype=torch.float64), 0.6)
    assert env.target.item() == 0
    with pytest.raises(ValueError, match='progress'):
        env.pace(torch.tensor([1., 1.], dtype=torch.float64), 1.0)


def test_disagreement_reward_pays_the_kl_of_distilled_samples():
    env = DistillationEnvironment(num_levels=2, budget=0.5, lam=0.0,
                                  reward='disagreement')
    actions = torch.tensor([[1., 1.], [0., 0.], [1., 1.]])
    losses = torch.tensor([[2., 1.], [0., 0.], [4., 1.]])
    kl = torch.tensor([0.1, 0.7, 0.3])  # the skipped sample's is not paid
    _, _, info = env.step(actions, losses, None, torch.ones(3), kl)
    torch.testing.assert_close(info['gain'], torch.tensor([0.1, 0., 0.3]))
    # the gain scale is the mean |gain| of the distilled samples
    torch.testing.assert_close(env.gain_scale, torch.tensor([0.2]))
    with pytest.raises(ValueError, match='needs the step'):
        env.step(actions, losses, None, torch.ones(3))


def test_standardized_signals_follow_the_training_batches():
    env = DistillationEnvironment(num_levels=1, num_signals=1,
                                  standardize_signals=True, momentum=0.5)
    top, levels = torch.randn(4, 8, 2, 2), [torch.randn(4, 4, 2, 2)]
    entropy = torch.tensor([[0.10], [0.12], [0.14], [0.16]])
    states = env.reset(top, levels, entropy)
    # the first batch sets the moments: the spread of a few hundredths
    # becomes about one
    torch.testing.assert_close(states[:, -1], (entropy[:, 0] - 0.13)
                               / (0.0005 ** 0.5), rtol=1e-3, atol=1e-3)
    env.reset(top, levels, entropy + 0.1)  # mean moves half way
    torch.testing.assert_close(env.signal_mean, torch.tensor([0.18]))
    env.eval()  # evaluation reads the moments, never moves them
    env.reset(top, levels, entropy + 5)
    torch.testing.assert_close(env.signal_mean, torch.tensor([0.18]))
    plain = DistillationEnvironment(num_levels=1, num_signals=1)
    torch.testing.assert_close(plain.reset(top, levels, entropy)[:, -1],
                               entropy[:, 0])


def test_centered_rewards_rank_the_distilled_samples():
    env = DistillationEnvironment(1, reward='disagreement', centered=True)
    actions = torch.tensor([[1.], [1.], [0.], [1.]])
    kl = torch.tensor([0.3, 0.1, 0.0, 0.2])
    rewards, _, _ = env.step(actions, torch.zeros(4, 1), None,
                             actions[:, 0], disagreement=kl)
    # gains minus their step mean (0.2), in units of the first gain scale
    # (the mean |gain| of the distilled samples, 0.2); no price of compute
    torch.testing.assert_close(rewards, torch.tensor([0.5, -0.5, 0., 0.]))


def test_a_calibrated_policy_learns_which_samples_not_how_many():
    """Centred rewards that grow with a per-sample signal, a policy whose
    rate is calibrated to 0.25: PPO learns to rank by the signal."""
    torch.manual_seed(0)
    env = DistillationEnvironment(1, reward='disagreement', num_signals=1,
                                  pooled_features=False, centered=True)
    policy = PolicyNetwork(env.state_dim(0, [0]) + 1, num_levels=1,
                           hidden_dim=16, logit_offset=True)
    trainer = PPOTrainer(policy, lr=3e-3, minibatch_size=32)
    buffer = RolloutBuffer(4, 32, policy.state_dim, 1)

    def states_of(signal):
        feats = torch.zeros(len(signal), 1, 1, 1)
        states = env.reset(feats, [feats], signal[:, None])
        states = torch.cat([states, torch.zeros(len(signal), 1)], 1)
        with torch.no_grad():
            states[:, -1] = offset_for_rate(policy.logits(states), 0.25)
        return states

    for _ in range(40 * 4):
        signal = torch.randn(32)
        states = states_of(signal)
        action, log_prob, value = policy.select_action(states)
        rewards, dones, _ = env.step(action, torch.zeros(32, 1), None,
                                     action[:, 0],
                                     disagreement=signal.exp())
        buffer.add(states, action, log_prob, value, rewards, dones)
        if buffer.full:
            buffer.compute_returns_and_advantages(torch.zeros(32))
            trainer.update(buffer)
            buffer.reset()
    signal = torch.randn(400)
    with torch.no_grad():
        prob = policy.logits(states_of(signal))[:, 0].sigmoid()
    assert prob.mean() == pytest.approx(0.25, abs=1e-3)
    top = prob[signal > signal.quantile(0.75)].mean()
    bottom = prob[signal < signal.quantile(0.25)].mean()
    # 0.25 both before learning; over torch seeds 0-5 the learnt policy
    # gave 0.46-0.77 on top and 0.07-0.18 at the bottom
    assert top > 0.4 and bottom < 0.2
