"""Iteration time and peak memory: student alone vs uniform KD vs RL-KD vs
the teacher's forward.

Each mode runs in its own process (clean peak-memory accounting) on the same
real batches of the digits data: ``student`` trains the plain student,
``kd`` trains the uniform-KD distiller (student + teacher pyramid +
distillation losses), ``kd_gradnorm`` the same with GradNorm balancing the
level losses, ``kd_random`` the same with half the samples skipped at
random (:class:`RandomSelector`, budget 0.5: what any selector spending
0.5 by skipping samples costs, e.g. RL-KD at its budget without its
policy), ``rl_policy`` and ``rl_joint`` train the RL-KD
distiller in phase 2 (its ``freeze`` module frozen) and phase 3, including the
reward measurement (the pass after each step for ``reward='gain'``, the
teacher's head for ``reward='disagreement'``) and the PPO updates,
``rl_meta`` trains
``{task}_rl_kd_meta.py`` in phase 4 (meta-updates over the run's rollouts
and the recorded tasks instead of PPO), and ``teacher`` runs
the teacher's pyramid forward under no_grad (the extra work KD adds). Ratios
are taken against the student and uniform KD, measured side by side in one
run. The RL modes use the policy of ``--rl-checkpoint`` (a det_rl_kd run) if
given, else a freshly initialised one (which selects about half the levels
at random; ``rl_meta`` always starts fresh). Two measures of the teacher
compute a mode spent stand side by side: ``distill_cost`` as the distiller
logs it (FLOPs of the teacher calls made, relative to uniform KD) and the
measured wall time of its teacher calls relative to uniform KD's.

On ``--device cuda`` the timers synchronise the GPU and memory is the
caching allocator's peak over the model; ``--amp`` runs the steps under fp16
autocast with a dynamic loss scale.

    python tools/analysis_tools/benchmark_kd.py [--task det] [--iters 20] \
        [--device cuda] [--amp] \
        [--rl-checkpoint work_dirs/pareto/det/rl_b0.5_s0/iter_500.pth] \
        [--rl-cfg-options model.selector.action=sample ...] [--modes ...]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from argparse import Namespace

from mmengine.config import DictAction

MODES = ('student', 'kd', 'kd_gradnorm', 'kd_random', 'rl_policy', 'rl_joint',
         'rl_meta', 'teacher')
CONFIGS = dict(student='student', kd='uniform_kd', teacher='uniform_kd',
               kd_random='uniform_kd',
               kd_gradnorm='uniform_kd_gradnorm', rl_policy='rl_kd',
               rl_joint='rl_kd', rl_meta='rl_kd_meta')


def clock():
    """Seconds, after the GPU's queued work has finished (kernels run
    asynchronously: without the sync a timer measures their launch)."""
    import torch
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def memory_mib(device):
    """(in use now, peak so far): the process's resident set on CPU, the
    caching allocator's tensors on CUDA."""
    import torch
    if device == 'cuda':
        return (torch.cuda.memory_allocated() / 2**20,
                torch.cuda.max_memory_allocated() / 2**20)
    with open('/proc/self/statm') as f:
        rss = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    return rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rl_timers(model):
    """Hooks timing the selector's forward (state + policy); returns the
    list of durations it fills."""
    spent = []
    model.selector.register_forward_pre_hook(
        lambda m, a: spent.append(-clock()))
    model.selector.register_forward_hook(
        lambda m, a, o: spent.append(spent.pop() + clock()))
    return spent


def call_timer(owner, name):
    """Times every call of ``owner``'s method ``name``; returns the list
    of durations it fills."""
    spent = []
    method = getattr(owner, name)

    def timed(*args):
        start = clock()
        out = method(*args)
        spent.append(clock() - start)
        return out

    setattr(owner, name, timed)
    return spent


