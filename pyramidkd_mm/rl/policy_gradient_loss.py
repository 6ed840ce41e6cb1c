"""The policy-gradient loss of meta-learning: PPO's clipped surrogate on a
rollout, for a policy given as a function of its parameters."""
from .ppo import clipped_surrogate


class PolicyGradientLoss:
    """PPO's clipped surrogate (plus value loss and entropy bonus) on a
    :class:`Rollout`, as the inner and outer loss of meta-learning.

    Why the surrogate with importance ratios rather than REINFORCE with a
    baseline: the transitions a task provides are collected by one policy
    (the meta-policy, an earlier policy, or a cached run) while the loss is
    taken at another (the adapted parameters). The ratio
    ``pi(a|s) / pi_collect(a|s)`` makes the gradient a policy gradient of
    the parameters being evaluated; REINFORCE's ``log pi(a|s) * A`` is only
    unbiased for the collecting policy. At the collecting policy the two
    gradients coincide; the clip bounds how far one inner step can trust
    data from another policy. It is also the loss PPO fine-tunes the policy
    with in phases 2 and 3, so the meta-learned start is tuned for the same
    objective it is later adapted with.

    Args:
        clip, value_coef, entropy_coef: see :class:`PPOTrainer`.
        normalize_advantages (bool): standardise the advantages over the
            rollout, as PPO does over its buffer.
    """

    def __init__(self, clip=0.2, value_coef=0.5, entropy_coef=0.01,
                 normalize_advantages=True):
        self.clip = clip
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.normalize_advantages = normalize_advantages

    def __call__(self, policy_fn, rollout):
        """Loss of ``policy_fn(states, actions) -> (log_prob, entropy,
        value)`` on ``rollout``."""
        log_prob, entropy, value = policy_fn(rollout.states, rollout.actions)
        advantages = rollout.advantages
        if self.normalize_advantages and len(advantages) > 1:
            advantages = ((advantages - advantages.mean())
                          / (advantages.std() + 1e-8))
        return clipped_surrogate(log_prob, entropy, value, rollout.log_probs,
                                 advantages, rollout.returns, self.clip,
                                 self.value_coef, self.entropy_coef).total
