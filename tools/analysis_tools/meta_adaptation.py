"""Leave-one-out adaptation of the selection policy across the digits tasks:
meta-learned initialisations against a random one and plain transfer.

Works on the tasks recorded by ``record_task.py`` (a TaskCache each, split
once into 75 % to learn on and 25 % held out for evaluation). For each
held-out task and seed, a :class:`TaskAdapterPolicy` (one adapter per task,
a shared core) starts from:

- ``random``: a fresh policy (the from-scratch run);
- ``transfer``: PPO on the other two tasks, alternating, for as many
  episodes as meta-training uses (plain multi-task training);
- ``MAML`` / ``FOMAML`` / ``Reptile``: meta-trained on the other two tasks
  (support and query collected by the meta- and the adapted policy);
- ``MAML, core-only inner loop``: the same, with the adapters fixed in the
  inner loop (does adapting the input adapter there help?).

The held-out task gets a new adapter, initialised identically for every
start. Then each start is adapted on the held-out task with PPO (the
RL-KD configs' settings: Adam 3e-4, 4 epochs, minibatches of 32, here 64
episodes per update) and its exact expected reward on the held-out samples
is taken after every update. Reported: the reward before any update and
after ``fast_adapt`` (5 inner SGD steps on 64 episodes), the PPO updates
each start needs to reach 90 % of the from-scratch run's improvement and
its final reward (the mean of its last 10 evaluations), and the final
reward; mean +- std over seeds.

Writes ``results/meta_adaptation.md`` and ``results/meta_adaptation.png``.

    python tools/analysis_tools/meta_adaptation.py [--caches work_dirs/meta] \
        [--seeds 0 1 2] [--updates 100] [--meta-iters 300]
"""
import argparse
import copy
import os
import os.path as osp
import sys
import time

import torch

from pyramidkd_mm.rl import (MAMLTrainer, PPOTrainer, RolloutBuffer,
                             TaskAdapterPolicy)
from pyramidkd_mm.rl.task_cache import TaskCache

TASKS = ('det', 'seg', 'cls')
STARTS = ('random', 'transfer', 'MAML', 'FOMAML', 'Reptile',
          'MAML, core-only inner loop')
META = {'MAML': ('maml', None), 'FOMAML': ('fomaml', None),
        'Reptile': ('reptile', None),
        'MAML, core-only inner loop': ('maml', ('core.', ))}
EPISODES = 64  # per PPO update, per support and per query set
INNER = dict(inner_lr=0.1, num_inner_steps=5)


def new_policy(caches, seed):
    torch.manual_seed(seed)
    first, *others = caches
    return TaskAdapterPolicy(
        first.state_dim, num_levels=first.num_levels, task=first.name,
        task_dims={c.name: c.state_dim for c in others}, embed_dim=64,
        core=dict(hidden_dim=128))


def ppo(policy, cache, updates, generator, evaluate=None):
    """PPO on one task; returns the evaluations after every update."""
    policy.task = cache.name
    trainer = PPOTrainer(policy, lr=3e-4, minibatch_size=32)
    buffer = RolloutBuffer(1, EPISODES, cache.state_dim, cache.num_levels)
    curve = []
    for _ in range(updates):
        cache.fill(buffer, policy, generator)
        trainer.update(buffer)
        if evaluate is not None:
            curve.append(evaluate(policy))
    return curve


def start(name, train_caches, seed, meta_iters):
    """The initial policy ``name`` learned on ``train_caches``."""
    policy = new_policy(train_caches, seed)
    g = torch.Generator().manual_seed(seed)
    if name == 'transfer':  # the episodes meta-training consumes
        updates = meta_iters * 2 * len(train_caches)
        trainers = {c.name: PPOTrainer(policy, lr=3e-4, minibatch_size=32)
                    for c in train_caches}
        buffers = {c.name: RolloutBuffer(1, EPISODES, c.state_dim,
                                         c.num_levels) for c in train_caches}
        for step in range(updates):
            cache = train_caches[step % len(train_caches)]
            policy.task = cache.name
            cache.fill(buffers[cache.name], policy, g)
            trainers[cache.name].update(buffers[cache.name])
    elif name in META:
        algorithm, inner_params = META[name]
        trainer = MAMLTrainer(policy, outer_lr=3e-4, algorithm=algorithm,
                              inner_params=inner_params, max_grad_norm=0.5,
                              **INNER)
        for _ in range(meta_iters):
            trainer.meta_update([c.meta_task(EPISODES, EPISODES, g)
                                 for c in train_caches])
    return policy


