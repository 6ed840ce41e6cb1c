"""DistillPhaseHook in mmengine's Runner on the toy distiller: phases,
logging, resume in phase 2 and DDP consistency (2 gloo processes)."""
import gc
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import toy_loader  # also registers the toy model in workers
from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.engine import DistillPhaseHook, unwrapped_model

LEVELS = ('c2', 'c3', 'c4')


class Recorder(Hook):
    """Records the phase state the distiller trains in at every iteration."""

    priority = 'LOW'  # after DistillPhaseHook

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrapped_model(runner)
        policy = torch.nn.utils.parameters_to_vector(
            model.selector.policy.parameters()).detach().clone()
        self.seen.append(dict(
            iter=runner.iter, uniform=model.selector.uniform,
            backbone_trains=any(p.requires_grad for p in
                                model.student.backbone.parameters()),
            policy=policy, rng=model.selector.rng.cpu.clone()))


def build_runner(work_dir, toy_teacher, max_iters, milestones, **kwargs):
    kwargs.setdefault('randomness', dict(seed=0))
    config, checkpoint = toy_teacher
    model = dict(
        type='pyramidkd_mm.PyramidDistiller',
        student=dict(type='pyramidkd_mm.ToyPyramidModel'),
        teacher=dict(config=config, checkpoint=checkpoint), levels=LEVELS,
        selector=dict(type='RLSelector', rollout_iters=2,
                      policy=dict(hidden_dim=16),
                      ppo=dict(minibatch_size=4)))
    recorder = Recorder()
    runner = Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=toy_loader(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=4),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[DistillPhaseHook(milestones=milestones), recorder],
        default_scope='pyramidkd_mm', **kwargs)
    return runner, recorder


def test_phases_switch_freeze_and_log(tmp_path, toy_teacher):
    runner, recorder = build_runner(tmp_path, toy_teacher, 7, [2, 4])
    runner.train()
    phases = [(s['uniform'], s['backbone_trains']) for s in recorder.seen]
    assert phases == [(True, True)] * 2 + [(False, False)] * 2 + [
        (False, True)] * 3
    policies = [s['policy'] for s in recorder.seen]
    # PPO updates after every two learning iterations (4 and 6)
    assert torch.equal(policies[0], policies[3])
    assert not torch.equal(policies[3], policies[4])
    hub = runner.message_hub
    for key in ('rl_reward', 'rl_gain', 'rl_cost_saved', 'rl_policy_loss',
                'rl_approx_kl', 'rl_clip_fraction', 'rl_explained_variance',
                'rl_phase'):
        assert f'train/{key}' in hub.log_scalars, key
    assert hub.get_scalar('train/rl_phase').current() == 3
    # phase 1 spent 1 on 2 of 7 iterations: the rest of the run may spend
    # (0.5 - 2 / 7) / (5 / 7) = 0.3 of the default budget 0.5 per sample
    targets = hub.get_scalar('train/rl_target').data[0]
    assert targets[0] == pytest.approx(0.3)
    assert len(targets) == 5 and all(0 <= t <= 1 for t in targets)


def test_resume_in_phase_two_continues_it(tmp_path, toy_teacher):
    trust_checkpoints(str(tmp_path))  # as tools/train.py trusts its work_dir
    runner, _ = build_runner(tmp_path, toy_teacher, 4, [2, 10])
    runner.train()
    saved = torch.load(tmp_path / 'iter_4.pth', weights_only=False)
    assert saved['distill_phase'] == 'policy'
    policy = runner.model.selector.policy
    trained = torch.nn.utils.parameters_to_vector(
        policy.parameters()).detach().clone()
    ppo_state = runner.model.selector.trainer.optimizer.state_dict()

    resumed, recorder = build_runner(tmp_path, toy_teacher, 6, [2, 10],
                                     resume=True)
    resumed.train()
    first = recorder.seen[0]
    assert first['iter'] == 4
    assert not first['uniform'] and not first['backbone_trains']
    torch.testing.assert_close(first['policy'], trained)
    assert resumed.iter == 6
    state = resumed.model.selector.trainer.optimizer.state_dict()['state']
    assert state.keys() == ppo_state['state'].keys()
    # the selector's own random stream continues where it was
    whole, uninterrupted = build_runner(tmp_path / 'whole', toy_teacher, 6,
                                        [2, 10])
    whole.train()
    assert torch.equal(first['rng'], uninterrupted.seen[4]['rng'])
    assert not torch.equal(first['rng'], uninterrupted.seen[2]['rng'])


