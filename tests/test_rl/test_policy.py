import itertools

import pytest
import torch
from torch.distributions import Bernoulli, Categorical

from pyramidkd_mm.registry import MODELS
from pyramidkd_mm.rl import PolicyNetwork
from pyramidkd_mm.rl.policy import offset_for_rate

STATE_DIM, LEVELS = 10, 4


def make_policy(recurrent, seed=0):
    torch.manual_seed(seed)
    policy = PolicyNetwork(STATE_DIM, num_levels=LEVELS, hidden_dim=16,
                           recurrent=recurrent)
    # The initial logits are ~0 (every probability 0.5); larger ones make
    # the checks below discriminating.
    torch.nn.init.normal_(policy.logit_head.weight, std=1.0)
    return policy


def all_actions():
    return torch.tensor(list(itertools.product([0., 1.], repeat=LEVELS)))


def test_state_dim_for():
    assert PolicyNetwork.state_dim_for(512, 256, 4) == 1542
    assert PolicyNetwork.state_dim_for(64, [8, 16, 32]) == 64 + 56 + 5
    with pytest.raises(ValueError):
        PolicyNetwork.state_dim_for(512, 256)


@pytest.mark.parametrize('recurrent', [False, True])
def test_build_from_registry(recurrent):
    policy = MODELS.build(dict(type='pyramidkd_mm.PolicyNetwork',
                               state_dim=1542, recurrent=recurrent))
    action, log_prob, value = policy.select_action(torch.randn(3, 1542))
    assert action.shape == (3, 4)


@pytest.mark.parametrize('recurrent', [False, True])
def test_select_action_shapes_and_consistency(recurrent):
    policy = make_policy(recurrent)
    states = torch.randn(32, STATE_DIM)
    action, log_prob, value = policy.select_action(states)
    assert action.shape == (32, LEVELS) and action.dtype == torch.float32
    assert set(action.unique().tolist()) <= {0., 1.}
    assert log_prob.shape == value.shape == (32,)
    assert not log_prob.requires_grad

    new_log_prob, entropy, new_value = policy.evaluate_actions(states, action)
    assert new_log_prob.shape == entropy.shape == new_value.shape == (32,)
    torch.testing.assert_close(new_log_prob, log_prob)
    torch.testing.assert_close(new_value, value)
    (new_log_prob.sum() + new_value.sum()).backward()
    assert all(p.grad is not None for p in policy.parameters())


def test_mlp_matches_independent_bernoullis():
    policy = make_policy(recurrent=False)
    states = torch.randn(8, STATE_DIM)
    actions = torch.randint(0, 2, (8, LEVELS)).float()
    logits = policy.logit_head(policy.encoder(states))
    log_prob, entropy, _ = policy.evaluate_actions(states, actions)
    dist = Bernoulli(logits=logits)
    torch.testing.assert_close(log_prob, dist.log_prob(actions).sum(-1))
    torch.testing.assert_close(entropy, dist.entropy().sum(-1))


@pytest.mark.parametrize('recurrent', [False, True])
def test_joint_distribution(recurrent):
    """Over all 2^L actions the probabilities sum to 1 and the expected
    per-sample entropy equals the joint (categorical) entropy."""
    policy = make_policy(recurrent)
    actions = all_actions()
    states = torch.randn(1, STATE_DIM).expand(len(actions), -1)
    with torch.no_grad():
        log_prob, entropy, _ = policy.evaluate_actions(states, actions)
    probs = log_prob.exp()
    torch.testing.assert_close(probs.sum(), torch.tensor(1.))
    torch.testing.assert_close((probs * entropy).sum(),
                               Categorical(probs=probs).entropy())


@pytest.mark.parametrize('recurrent', [False, True])
def test_sampling_follows_log_prob(recurrent):
    policy = make_policy(recurrent)
    actions = all_actions()
    state = torch.randn(1, STATE_DIM)
    with torch.no_grad():
        probs = policy.evaluate_actions(
            state.expand(len(actions), -1), actions)[0].exp()
    torch.manual_seed(1)
    sampled = policy.select_action(state.expand(20000, -1))[0]
    codes = (sampled * 2 ** torch.arange(LEVELS - 1, -1, -1)).sum(-1).long()
    freq = torch.bincount(codes, minlength=len(actions)).float() / 20000
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_recurrent_decisions_depend_on_earlier_ones():
    policy = make_policy(recurrent=True)
    states = torch.randn(1, STATE_DIM).expand(2, -1)
    prefixes = torch.tensor([[0., 0, 0, 0], [1., 0, 0, 0]])
    logits = policy.logits(states, prefixes)
    torch.testing.assert_close(logits[0, 0], logits[1, 0])
    assert not torch.allclose(logits[0, 1:], logits[1, 1:])


@pytest.mark.parametrize('recurrent', [False, True])
def test_deterministic_action_is_greedy(recurrent):
    policy = make_policy(recurrent)
    states = torch.randn(64, STATE_DIM)
    action, log_prob, _ = policy.select_action(states, deterministic=True)
    again = policy.select_action(states, deterministic=True)[0]
    assert torch.equal(action, again)
    # Each decision is the likelier one given the decisions before it.
    probs = torch.sigmoid(policy.logits(states, action))
    assert torch.equal(action, (probs > 0.5).float())
    torch.testing.assert_close(
        log_prob, policy.evaluate_actions(states, action)[0].detach())


@pytest.mark.parametrize('recurrent', [False, True])
def test_the_last_state_entry_can_be_a_logit_offset(recurrent):
    torch.manual_seed(0)
    policy = PolicyNetwork(STATE_DIM + 1, num_levels=LEVELS, hidden_dim=16,
                           recurrent=recurrent, logit_offset=True)
    states = torch.randn(6, STATE_DIM + 1)
    actions = torch.randint(0, 2, (6, LEVELS)).float()
    shifted = states.clone()
    shifted[:, -1] += 1.5
    # the offset moves every logit by itself and nothing else
    torch.testing.assert_close(policy.logits(shifted, actions),
                               policy.logits(states, actions) + 1.5)
    torch.testing.assert_close(policy.value(shifted), policy.value(states))
    # acting and re-scoring agree, so PPO's first ratio is 1
    action, log_prob, value = policy.select_action(shifted)
    new_log_prob, _, new_value = policy.evaluate_actions(shifted, action)
    torch.testing.assert_close(new_log_prob, log_prob)
    torch.testing.assert_close(new_value, value)


@pytest.mark.parametrize('rate', [0.05, 0.25, 0.9])
def test_offset_for_rate_hits_the_rate(rate):
    logits = torch.randn(64) * 3 + 4  # a policy that would select most
    offset = offset_for_rate(logits, rate)
    assert (logits + offset).sigmoid().mean().item() == pytest.approx(
        rate, abs=1e-5)
    # the order of the samples is the policy's
    shifted = (logits + offset).sigmoid()
    assert torch.equal(shifted.argsort(), logits.argsort())
    assert offset_for_rate(logits, 0.0).isfinite()
