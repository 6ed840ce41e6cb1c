from .environment import DistillationEnvironment
from .maml import MAMLTrainer
from .meta_task import MetaTask, Rollout
from .policy import PolicyNetwork
from .policy_gradient_loss import PolicyGradientLoss
from .ppo import PPOTrainer
from .rl2_policy import RL2Policy
from .rollout_buffer import RolloutBuffer
from .task_adapter import TaskAdapterPolicy

__all__ = [
    'DistillationEnvironment', 'MAMLTrainer', 'MetaTask', 'PolicyGradientLoss',
    'PolicyNetwork', 'PPOTrainer', 'RL2Policy', 'Rollout', 'RolloutBuffer',
    'TaskAdapterPolicy'
]
