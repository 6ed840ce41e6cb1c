"""GradNorm on the toy distiller in mmengine's Runner: LossBalancerHook under
gradient accumulation, resume, DDP (2 gloo processes) and AMP (CUDA only)."""
import gc
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.runner import Runner

from conftest import Recorder, toy_loader  # registers the toy model
from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.engine import LossBalancerHook, unwrapped_model
from test_phase_hook import LEVELS


def _balancer(runner):
    return unwrapped_model(runner).balancer


def build_runner(work_dir, toy_teacher, max_iters, accumulate=1, **kwargs):
    kwargs.setdefault('randomness', dict(seed=0))
    kwargs.setdefault('optim_wrapper', dict(
        optimizer=dict(type='SGD', lr=0.05), accumulative_counts=accumulate))
    config, checkpoint = toy_teacher
    model = dict(
        type='pyramidkd_mm.PyramidDistiller',
        student=dict(type='pyramidkd_mm.ToyPyramidModel'),
        teacher=dict(config=config, checkpoint=checkpoint), levels=LEVELS,
        loss_balancer=dict(type='GradNorm'))
    recorder = Recorder(lambda model: model.balancer.weights)
    runner = Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=toy_loader(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', by_epoch=False, interval=2)),
        custom_hooks=[LossBalancerHook(), recorder],
        default_scope='pyramidkd_mm', **kwargs)
    return runner, recorder


def _changed_at(weights):
    """The (1-based) iterations after which the weights differ."""
    return [i for i in range(1, len(weights))
            if not torch.equal(weights[i - 1], weights[i])]


def test_weights_move_once_per_optimiser_step(tmp_path, toy_teacher):
    runner, recorder = build_runner(tmp_path, toy_teacher, 6, accumulate=2)
    runner.train()
    assert _changed_at(recorder.values) == [2, 4, 6]
    for weights in recorder.values:
        assert weights.sum().item() == pytest.approx(3, abs=1e-5)
    assert _balancer(runner).adam_steps.tolist() == [3, 3, 3]


def test_needs_a_balancer(tmp_path, toy_teacher):
    runner, _ = build_runner(tmp_path, toy_teacher, 2)
    runner.model.balancer = None
    with pytest.raises(ValueError, match='loss balancer'):
        runner.train()


def test_resume_continues_exactly(tmp_path, toy_teacher):
    trust_checkpoints(str(tmp_path))  # as tools/train.py trusts its work_dir
    full, full_rec = build_runner(tmp_path / 'full', toy_teacher, 4)
    full.train()
    resumed, rec = build_runner(
        tmp_path / 'resumed', toy_teacher, 4, resume=True,
        load_from=str(tmp_path / 'full' / 'iter_2.pth'))
    resumed.train()
    assert resumed.iter == 4
    assert torch.equal(rec.values[0], full_rec.values[2])
    assert _changed_at(full_rec.values) == [1, 2, 3, 4]
    state = _balancer(resumed).state_dict()
    expected = _balancer(full).state_dict()
    assert set(state) >= {'weights', 'initial_losses', 'adam_steps',
                          'exp_avg', 'exp_avg_sq'}
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert expected['adam_steps'].tolist() == [4, 4, 4]


def _gather(tensor):
    gathered = [torch.zeros_like(tensor) for _ in range(2)]
    dist.all_gather(gathered, tensor.contiguous())
    return gathered


def _ddp_worker(rank, work_dir, toy_teacher):
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2')
    dist.init_process_group('gloo', init_method=f'file://{work_dir}/init',
                            rank=rank, world_size=2)
    runner = None
    try:
        runner, recorder = build_runner(
            work_dir, toy_teacher, 4, accumulate=2, launcher='pytorch',
            # buffers stay per rank: only GradNorm's reduction syncs them
            cfg=dict(model_wrapper_cfg=dict(
                type='pyramidkd_mm.CPUDistributedDataParallel',
                broadcast_buffers=False)))
        runner.train()
        balancer = _balancer(runner)
        # the ranks see different batches but agree on GradNorm's state
        first = _gather(next(iter(runner.train_dataloader))['inputs'])
        assert not torch.equal(*first)
        assert torch.equal(*_gather(balancer.weights.detach()))
        assert torch.equal(*_gather(balancer.initial_losses))
        assert _changed_at(recorder.values) == [2, 4]
        assert balancer.initialized.all()
        assert (balancer.initial_losses > 0).all()
    finally:
        # Drop the DDP model before the group: a group whose last owner
        # is DDP's Reducer is destroyed holding the GIL and can deadlock
        # with a gloo thread freeing a finished collective.
        del runner
        gc.collect()
        dist.destroy_process_group()


def test_ddp_state_identical_on_both_ranks(tmp_path, toy_teacher,
                                           monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    mp.start_processes(_ddp_worker, args=(str(tmp_path), toy_teacher),
                       nprocs=2, start_method='spawn')


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="mmengine 0.10.7's AmpOptimWrapper needs CUDA")
def test_amp_weights_move_and_stay_normalised(tmp_path, toy_teacher):
    # fp16 autocast and a dynamic loss scale; the Runner moves the model to
    # CUDA and GradNorm reads the unscaled losses in float32
    runner, recorder = build_runner(
        tmp_path, toy_teacher, 4, optim_wrapper=dict(
            type='AmpOptimWrapper', dtype='float16',
            optimizer=dict(type='SGD', lr=0.05)))
    runner.train()
    weights = _balancer(runner).weights
    assert weights.is_cuda and weights.dtype == torch.float32
    assert not torch.equal(recorder.values[0], weights)
    assert weights.isfinite().all()
    assert weights.sum().item() == pytest.approx(3, abs=1e-5)
