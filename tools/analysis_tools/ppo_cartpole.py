"""Proof that the RL parts really learn: PPO on gymnasium's CartPole-v1.

The very classes that select pyramid levels are used unchanged:
``PolicyNetwork`` with ``num_levels=1`` (its one Bernoulli decision is
push left / push right) and ``state_dim=4``, ``RolloutBuffer`` and
``PPOTrainer``. The script prints the learning curve (mean episodic return
while training) and the average return of fresh evaluation episodes;
CartPole-v1 counts as solved at an average of 475 over 100 episodes.

Example::

    OMP_NUM_THREADS=1 python tools/analysis_tools/ppo_cartpole.py
"""
import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from pyramidkd_mm.rl import PolicyNetwork, PPOTrainer, RolloutBuffer

OBS_DIM = 4


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--total-steps', type=int, default=200_000,
                        help='environment steps over all envs')
    parser.add_argument('--num-envs', type=int, default=8)
    parser.add_argument('--num-steps', type=int, default=256,
                        help='steps per env per rollout')
    parser.add_argument('--lr', type=float, default=1e-3,
                        help='initial learning rate, annealed linearly to 0')
    parser.add_argument('--hidden-dim', type=int, default=64)
    parser.add_argument('--recurrent', action='store_true',
                        help='use the LSTM variant of the policy')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--minibatch-size', type=int, default=512)
    parser.add_argument('--entropy-coef', type=float, default=0.01)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-episodes', type=int, default=100)
    parser.add_argument('--stochastic-eval', action='store_true',
                        help='sample actions in evaluation instead of '
                        'taking the more likely one')
    return parser.parse_args()


def make_envs(num_envs):
    # SAME_STEP: a finished env is reset inside the step that ends it, so
    # every step returned is a real transition (gymnasium's default,
    # NEXT_STEP, spends one step on the reset and ignores its action).
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make('CartPole-v1') for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def train(total_steps=200_000, num_envs=8, num_steps=256, lr=1e-3,
          hidden_dim=64, recurrent=False, epochs=10, minibatch_size=512,
          entropy_coef=0.01, seed=0, log=print):
    """Trains a CartPole policy with PPO.

    Returns:
        tuple[PolicyNetwork, list[tuple[int, float]]]: the policy and the
        learning curve as (environment step at episode end, return) pairs.
    """
    torch.manual_seed(seed)
    envs = make_envs(num_envs)
    policy = PolicyNetwork(OBS_DIM, num_levels=1, hidden_dim=hidden_dim,
                           recurrent=recurrent)
    trainer = PPOTrainer(policy, lr=lr, epochs=epochs,
                         minibatch_size=minibatch_size,
                         entropy_coef=entropy_coef)
    buffer = RolloutBuffer(num_steps, num_envs, OBS_DIM, 1)

    obs, _ = envs.reset(seed=seed)
    episode_return = np.zeros(num_envs)
    curve, step = [], 0
    num_updates = total_steps // (num_envs * num_steps)
    start = time.perf_counter()
    for update in range(num_updates):
        trainer.optimizer.param_groups[0]['lr'] = lr * (
            1 - update / num_updates)
        buffer.reset()
        for _ in range(num_steps):
            state = torch.as_tensor(obs)
            action, log_prob, value = policy.select_action(state)
            obs, reward, terminated, truncated, info = envs.step(
                action[:, 0].long().numpy())
            step += num_envs
            episode_return += reward
            done = terminated | truncated
            # The 500-step time limit is not a failure: bootstrap the value
            # of the state it cut off instead of treating it as terminal.
            cut = truncated & ~terminated
            if cut.any():
                final = torch.as_tensor(np.stack(info['final_obs'][cut]))
                final_value = policy.select_action(final)[2].numpy()
                reward[cut] += buffer.gamma * final_value
            buffer.add(state, action, log_prob, value, reward, done)
            for env in np.flatnonzero(done):
                curve.append((step, float(episode_return[env])))
                episode_return[env] = 0
        buffer.compute_returns_and_advantages(
            policy.select_action(torch.as_tensor(obs))[2])
        metrics = trainer.update(buffer)
        if log and (update + 1) % max(1, num_updates // 20) == 0:
            recent = [r for _, r in curve[-20:]]
            log(f'step {step:7d}  return(last 20 eps) '
                f'{np.mean(recent) if recent else float("nan"):6.1f}  '
                f'episodes {len(curve):5d}  '
                f'kl {metrics["approx_kl"]:.4f}  '
                f'clip {metrics["clip_fraction"]:.3f}  '
                f'entropy {metrics["entropy"]:.3f}  '
                f'ev {metrics["explained_variance"]:.2f}  '
                f'{step / (time.perf_counter() - start):5.0f} steps/s')
    envs.close()
    return policy, curve


def evaluate(policy, episodes=100, deterministic=True, seed=10_000):
    """Average return of ``episodes`` fresh episodes, one per env, run to
    their end (all of them, so long episodes are not under-counted)."""
    envs = make_envs(episodes)
    obs, _ = envs.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        action = policy.select_action(torch.as_tensor(obs), deterministic)[0]
        obs, reward, terminated, truncated, _ = envs.step(
            action[:, 0].long().numpy())
        returns += reward * running
        running &= ~(terminated | truncated)
    envs.close()
    return returns


def main():
    args = parse_args()
    torch.set_num_threads(1)  # threads only slow tiny networks down
    start = time.perf_counter()
    policy, curve = train(
        total_steps=args.total_steps, num_envs=args.num_envs,
        num_steps=args.num_steps, lr=args.lr, hidden_dim=args.hidden_dim,
        recurrent=args.recurrent, epochs=args.epochs,
        minibatch_size=args.minibatch_size, entropy_coef=args.entropy_coef,
        seed=args.seed)
    train_time = time.perf_counter() - start
    returns = evaluate(policy, args.eval_episodes,
                       deterministic=not args.stochastic_eval)
    mode = 'stochastic' if args.stochastic_eval else 'deterministic'
    steps = (args.total_steps // (args.num_envs * args.num_steps)
             * args.num_envs * args.num_steps)
    print(f'trained {steps} env steps, '
          f'{len(curve)} episodes in {train_time:.1f} s')
    print(f'evaluation ({mode}, {args.eval_episodes} episodes): '
          f'mean return {returns.mean():.1f} +- {returns.std():.1f}, '
          f'min {returns.min():.0f}  (solved: >= 475)')
    print(f'total wall time {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