def adapt(policy, name, train, val, seed, updates, save=None):
    """Adapts a start to the held-out task; returns its numbers. ``save``:
    a file to write the start (with its new adapter) to, loadable as a
    Runner's ``load_from``."""
    policy = copy.deepcopy(policy)
    torch.manual_seed(1000 + seed)  # the same new adapter for every start
    policy.add_task(train.name, train.state_dim)
    policy.task = train.name
    if save:
        torch.save(dict(state_dict={f'selector.policy.{k}': v for k, v in
                                    policy.state_dict().items()}), save)
    inner_params = META.get(name, (None, None))[1]
    g = torch.Generator().manual_seed(2000 + seed)
    torch.manual_seed(3000 + seed)
    zero_shot = val.expected_reward(policy)
    fast = MAMLTrainer(policy, inner_params=inner_params, **INNER).fast_adapt(
        lambda p: train.collect(p, EPISODES, g))
    return dict(zero_shot=zero_shot, fast_adapt=val.expected_reward(fast),
                curve=ppo(policy, train, updates, g, val.expected_reward))


def references(train, val):
    """Rewards on the held-out samples of the best single mask (chosen on
    the training samples) and of each sample's best mask."""
    masks = train.masks()

    def table(cache):
        index = torch.arange(len(cache)).repeat_interleave(len(masks))
        return cache.rewards(index, masks.repeat(len(cache), 1)).view(
            len(cache), len(masks))
    best = table(train).mean(0).argmax()
    return table(val)[:, best].mean().item(), table(val).amax(1).mean().item()


def final(curve):
    """The reward a run ends with: its mean over the last 10 updates."""
    return sum(curve[-10:]) / len(curve[-10:])


def fmt(values, digits=3):
    values = torch.tensor(values, dtype=torch.float64)
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return f'{values.mean():.{digits}f} +- {values.std():.{digits}f}'


def reach(runs, targets, updates):
    """PPO updates until each run's reward first reaches its seed's target:
    mean +- std over the runs that reach it, and how many do."""
    hits = [next((u + 1 for u, v in enumerate(r['curve']) if v >= t), None)
            for r, t in zip(runs, targets)]
    hit = [u for u in hits if u is not None]
    if not hit:
        return f'> {updates} (0/{len(runs)})'
    return f'{fmt(hit, 1)} ({len(hit)}/{len(runs)})'


