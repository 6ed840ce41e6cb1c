"""TaskAdapterPolicy: one core for tasks whose states differ in size."""
import pytest
import torch

from pyramidkd_mm.registry import MODELS
from pyramidkd_mm.rl import MAMLTrainer, MetaTask, Rollout, TaskAdapterPolicy


def build():
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='pyramidkd_mm.TaskAdapterPolicy', state_dim=7, num_levels=3,
        task='det', task_dims=dict(seg=11), embed_dim=8,
        core=dict(hidden_dim=16)))


def rollout(policy, seed):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(16, policy.state_dim, generator=g)
    action, log_prob, value = policy.select_action(states)
    reward = action[:, 0] - action[:, 2]
    return Rollout(states, action, log_prob, reward - value, reward)


def test_each_task_has_its_input_and_the_core_is_shared():
    policy = build()
    assert isinstance(policy, TaskAdapterPolicy)
    assert policy.state_dim == 7
    det = rollout(policy, 0)
    policy.task = 'seg'
    assert policy.state_dim == 11
    seg = rollout(policy, 1)
    log_prob, _, _ = policy.evaluate_actions(seg.states, seg.actions)
    log_prob.sum().backward()
    assert policy.adapters['det'].weight.grad is None
    assert policy.adapters['seg'].weight.grad.abs().sum() > 0
    assert policy.core.logit_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="task 'seg' takes states of size"):
        policy.evaluate_actions(det.states, det.actions)
    policy.task = 'cls'
    with pytest.raises(KeyError, match='add_task'):
        policy.logits(det.states)
    policy.add_task('cls', 5)
    assert policy.select_action(torch.randn(2, 5))[0].shape == (2, 3)
    with pytest.raises(ValueError, match='already'):
        policy.add_task('cls', 5)


@pytest.mark.parametrize('inner_params', [None, ('core.', )])
def test_meta_update_across_tasks_of_different_sizes(inner_params):
    policy = build()
    tasks = []
    for name in ('det', 'seg'):
        policy.task = name
        tasks.append(MetaTask(rollout(policy, 2), rollout(policy, 3), name))
    trainer = MAMLTrainer(policy, inner_lr=0.5, num_inner_steps=2,
                          inner_params=inner_params)
    policy.task = 'seg'
    adapted = trainer.adapt(tasks[1].support)
    moved = not torch.equal(adapted['adapters.seg.weight'],
                            policy.adapters.seg.weight)
    assert moved == (inner_params is None)
    assert not torch.equal(adapted['core.logit_head.weight'],
                           policy.core.logit_head.weight)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer.meta_update(tasks)
    for name in ('adapters.det.weight', 'adapters.seg.weight',
                 'core.logit_head.bias'):
        assert not torch.equal(before[name], policy.get_parameter(name))
