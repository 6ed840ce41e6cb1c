"""TaskCache: rewards as defined, exact expected reward, replay with PPO."""
import torch

from pyramidkd_mm.rl import PolicyNetwork, PPOTrainer, RolloutBuffer
from pyramidkd_mm.rl.task_cache import TaskCache


def toy_cache(n=64):
    """Level 0 gains on samples whose first state entry is positive, level
    1 never; each level costs 0.25 (mask cost = 0.25 * levels)."""
    g = torch.Generator().manual_seed(0)
    states = torch.randn(n, 4, generator=g)
    gains = torch.zeros(n, 2)
    gains[:, 0] = 2.0 * (states[:, 0] > 0)
    costs = torch.tensor([0.0, 0.25, 0.25, 0.5])
    return TaskCache('toy', states, gains, costs, budget=0.5, lam=2.0)


def test_rewards_follow_the_definition(tmp_path):
    cache = toy_cache()
    actions = torch.tensor([[1., 0.], [1., 1.], [0., 0.]])
    index = torch.tensor([0, 1, 2])
    want = (cache.gains[index] * actions).sum(1) + 2.0 * (
        0.5 - torch.tensor([0.25, 0.5, 0.0]))
    torch.testing.assert_close(cache.rewards(index, actions), want)
    assert cache.masks().tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    cache.save(tmp_path / 'c.pth')
    loaded = TaskCache.load(tmp_path / 'c.pth')
    assert loaded.name == 'toy' and torch.equal(loaded.gains, cache.gains)
    train, val = cache.split(0.25)
    assert (len(train), len(val)) == (48, 16)


def test_expected_reward_is_exact():
    torch.manual_seed(0)
    cache = toy_cache()
    policy = PolicyNetwork(4, num_levels=2, hidden_dim=8)
    with torch.no_grad():
        policy.logit_head.bias.copy_(torch.tensor([1.0, -1.0]))
    exact = cache.expected_reward(policy)
    sampled = cache.collect(policy, 20000,
                            torch.Generator().manual_seed(1)).returns.mean()
    assert abs(exact - sampled.item()) < 0.03


def test_ppo_on_the_cache_learns_the_per_sample_choice():
    torch.manual_seed(0)
    cache = toy_cache()
    best = cache.rewards(torch.arange(64).repeat_interleave(4),
                         cache.masks().repeat(64, 1)).view(64, 4).amax(1)
    policy = PolicyNetwork(4, num_levels=2, hidden_dim=16)
    trainer = PPOTrainer(policy, lr=3e-3, minibatch_size=64)
    start = cache.expected_reward(policy)
    g = torch.Generator().manual_seed(0)
    buffer = RolloutBuffer(1, 64, 4, 2)
    for _ in range(40):
        cache.fill(buffer, policy, g)
        trainer.update(buffer)
    end = cache.expected_reward(policy)
    assert end - start > 0.7 * (best.mean().item() - start)
