"""EA-LS and exhaustive search on the toy search problem (best mask:
['c3']): they find it, evaluate each mask once, resume from their cache, and
agree across 2 DDP ranks (with the gate search)."""
import gc
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.hooks import Hook

import toy_task
from pyramidkd_mm.nas import GateSearchHook

FINETUNE = 6


class IterCounter(Hook):
    """Counts the iterations and records, per iteration, the learning rate
    and a draw of torch's random generator."""

    def __init__(self):
        self.count = 0
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append((runner.optim_wrapper.get_lr()['lr'][0],
                          torch.rand(()).item()))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.count += 1


def search_runner(tmp_path, loop, resume=False, **loop_args):
    train_cfg = dict(type=loop, metric='neg_mse', finetune_iters=FINETUNE,
                     cost_weight=0.01, **loop_args)
    counter = IterCounter()
    runner = toy_task.build_runner(
        tmp_path, tmp_path / 'work', dict(type='FixedSelector', mask=[1] * 3),
        train_cfg, custom_hooks=[counter], resume=resume,
        param_scheduler=dict(type='LinearLR', start_factor=0.1,
                             by_epoch=False, begin=0, end=4),
        val_dataloader=toy_task.loader(toy_task.SignalImages(offset=1000),
                                       shuffle=False),
        val_evaluator=dict(type='NegativeSquaredError'),
        val_cfg=dict(type='ValLoop'))
    return runner, counter


def read(tmp_path, name):
    with open(tmp_path / 'work' / name) as f:
        return json.load(f)


def test_exhaustive_evaluates_every_mask_and_finds_the_best(tmp_path):
    runner, counter = search_runner(tmp_path, 'ExhaustiveSearchLoop')
    runner.train()
    result = read(tmp_path, 'search_result.json')
    assert result['mask'] == ['c3']
    assert len(result['candidates']) == 8 and counter.count == 8 * FINETUNE
    by_mask = {tuple(c['mask']): c for c in result['candidates']}
    # Distilling c3 helps the task; c2 and c4 change nothing but the cost.
    assert (by_mask[('c3', )]['metrics']['neg_mse'] >
            by_mask[()]['metrics']['neg_mse'])
    assert by_mask[('c2', 'c3')]['metrics']['neg_mse'] == pytest.approx(
        by_mask[('c3', )]['metrics']['neg_mse'], rel=1e-5)


def test_every_candidate_sees_the_same_schedule_and_randomness(tmp_path):
    runner, counter = search_runner(tmp_path, 'ExhaustiveSearchLoop')
    runner.train()
    per_mask = [counter.seen[i:i + FINETUNE]
                for i in range(0, len(counter.seen), FINETUNE)]
    assert len(per_mask) == 8
    assert per_mask[0][0][0] < per_mask[0][-1][0]  # the warm-up
    assert all(seen == per_mask[0] for seen in per_mask)
    # A resumed search trains the missing candidates exactly as the
    # uninterrupted one did.
    cache = read(tmp_path, 'mask_search.json')
    with open(tmp_path / 'work' / 'mask_search.json', 'w') as f:
        json.dump(dict(list(cache.items())[:3]), f)
    resumed, counter = search_runner(tmp_path, 'ExhaustiveSearchLoop',
                                     resume=True)
    resumed.train()
    assert counter.count == 5 * FINETUNE
    again = read(tmp_path, 'mask_search.json')
    assert {k: v['metrics'] for k, v in again.items()} == {
        k: v['metrics'] for k, v in cache.items()}


def test_evolution_finds_the_best_with_fewer_evaluations(tmp_path):
    runner, counter = search_runner(
        tmp_path, 'EvolutionSearchLoop', population_size=3,
        num_generations=2, num_parents=2, num_offspring=2, seed=1)
    runner.train()
    result = read(tmp_path, 'search_result.json')
    assert result['mask'] == ['c3']
    evaluated = len(result['candidates'])
    assert evaluated < 8 and counter.count == evaluated * FINETUNE
    # Resume after an interruption: only the missing candidates are trained.
    cache = read(tmp_path, 'mask_search.json')
    kept = dict(list(cache.items())[:2])
    with open(tmp_path / 'work' / 'mask_search.json', 'w') as f:
        json.dump(kept, f)
    resumed, counter = search_runner(
        tmp_path, 'EvolutionSearchLoop', resume=True, population_size=3,
        num_generations=2, num_parents=2, num_offspring=2, seed=1)
    resumed.train()
    assert counter.count == (evaluated - 2) * FINETUNE
    again = read(tmp_path, 'search_result.json')
    assert again['mask'] == ['c3']
    assert [c['mask'] for c in again['candidates']] == [
        c['mask'] for c in result['candidates']]


def _ddp_worker(rank, tmp_path, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    wrapper = dict(type='pyramidkd_mm.CPUDistributedDataParallel',
                   find_unused_parameters=True)
    gate = GateSearchHook(toy_task.loader(toy_task.SignalImages(offset=1000)),
                          arch_optimizer=dict(type='Adam', lr=0.1))
    runner = toy_task.build_runner(
        tmp_path, tmp_path / 'gates', dict(type='GDASSelector'),
        dict(by_epoch=False, max_iters=3), custom_hooks=[gate],
        launcher='pytorch', cfg=dict(model_wrapper_cfg=wrapper),
        randomness=dict(seed=0, diff_rank_seed=True))
    runner.train()
    logits = runner.model.module.selector.logits.detach()
    runner, _ = search_runner(tmp_path, 'ExhaustiveSearchLoop')
    runner.train()
    torch.save(dict(logits=logits,
                    cache=runner.train_loop.cache),
               tmp_path / f'rank{rank}.pth')
    del runner  # before the group: see test_phase_hook's worker
    gc.collect()
    dist.destroy_process_group()


def test_searches_agree_across_ddp_ranks(tmp_path):
    mp.spawn(_ddp_worker, args=(tmp_path, 29531), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=False)
             for r in range(2)]
    assert torch.equal(ranks[0]['logits'], ranks[1]['logits'])
    assert not torch.equal(ranks[0]['logits'], torch.zeros(3, 2))
    scores = [{mask: {k: v for k, v in record.items() if k != 'seconds'}
               for mask, record in rank['cache'].items()} for rank in ranks]
    assert scores[0] == scores[1] and len(scores[0]) == 8
