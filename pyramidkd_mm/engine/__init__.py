from .distributed import (CPUDistributedDataParallel, endless_batches,
                          setup_cpu_distributed, unwrapped_model)
from .loss_balancer_hook import LossBalancerHook
from .meta_weight_hook import MetaStep, MetaWeightHook, meta_weight_step
from .phase_hook import DistillPhaseHook

__all__ = [
    'CPUDistributedDataParallel', 'DistillPhaseHook', 'LossBalancerHook',
    'endless_batches', 'setup_cpu_distributed', 'unwrapped_model',
    'MetaStep', 'MetaWeightHook', 'meta_weight_step'
]
