"""RL2Policy: memory carried within a trial and reset between trials, and
PPOTrainer learning a task-dependent behaviour with it (a two-armed bandit
whose good arm changes from trial to trial)."""
import torch

from pyramidkd_mm.rl import PPOTrainer, RL2Policy, RolloutBuffer


def test_memory_is_carried_within_a_trial_and_reset_between():
    torch.manual_seed(0)
    policy = RL2Policy(state_dim=3, num_levels=2, hidden_dim=8)
    state = torch.randn(4, 3)
    first = policy.observe(state)
    assert first.shape == (4, policy.state_dim)
    assert torch.equal(first[:, 3:], torch.zeros(4, policy.state_dim - 3))
    action, _, _ = policy.select_action(first)
    policy.feedback(torch.tensor([1., 0., 1., 0.]))
    second = policy.observe(state)
    # the memory holds the previous action, its reward and the LSTM state
    assert torch.equal(second[:, 3:5], action)
    assert torch.equal(second[:, 5], torch.tensor([1., 0., 1., 0.]))
    assert second[:, 6:].abs().sum() > 0
    # the same state is judged differently once the trial has a past
    assert not torch.allclose(policy.logits(first), policy.logits(second))
    # another reward gives another next decision
    policy.select_action(second)
    policy.feedback(torch.zeros(4))
    third_a = policy.observe(state)
    policy.select_action(third_a)
    policy.feedback(torch.ones(4))
    assert not torch.equal(policy.observe(state)[:, 5], third_a[:, 5])
    policy.reset()
    assert torch.equal(policy.observe(state), first)


def test_memory_states_are_pure_for_evaluation():
    torch.manual_seed(0)
    policy = RL2Policy(state_dim=3, num_levels=2, hidden_dim=8)
    states = policy.observe(torch.randn(5, 3))
    _, log_prob, value = policy.select_action(states)
    actions = policy._awaiting[0]
    again, _, value_again = policy.evaluate_actions(states, actions)
    torch.testing.assert_close(again, log_prob)
    torch.testing.assert_close(value_again, value)


def bandit_trials(policy, good, steps):
    """Plays one trial per stream: reward 1 for pulling the good arm."""
    policy.reset()
    buffer = RolloutBuffer(steps, len(good), policy.state_dim, 1,
                           gamma=0.9, gae_lambda=0.95)
    obs = torch.ones(len(good), 1)
    for t in range(steps):
        state = policy.observe(obs)
        action, log_prob, value = policy.select_action(state)
        reward = (action[:, 0] == good).float()
        policy.feedback(reward)
        buffer.add(state, action, log_prob, value, reward,
                   torch.full_like(reward, float(t == steps - 1)))
    buffer.compute_returns_and_advantages(torch.zeros(len(good)))
    return buffer


def test_ppo_learns_to_find_the_good_arm_within_a_trial():
    torch.manual_seed(0)
    policy = RL2Policy(state_dim=1, num_levels=1, hidden_dim=16)
    trainer = PPOTrainer(policy, lr=5e-3, minibatch_size=128,
                         entropy_coef=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        good = torch.randint(0, 2, (64, ), generator=g).float()
        trainer.update(bandit_trials(policy, good, 6))
    good = torch.randint(0, 2, (256, ), generator=g).float()
    rewards = bandit_trials(policy, good, 6).rewards
    # a policy without memory of the trial gets 0.5 per pull whatever it
    # does; win-stay / lose-shift gets every pull after the first
    assert rewards[0].mean() < 0.7
    assert rewards[1:].mean() > 0.9
