"""Phase 4 (MetaPhase through DistillPhaseHook) in mmengine's Runner on the
toy distiller, with a recorded task whose states differ from the run's."""
import copy

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.engine import DistillPhaseHook, unwrapped_model
from pyramidkd_mm.engine.meta_phase import MetaPhase
from pyramidkd_mm.rl import PolicyNetwork, RolloutBuffer, TaskAdapterPolicy
from pyramidkd_mm.rl.task_cache import TaskCache
from conftest import toy_loader
from test_phase_hook import LEVELS


def record_task(path, state_dim=10):
    g = torch.Generator().manual_seed(0)
    TaskCache('other', torch.randn(40, state_dim, generator=g),
              torch.rand(40, 3, generator=g),
              torch.linspace(0, 1, 8), budget=0.5, lam=1.0).save(path)
    return str(path)


class Snapshots(Hook):
    """The policy, the PPO step count and the meta-learner's state seen at
    the start of every iteration."""

    priority = 'LOW'

    def __init__(self, phase_hook):
        self.phase_hook = phase_hook
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        selector = unwrapped_model(runner).selector
        ppo = selector.trainer.optimizer.state_dict()['state']
        meta = self.phase_hook.meta
        self.seen.append(dict(
            iter=runner.iter,
            policy=copy.deepcopy(selector.policy.state_dict()),
            ppo_steps=float(ppo[0]['step']) if ppo else 0.0,
            updates=meta.updates,
            meta_optim=copy.deepcopy(meta.trainer.optimizer.state_dict())))


def snapshots_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, DistillPhaseHook))


def build_runner(work_dir, toy_teacher, task_file, max_iters, milestones,
                 **kwargs):
    config, checkpoint = toy_teacher
    model = dict(
        type='pyramidkd_mm.PyramidDistiller',
        student=dict(type='pyramidkd_mm.ToyPyramidModel'),
        teacher=dict(config=config, checkpoint=checkpoint), levels=LEVELS,
        selector=dict(type='RLSelector', rollout_iters=2,
                      policy=dict(type='pyramidkd_mm.TaskAdapterPolicy',
                                  task='toy', embed_dim=8,
                                  core=dict(hidden_dim=16)),
                      ppo=dict(minibatch_size=4)))
    hook = DistillPhaseHook(milestones=milestones, meta=dict(
        tasks=dict(other=task_file), support_size=8, query_size=8,
        inner_lr=0.5, outer_lr=1e-2))
    snapshots = Snapshots(hook)
    runner = Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=toy_loader(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=4),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook, snapshots], randomness=dict(seed=0),
        default_scope='pyramidkd_mm', **kwargs)
    return runner, snapshots


def test_phase_four_meta_learns_instead_of_ppo(tmp_path, toy_teacher):
    task_file = record_task(tmp_path / 'other.pth')
    runner, snapshots = build_runner(tmp_path, toy_teacher, task_file, 8,
                                     [1, 2, 4])
    runner.train()
    seen = snapshots.seen
    policy = unwrapped_model(runner).selector.policy
    assert isinstance(policy, TaskAdapterPolicy) and policy.task == 'toy'
    # PPO updated in phase 3 (after iteration 2) and never in phase 4
    assert seen[2]['ppo_steps'] == 0 < seen[3]['ppo_steps']
    assert seen[3]['ppo_steps'] == seen[-1]['ppo_steps']
    # meta-updates after iterations 4 and 6 moved the recorded task's
    # adapter (added at the start) and the shared core
    assert [s['updates'] for s in seen] == [0] * 5 + [1, 1, 2]
    other, core = 'adapters.other.weight', 'core.logit_head.bias'
    assert torch.equal(seen[4]['policy'][other], seen[0]['policy'][other])
    assert torch.equal(seen[4]['policy'][core], seen[3]['policy'][core])
    for key in (other, core):
        assert not torch.equal(seen[5]['policy'][key], seen[4]['policy'][key])
    hub = runner.message_hub
    assert hub.get_scalar('train/rl_phase').current() == 4
    for key in ('rl_meta_support_loss', 'rl_meta_query_loss',
                'rl_meta_grad_norm'):
        assert f'train/{key}' in hub.log_scalars, key


