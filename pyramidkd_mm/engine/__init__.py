from .distributed import CPUDistributedDataParallel, setup_cpu_distributed
from .loss_balancer_hook import LossBalancerHook
from .phase_hook import DistillPhaseHook

__all__ = [
    'CPUDistributedDataParallel', 'DistillPhaseHook', 'LossBalancerHook',
    'setup_cpu_distributed'
]
