"""MetaWeightHook in mmengine's Runner on a tiny real mmpretrain classifier:
the weighting net learns and is logged, resume reproduces the uninterrupted
run, gradient accumulation is refused, 2 gloo ranks end with identical
weighting nets, and AMP (CUDA only) keeps the weighting net in float32."""
import gc
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch.nn.utils import parameters_to_vector
from torch.utils.data import Dataset

from conftest import Recorder, tiny_classifier
from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.engine import MetaWeightHook, unwrapped_model

PATTERNS = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))


class ToyClsImages(Dataset):
    """Class patterns plus noise (fixed by the index); in the training set
    every fifth label is wrong, the meta set (``offset``) is clean."""

    def __init__(self, size, offset=0):
        self.size, self.offset = size, offset

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(self.offset + index)
        true = index % 3
        label = (true + 1) % 3 if index % 5 == 0 and not self.offset \
            else true
        return dict(inputs=PATTERNS[true] + torch.randn(3, 4, 4, generator=g),
                    data_samples=DataSample().set_gt_label(label))


def build_runner(work_dir, max_iters, accumulate=1, **kwargs):
    kwargs.setdefault('randomness', dict(seed=0))
    kwargs.setdefault('optim_wrapper', dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
        accumulative_counts=accumulate))
    recorder = Recorder(lambda model: parameters_to_vector(
        model.weight_net.parameters()))
    hook = MetaWeightHook(meta_dataloader=dict(
        dataset=ToyClsImages(12, offset=1000), batch_size=4, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True)))
    runner = Runner(
        model=dict(type='pyramidkd_mm.MetaWeightedModel',
                   model=tiny_classifier()),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyClsImages(48), batch_size=8, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=2),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook, recorder], default_scope='mmpretrain',
        **kwargs)
    return runner, recorder


def test_resume_continues_exactly(tmp_path):
    trust_checkpoints(str(tmp_path))  # as tools/train.py trusts its work_dir
    full, full_rec = build_runner(tmp_path / 'full', 4)
    full.train()
    hub = full.message_hub
    for key in ('mwn_meta_loss', 'mwn_weight', 'mwn_grad_norm',
                'mwn_skipped', 'sample_weight'):
        assert f'train/{key}' in hub.log_scalars, key
    assert hub.get_scalar('train/mwn_skipped').current() == 0
    # the weighting net moved in every iteration
    assert all(not torch.equal(a, b)
               for a, b in zip(full_rec.values, full_rec.values[1:]))
    saved = torch.load(tmp_path / 'full' / 'iter_2.pth', weights_only=False)
    assert saved['meta_weight']['optimizer']['state']

    resumed, rec = build_runner(
        tmp_path / 'resumed', 4, resume=True,
        load_from=str(tmp_path / 'full' / 'iter_2.pth'))
    resumed.train()
    assert resumed.iter == 4
    assert torch.equal(rec.values[0], full_rec.values[2])
    assert torch.equal(rec.values[-1], full_rec.values[-1])
    expected = full.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    adam = [h for h in resumed.hooks if isinstance(h, MetaWeightHook)][0]
    full_adam = [h for h in full.hooks if isinstance(h, MetaWeightHook)][0]
    for a, b in zip(adam.optimizer.state.values(),
                    full_adam.optimizer.state.values()):
        assert torch.equal(a['exp_avg'], b['exp_avg'])


def test_refuses_accumulation_and_other_models(tmp_path):
    runner, _ = build_runner(tmp_path / 'a', 2, accumulate=2)
    with pytest.raises(ValueError, match='accumulative_counts'):
        runner.train()
    runner, _ = build_runner(tmp_path / 'b', 2)
    runner.model = runner.model.model
    with pytest.raises(TypeError, match='MetaWeightedModel'):
        runner.train()


def _gather(tensor):
    gathered = [torch.zeros_like(tensor) for _ in range(2)]
    dist.all_gather(gathered, tensor.contiguous())
    return gathered


def _ddp_worker(rank, work_dir):
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2')
    dist.init_process_group('gloo', init_method=f'file://{work_dir}/init',
                            rank=rank, world_size=2)
    runner = None
    try:
        runner, recorder = build_runner(
            work_dir, 4, launcher='pytorch',
            cfg=dict(model_wrapper_cfg=dict(
                type='pyramidkd_mm.CPUDistributedDataParallel',
                broadcast_buffers=False)))
        runner.train()
        # the ranks trained on different batches but hold one weighting
        # net, which moved
        first = _gather(next(iter(runner.train_dataloader))['inputs'][0])
        assert not torch.equal(*first)
        assert torch.equal(*_gather(recorder.values[-1]))
        assert not torch.equal(recorder.values[0], recorder.values[-1])
    finally:
        # Drop the DDP model before the group (see test_phase_hook.py).
        del runner
        gc.collect()
        dist.destroy_process_group()


def test_ddp_weighting_nets_identical_on_both_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    mp.start_processes(_ddp_worker, args=(str(tmp_path), ), nprocs=2,
                       start_method='spawn')


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="mmengine 0.10.7's AmpOptimWrapper needs CUDA")
def test_amp_keeps_the_weighting_net_in_float32(tmp_path):
    # fp16 autocast in the real step; the meta step runs outside autocast
    runner, recorder = build_runner(tmp_path, 3, optim_wrapper=dict(
        type='AmpOptimWrapper', dtype='float16',
        optimizer=dict(type='SGD', lr=0.1)))
    runner.train()
    net = unwrapped_model(runner).weight_net
    for param in net.parameters():
        assert param.is_cuda and param.dtype == torch.float32
        assert param.isfinite().all()
    assert not torch.equal(recorder.values[0], recorder.values[-1])
    assert runner.message_hub.get_scalar('train/mwn_skipped').current() == 0
    assert runner.message_hub.get_scalar('train/sample_weight').current() > 0
