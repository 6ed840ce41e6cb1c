from .environment import DistillationEnvironment
from .policy import PolicyNetwork
from .ppo import PPOTrainer
from .rollout_buffer import RolloutBuffer

__all__ = [
    'DistillationEnvironment', 'PolicyNetwork', 'PPOTrainer', 'RolloutBuffer'
]
