"""Distributed training on CPU hosts (gloo).

mmengine's pytorch launcher assumes CUDA: ``init_dist`` calls
``torch.cuda.set_device`` and the Runner wraps the model with
``device_ids=[local_rank]``. On a CPU host the tools therefore initialise the
gloo process group themselves before building the Runner (which then skips
``init_dist``) and wrap the model with :class:`CPUDistributedDataParallel`.
"""
import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel, is_model_wrapper

from ..registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for CPU modules: DDP needs
    ``device_ids=None`` there, whatever the Runner passes."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def unwrapped_model(runner):
    """The Runner's model without its DDP wrapper: where the project's hooks
    and loops read and change the distiller's state."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def endless_batches(loader):
    """Batches of ``loader`` forever, reshuffled every epoch as the train
    loops do (``set_epoch`` of a distributed or default sampler)."""
    epoch = 0
    while True:
        if hasattr(loader.sampler, 'set_epoch'):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def setup_cpu_distributed(cfg):
    """Prepare ``cfg`` for a CPU run under torchrun; no-op otherwise.

    Initialises the gloo process group from torchrun's environment and
    switches the model wrapper to :class:`CPUDistributedDataParallel`,
    keeping the config's other wrapper options.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise ValueError(f'launcher {cfg.launcher!r} needs GPUs; on a CPU '
                         'host use tools/dist_train.sh (torchrun)')
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper['type'] = 'pyramidkd_mm.CPUDistributedDataParallel'
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {})['dist_cfg'] = dict(backend='gloo')