def test_needs_an_rl_selector(tmp_path, toy_teacher):
    runner, _ = build_runner(tmp_path, toy_teacher, 2, [1, 2])
    runner.model.selector = torch.nn.Identity()
    with pytest.raises(TypeError, match='RLSelector'):
        runner.train()
    with pytest.raises(ValueError, match='increasing'):
        DistillPhaseHook(milestones=[5, 2])


def test_refuses_gradient_accumulation(tmp_path, toy_teacher):
    runner, _ = build_runner(tmp_path, toy_teacher, 2, [1, 2])
    runner.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05),
                                accumulative_counts=2)
    with pytest.raises(ValueError, match='accumulative_counts'):
        runner.train()


def _ddp_worker(rank, work_dir, toy_teacher):
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2')
    dist.init_process_group('gloo', init_method=f'file://{work_dir}/init',
                            rank=rank, world_size=2)
    runner = None
    try:
        runner, recorder = build_runner(
            work_dir, toy_teacher, 6, [1, 3], launcher='pytorch',
            # ranks seeded apart, so that their streams (and choices)
            # differ while the policy must stay the same on both
            randomness=dict(seed=0, diff_rank_seed=True),
            cfg=dict(model_wrapper_cfg=dict(
                type='pyramidkd_mm.CPUDistributedDataParallel',
                broadcast_buffers=False, find_unused_parameters=True)))
        masks = []
        runner.model.module.selector.register_forward_hook(
            lambda m, a, out: masks.append(out.clone()))
        runner.train()
        selector = runner.model.module.selector
        mine = torch.cat([
            torch.nn.utils.parameters_to_vector(
                selector.policy.parameters()).detach(),
            selector.env.select_rate, selector.env.level_scale])
        gathered = [torch.zeros_like(mine) for _ in range(2)]
        dist.all_gather(gathered, mine)
        assert torch.equal(gathered[0], gathered[1])
        # the policy moved from its start, and ranks chose different levels
        assert not torch.equal(recorder.seen[0]['policy'],
                               recorder.seen[-1]['policy'])
        mine = torch.stack(masks).float()
        gathered = [torch.zeros_like(mine) for _ in range(2)]
        dist.all_gather(gathered, mine)
        assert not torch.equal(gathered[0], gathered[1])
    finally:
        # Drop the DDP model before the group: a group whose last owner
        # is DDP's Reducer is destroyed holding the GIL and can deadlock
        # with a gloo thread freeing a finished collective.
        del runner
        gc.collect()
        dist.destroy_process_group()


def test_ddp_policies_identical_on_both_ranks(tmp_path, toy_teacher,
                                              monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    mp.start_processes(_ddp_worker, args=(str(tmp_path), toy_teacher),
                       nprocs=2, start_method='spawn')


def _frozen_ddp_worker(rank, work_dir, toy_teacher):
    torch.set_num_threads(1)
    os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1')
    dist.init_process_group('gloo', init_method=f'file://{work_dir}/init',
                            rank=0, world_size=1)
    runner = None
    try:
        runner, _ = build_runner(
            work_dir, toy_teacher, 2, [1, 2], launcher='pytorch',
            cfg=dict(model_wrapper_cfg=dict(
                type='pyramidkd_mm.CPUDistributedDataParallel',
                find_unused_parameters=False)))
        with pytest.raises(ValueError, match='find_unused_parameters'):
            runner.train()
    finally:
        del runner
        gc.collect()
        dist.destroy_process_group()


def test_phase_2_freeze_under_ddp_needs_unused_parameters(tmp_path,
                                                          toy_teacher):
    """Freezing the backbone after DDP wrapped the model needs
    find_unused_parameters; without it: one clear error at the start."""
    mp.start_processes(_frozen_ddp_worker, args=(str(tmp_path), toy_teacher),
                       nprocs=1, start_method='spawn')