def test_resume_inside_phase_four_continues_it(tmp_path, toy_teacher):
    trust_checkpoints(str(tmp_path))
    task_file = record_task(tmp_path / 'other.pth')
    runner, _ = build_runner(tmp_path, toy_teacher, task_file, 4, [1, 2, 2])
    runner.train()
    saved = torch.load(tmp_path / 'iter_4.pth', weights_only=False)
    assert saved['distill_phase'] == 'meta'
    assert saved['meta_phase']['updates'] == 1
    policy = copy.deepcopy(
        unwrapped_model(runner).selector.policy.state_dict())
    meta_optim = snapshots_hook(runner).meta.trainer.optimizer.state_dict()

    resumed, snapshots = build_runner(tmp_path, toy_teacher, task_file, 8,
                                      [1, 2, 2], resume=True)
    resumed.train()
    first = snapshots.seen[0]
    assert first['iter'] == 4 and first['updates'] == 1
    for key, value in policy.items():
        assert torch.equal(first['policy'][key], value), key
    for index, state in meta_optim['state'].items():
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(first['meta_optim']['state'][index][name],
                               state[name])
    assert snapshots_hook(resumed).meta.updates == 3
    assert resumed.message_hub.get_scalar('train/rl_phase').current() == 4


def live_buffer(policy, seed):
    g = torch.Generator().manual_seed(seed)
    buffer = RolloutBuffer(2, 8, policy.state_dim, 3)
    for _ in range(2):
        states = torch.randn(8, policy.state_dim, generator=g)
        action, log_prob, value = policy.select_action(states)
        buffer.add(states, action, log_prob, value, action.sum(1),
                   torch.ones(8))
    buffer.compute_returns_and_advantages(torch.zeros(8))
    return buffer


def test_meta_phase_resumes_exactly(tmp_path):
    """Two updates, state saved and loaded into a fresh learner, two more:
    the same policy as four uninterrupted updates."""
    task_file = record_task(tmp_path / 'other.pth')

    def fresh():
        torch.manual_seed(0)
        policy = TaskAdapterPolicy(12, num_levels=3, task='toy',
                                   embed_dim=8, core=dict(hidden_dim=16))
        meta = MetaPhase(tasks=dict(other=task_file), support_size=8,
                         query_size=8, inner_lr=0.5, outer_lr=1e-2)
        meta.setup(policy)
        return policy, meta

    def run(policy, meta, steps):
        for step in steps:
            torch.manual_seed(100 + step)  # the live actions' randomness
            meta.update(live_buffer(policy, step))

    policy, meta = fresh()
    run(policy, meta, range(4))
    resumed_policy, resumed = fresh()
    run(resumed_policy, resumed, range(2))
    state = copy.deepcopy((resumed_policy.state_dict(), resumed.state_dict()))
    resumed_policy, resumed = fresh()
    resumed_policy.load_state_dict(state[0])
    resumed.load_state_dict(state[1])
    run(resumed_policy, resumed, range(2, 4))
    for key, value in policy.state_dict().items():
        assert torch.equal(resumed_policy.state_dict()[key], value), key


def test_meta_phase_errors(tmp_path):
    task_file = record_task(tmp_path / 'other.pth')
    meta = MetaPhase(tasks=dict(other=task_file))
    with pytest.raises(ValueError, match='TaskAdapterPolicy'):
        meta.setup(PolicyNetwork(12, num_levels=3))
    with pytest.raises(ValueError, match='levels'):
        meta.setup(PolicyNetwork(10, num_levels=4))
    meta.setup(PolicyNetwork(10, num_levels=3))  # same states: shared input
    with pytest.raises(ValueError, match='meta option'):
        DistillPhaseHook(milestones=[1, 2, 3])
    with pytest.raises(ValueError, match='3 increasing'):
        DistillPhaseHook(milestones=[1, 2], meta=dict())