def summarise(results, updates):
    """Per start and held-out task: updates to reach 90 % of the
    from-scratch run's improvement and its final reward, and the
    rewards."""
    rows = {}
    for task, by_start in results.items():
        scratch = by_start['random']
        finals = [final(r['curve']) for r in scratch]
        ninety = [r['zero_shot'] + 0.9 * (f - r['zero_shot'])
                  for r, f in zip(scratch, finals)]
        for name, runs in by_start.items():
            rows.setdefault(name, {})[task] = dict(
                reach=(f'{reach(runs, ninety, updates)} / '
                       f'{reach(runs, finals, updates)}'),
                zero_shot=fmt([r['zero_shot'] for r in runs]),
                fast_adapt=fmt([r['fast_adapt'] for r in runs]),
                final=fmt([final(r['curve']) for r in runs]))
    return rows


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4))
    for ax, (task, by_start) in zip(axes, results.items()):
        for name, runs in by_start.items():
            curves = torch.tensor([r['curve'] for r in runs])
            mean = curves.mean(0)
            std = curves.std(0) if len(runs) > 1 else 0 * mean
            x = range(1, len(mean) + 1)
            ax.plot(x, mean, label=name)
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set(title=f'held-out task: {task}', xlabel='PPO updates',
               ylabel='expected reward (held-out samples)')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--caches', default='work_dirs/meta',
                        help='folder of {det,seg,cls}_cache.pth')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--updates', type=int, default=100,
                        help='PPO updates on the held-out task')
    parser.add_argument('--meta-iters', type=int, default=300)
    parser.add_argument('--out', default='results')
    parser.add_argument('--save-starts', help='folder for the first seed\'s '
                        'starts, as load_from files of an RL-KD run')
    args = parser.parse_args()
    if args.save_starts:
        os.makedirs(args.save_starts, exist_ok=True)
    splits = {}
    for task in args.tasks:
        cache = TaskCache.load(osp.join(args.caches, f'{task}_cache.pth'))
        cache.name = task
        splits[task] = cache.split(0.25)
    results, refs, walls = {}, {}, {name: 0.0 for name in STARTS}
    for held_out in args.tasks:
        train, val = splits[held_out]
        refs[held_out] = references(train, val)
        others = [splits[t][0] for t in args.tasks if t != held_out]
        results[held_out] = {}
        for name in STARTS:
            runs = []
            for seed in args.seeds:
                clock = time.time()
                policy = start(name, others, seed, args.meta_iters)
                walls[name] += time.time() - clock
                save = None
                if args.save_starts and seed == args.seeds[0]:
                    slug = ''.join(c if c.isalnum() else '_'
                                   for c in name.lower())
                    save = osp.join(args.save_starts,
                                    f'{held_out}_{slug}_start.pth')
                runs.append(adapt(policy, name, train, val, seed,
                                  args.updates, save))
            results[held_out][name] = runs
            print(f'{held_out} {name}: final '
                  f'{fmt([final(r["curve"]) for r in runs])}',
                  flush=True)
    os.makedirs(args.out, exist_ok=True)
    plot(results, osp.join(args.out, 'meta_adaptation.png'))
    rows = summarise(results, args.updates)
    tasks = list(results)
    lines = [f'Command: `python {" ".join(sys.argv)}`', '',
             f'Seeds {args.seeds}; {args.meta_iters} meta-iterations over '
             f'the two other tasks; {args.updates} PPO updates of '
             f'{EPISODES} episodes on the held-out task. Learning time of '
             'each start, summed over tasks and seeds: ' + ', '.join(
                 f'{n} {w:.0f} s' for n, w in walls.items()) + '.', '',
             '**PPO updates to reach 90 % of the from-scratch run\'s '
             'improvement / its final reward** (mean +- std over the seeds '
             'that reach it within the run, how many do; target: at most a '
             'tenth of random\'s)', '',
             '| start | ' + ' | '.join(tasks) + ' |',
             '|---' * (len(tasks) + 1) + '|']
    for name, by_task in rows.items():
        lines.append(f'| {name} | ' + ' | '.join(
            by_task[t]['reach'] for t in tasks) + ' |')
    lines += ['', '**Expected reward on the held-out samples**: before any '
              'update / after fast_adapt (5 inner steps) / after the PPO '
              'updates (mean of the last 10)', '',
              '| start | ' + ' | '.join(tasks) + ' |',
              '|---' * (len(tasks) + 1) + '|']
    for name, by_task in rows.items():
        lines.append(f'| {name} | ' + ' | '.join(
            f"{by_task[t]['zero_shot']} / {by_task[t]['fast_adapt']} / "
            f"{by_task[t]['final']}" for t in tasks) + ' |')
    lines.append('| best single mask / each sample\'s best mask | '
                 + ' | '.join(f'{refs[t][0]:.3f} / {refs[t][1]:.3f}'
                              for t in tasks) + ' |')
    table = '\n'.join(lines)
    with open(osp.join(args.out, 'meta_adaptation.md'), 'w') as f:
        f.write(table + '\n')
    print(table)


if __name__ == '__main__':
    main()
