import importlib.util
import math
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pyramidkd_mm.rl import PolicyNetwork, PPOTrainer, RolloutBuffer

STATE_DIM, LEVELS = 6, 3
METRICS = {'policy_loss', 'value_loss', 'entropy', 'clip_fraction',
           'approx_kl', 'explained_variance'}
CARTPOLE_SCRIPT = osp.join(osp.dirname(__file__), '..', '..', 'tools',
                           'analysis_tools', 'ppo_cartpole.py')


def fill_buffer(policy, num_steps=16, num_envs=4):
    """A rollout of random states and rewards, acted on by ``policy``."""
    buffer = RolloutBuffer(num_steps, num_envs, STATE_DIM, LEVELS)
    for _ in range(num_steps):
        states = torch.randn(num_envs, STATE_DIM)
        action, log_prob, value = policy.select_action(states)
        buffer.add(states, action, log_prob, value,
                   reward=action.sum(-1), done=torch.rand(num_envs) < 0.2)
    buffer.compute_returns_and_advantages(torch.zeros(num_envs))
    return buffer


def test_gae_hand_computed():
    buffer = RolloutBuffer(3, 2, 1, 1, gamma=0.5, gae_lambda=0.5)
    rewards = [[1., 0.], [2., 0.], [3., 1.]]
    values = [[0.5, 0.], [1., 0.], [1.5, 0.]]
    dones = [[0., 0.], [1., 0.], [0., 0.]]
    for t in range(3):
        buffer.add(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2),
                   values[t], rewards[t], dones[t])
    buffer.compute_returns_and_advantages(last_value=[2., 4.])
    # env 0, gamma * lambda = 0.25:
    #   t=2: 3 + 0.5 * 2 - 1.5 = 2.5
    #   t=1: done, so 2 - 1 = 1 and nothing flows back from t=2
    #   t=0: (1 + 0.5 * 1 - 0.5) + 0.25 * 1 = 1.25
    # env 1: t=2: 1 + 0.5 * 4 = 3; t=1: 0.25 * 3; t=0: 0.25 ** 2 * 3
    expected = torch.tensor([[1.25, 0.1875], [1., 0.75], [2.5, 3.]])
    torch.testing.assert_close(buffer.advantages, expected)
    torch.testing.assert_close(buffer.returns,
                               expected + torch.tensor(values))


def test_buffer_minibatches_cover_every_transition_once():
    buffer = RolloutBuffer(5, 3, 1, 2)
    for t in range(5):
        index = torch.arange(3.) + 3 * t
        buffer.add(index[:, None], torch.ones(3, 2), index, index, index,
                   torch.zeros(3))
    with pytest.raises(RuntimeError):
        buffer.add(*[torch.zeros(3)] * 6)
    buffer.compute_returns_and_advantages(torch.zeros(3))
    batches = list(buffer.minibatches(4))
    assert [len(b['states']) for b in batches] == [4, 4, 4, 3]
    seen = torch.cat([b['states'][:, 0] for b in batches])
    assert sorted(seen.tolist()) == list(range(15))
    for batch in batches:  # the fields of a transition stay together
        torch.testing.assert_close(batch['states'][:, 0], batch['values'])
    buffer.reset()
    assert buffer.pos == 0


def test_update_metrics_and_first_minibatch_is_on_policy():
    torch.manual_seed(0)
    policy = PolicyNetwork(STATE_DIM, num_levels=LEVELS, hidden_dim=16)
    buffer = fill_buffer(policy)
    # One epoch of one minibatch: the ratio is measured before the step,
    # when the policy is still the one that collected the data.
    trainer = PPOTrainer(policy, epochs=1, minibatch_size=64)
    metrics = trainer.update(buffer)
    assert set(metrics) == METRICS
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics['clip_fraction'] == 0
    assert abs(metrics['approx_kl']) < 1e-6
    assert metrics['entropy'] > 0 and metrics['value_loss'] > 0

    before = [p.detach().clone() for p in policy.parameters()]
    metrics = PPOTrainer(policy, lr=1e-2, minibatch_size=16).update(buffer)
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics['approx_kl'] > 0
    assert any(not torch.equal(a, b)
               for a, b in zip(before, policy.parameters()))


def test_non_finite_gradient_skips_the_minibatch():
    torch.manual_seed(0)
    policy = PolicyNetwork(STATE_DIM, LEVELS, hidden_dim=16)
    buffer = fill_buffer(policy)
    buffer.advantages[3, 1] = float('nan')  # e.g. a NaN reward
    trainer = PPOTrainer(policy, epochs=1, minibatch_size=64)
    start = torch.nn.utils.parameters_to_vector(policy.parameters()).clone()
    trainer.update(buffer)  # one minibatch holding the NaN
    moved = torch.nn.utils.parameters_to_vector(policy.parameters())
    assert torch.equal(start, moved) and trainer.nonfinite_steps == 1
    assert not trainer.optimizer.state  # Adam's moments untouched


def test_state_dict_resumes_optimizer():
    torch.manual_seed(0)
    policy = PolicyNetwork(STATE_DIM, num_levels=LEVELS, hidden_dim=16)
    trainer = PPOTrainer(policy, minibatch_size=32)
    trainer.update(fill_buffer(policy))
    resumed = PPOTrainer(policy)
    resumed.load_state_dict(trainer.state_dict())
    saved = trainer.optimizer.state_dict()['state']
    loaded = resumed.optimizer.state_dict()['state']
    assert saved.keys() == loaded.keys() and len(saved) > 0
    for key in saved:
        torch.testing.assert_close(saved[key]['exp_avg'],
                                   loaded[key]['exp_avg'])


def _distributed_worker(rank, tmp_dir):
    dist.init_process_group('gloo', init_method=f'file://{tmp_dir}/init',
                            rank=rank, world_size=2)
    torch.manual_seed(rank)  # different weights and data on each rank
    policy = PolicyNetwork(STATE_DIM, num_levels=LEVELS, hidden_dim=16)
    trainer = PPOTrainer(policy, minibatch_size=16)
    trainer.sync_policy()
    trainer.update(fill_buffer(policy))
    torch.save(torch.nn.utils.parameters_to_vector(policy.parameters()),
               f'{tmp_dir}/rank{rank}.pth')
    dist.destroy_process_group()


def test_distributed_policies_stay_identical(tmp_path):
    # spawn, not fork: forked workers can deadlock in the OpenMP pool that
    # the earlier tests started.
    mp.spawn(_distributed_worker, args=(str(tmp_path),), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1))
    torch.testing.assert_close(rank0, rank1, rtol=0, atol=0)


@pytest.fixture
def single_thread():
    # Intra-op threads only slow tiny networks down, badly on a busy host.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cartpole_learns(single_thread):
    spec = importlib.util.spec_from_file_location('ppo_cartpole',
                                                  CARTPOLE_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _, curve = script.train(total_steps=40_000, seed=0, log=None)
    returns = [r for _, r in curve]
    first, last = sum(returns[:20]) / 20, sum(returns[-20:]) / 20
    assert last >= 150 and last >= 3 * first, (first, last)