def measure(task, mode, iters, warmup, rl_checkpoint, rl_options=None,
            device='cpu', amp=False):
    """Run one mode in this process on ``device`` (fp16 autocast with
    ``amp``); returns timing and memory."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmengine.runner import load_checkpoint

    from pyramidkd_mm.checkpoint import trust_checkpoints
    from pyramidkd_mm.datasets import prepare_data
    from pyramidkd_mm.engine.meta_phase import MetaPhase
    from pyramidkd_mm.models import build_teacher
    from pyramidkd_mm.registry import MODELS

    torch.manual_seed(0)
    cfg = Config.fromfile(f'configs/digits/{task}_{CONFIGS[mode]}.py')
    if mode.startswith('rl_') and rl_options:
        cfg.merge_from_dict(rl_options)
    if mode == 'kd_random':
        cfg.model.selector = dict(type='RandomSelector', budget=0.5)
    prepare_data(cfg)
    if cfg.get('data_preprocessor') is not None:  # as the Runner merges it
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        batches = [b for _, b in zip(range(iters + warmup), loader)]
        if mode == 'teacher':
            model = build_teacher(cfg.model.teacher.config, None).eval()
        else:
            if mode != 'student':  # speed does not depend on the weights
                cfg.model.teacher.checkpoint = None
            model = MODELS.build(cfg.model).train()
    model.to(device)  # the data preprocessor moves each batch there
    rl = mode.startswith('rl_')
    update = None
    if rl:
        if mode == 'rl_meta':  # phase 4, as DistillPhaseHook sets it up
            meta = MetaPhase(**cfg.custom_hooks[0]['meta'])
            meta.setup(model.selector.policy)
            update = meta.update
        elif rl_checkpoint:
            trust_checkpoints(rl_checkpoint)
            load_checkpoint(model, rl_checkpoint, map_location='cpu')
        model.selector.uniform = False
        freeze = cfg.custom_hooks[0].get('freeze', 'backbone')
        if mode == 'rl_policy' and freeze:  # phase 2, as the hook freezes
            model.student.get_submodule(freeze).requires_grad_(False)
        policy_s = rl_timers(model)
        # a reward read from the teacher's predictions runs its head here
        head_s = call_timer(model.selector, 'read_teacher')
    distiller = mode not in ('student', 'teacher')
    teacher_s = call_timer(model.teacher_tap, 'extract') if distiller else []
    sgd = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    optim = AmpOptimWrapper(dtype='float16', optimizer=sgd) if amp \
        else OptimWrapper(sgd)
    base, _ = memory_mib(device)
    times, costs, learn_s, outcome_s, teacher_iter_s = [], [], [], [], []
    for i, data in enumerate(batches):
        teacher_s.clear()
        start = clock()
        if mode == 'teacher':
            with torch.no_grad(), optim.optim_context(model):
                model.extract_feat(
                    model.data_preprocessor(data, False)['inputs'])
        else:
            log_vars = model.train_step(data, optim)
            costs.append(float(log_vars.get('distill_cost', 0)))
        if rl:  # what DistillPhaseHook does after the step
            mark = clock()
            outcome = model.outcome()
            outcome_s.append(clock() - mark + head_s.pop())
            mark = clock()
            model.selector.learn(outcome, update=update)
            learn_s.append(clock() - mark)
        if i >= warmup:
            times.append(clock() - start)
            teacher_iter_s.append(sum(teacher_s))
    _, peak = memory_mib(device)
    iter_s = sum(times) / len(times)
    result = dict(mode=mode, iter_s=iter_s, peak_mib=peak,
                  peak_over_model_mib=peak - base)
    if distiller:
        result['distill_cost'] = sum(costs[warmup:]) / len(times)
        result['teacher_s'] = sum(teacher_iter_s) / len(times)
    if rl:  # shares of an iteration, over the measured iterations
        result['policy_ppo_share'] = (sum(policy_s[warmup:])
                                      + sum(learn_s[warmup:])) / sum(times)
        result['outcome_share'] = sum(outcome_s[warmup:]) / sum(times)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='det', choices=['det', 'seg', 'cls'])
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--rl-checkpoint',
                        help='a det_rl_kd checkpoint whose policy to use')
    parser.add_argument('--rl-cfg-options', nargs='+', default=[],
                        help='key=value overrides of the RL modes\' config '
                        '(an RL-KD variant, as its run was trained)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='fp16 autocast and loss scaling '
                        '(AmpOptimWrapper; CUDA)')
    parser.add_argument('--modes', nargs='+', choices=MODES,
                        help='a subset of the modes (student and kd are '
                        'always measured: the ratios need them)')
    parser.add_argument('--mode', choices=MODES, help='(internal) one mode')
    args = parser.parse_args()
    if args.amp and args.device != 'cuda':
        parser.error('--amp needs --device cuda (mmengine\'s AmpOptimWrapper '
                     'is CUDA only)')
    if args.mode:
        rl_options = Namespace()
        DictAction(option_strings=[], dest='options')(
            None, rl_options, args.rl_cfg_options)
        print(json.dumps(measure(args.task, args.mode, args.iters,
                                 args.warmup, args.rl_checkpoint,
                                 rl_options.options, args.device,
                                 args.amp)))
        return
    wanted = set(args.modes or MODES) | {'student', 'kd'}
    modes = [m for m in MODES if m in wanted and os.path.exists(
        f'configs/digits/{args.task}_{CONFIGS[m]}.py')]
    results = {}
    for mode in modes:
        print(f'measuring {mode} ...', flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, '--task', args.task, '--mode', mode,
             '--iters', str(args.iters), '--warmup', str(args.warmup),
             '--device', args.device] + (['--amp'] if args.amp else [])
            + (['--rl-checkpoint', args.rl_checkpoint]
               if args.rl_checkpoint else [])
            + (['--rl-cfg-options', *args.rl_cfg_options]
               if args.rl_cfg_options else []),
            capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f'{mode} failed:\n{proc.stderr[-3000:]}')
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ref, kd = results['student'], results['kd']
    threads = os.environ.get('OMP_NUM_THREADS', 'default')
    print(f'\n{args.task}: {args.iters} iterations after {args.warmup} '
          f'warm-up on {args.device}{" with fp16 AMP" if args.amp else ""}, '
          f'torch threads {threads}, RL policy '
          f'{args.rl_checkpoint or "freshly initialised"}')
    print('| mode | iter time | vs student | vs uniform KD | peak over model '
          '| vs student | distill cost (FLOPs) | teacher time vs uniform KD '
          '| policy+PPO | reward measurement |\n'
          '|---|---|---|---|---|---|---|---|---|---|')
    for mode, r in results.items():
        share = (f"{r['policy_ppo_share']:.1%} | {r['outcome_share']:.1%}"
                 if 'policy_ppo_share' in r else '- | -')
        cost = (f"{r['distill_cost']:.2f} | "
                f"{r['teacher_s'] / kd['teacher_s']:.2f}"
                if 'distill_cost' in r else '- | -')
        print(f"| {mode} | {r['iter_s']:.3f} s | "
              f"{r['iter_s'] / ref['iter_s']:.2f}x | "
              f"{r['iter_s'] / kd['iter_s']:.2f}x | "
              f"{r['peak_over_model_mib']:.0f} MiB | "
              f"{r['peak_over_model_mib'] / ref['peak_over_model_mib']:.2f}x "
              f"| {cost} | {share} |")
    if 'rl_meta' in results:
        ratio = results['rl_meta']['iter_s'] / results['rl_joint']['iter_s']
        print(f'phase 4 (meta) / phase 3 (joint) iteration time: {ratio:.2f}x')


if __name__ == '__main__':
    main()
