from .distributed import CPUDistributedDataParallel, setup_cpu_distributed
from .phase_hook import DistillPhaseHook

__all__ = [
    'CPUDistributedDataParallel', 'DistillPhaseHook', 'setup_cpu_distributed'
]
