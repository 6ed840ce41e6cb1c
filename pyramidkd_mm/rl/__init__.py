from .policy import PolicyNetwork
from .ppo import PPOTrainer
from .rollout_buffer import RolloutBuffer

__all__ = ['PolicyNetwork', 'PPOTrainer', 'RolloutBuffer']
