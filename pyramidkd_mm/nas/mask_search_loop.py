"""Searches that score whole masks: each candidate is a short fine-tune from a
shared starting point, evaluated on a held-out split."""
import copy
import itertools
import json
import os.path as osp
import random
import time

import numpy as np
import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.runner import BaseLoop

from ..engine import endless_batches, unwrapped_model
from ..models import FixedSelector
from ..registry import LOOPS
from .result import write_search_result


class MaskSearchLoop(BaseLoop):
    """Base of the mask searches, used as a Runner's ``train_cfg``.

    The model is a :class:`PyramidDistiller` with a :class:`FixedSelector`;
    its state when the loop starts (after ``load_from`` or the student's
    ``init_cfg``) is the shared starting point. :meth:`evaluate` restores it,
    the optimiser, the parameter schedulers and the random number
    generators as they were then (so every candidate, also in a resumed
    search, sees the same learning-rate schedule, data order and
    augmentation), sets the candidate mask, trains
    ``finetune_iters`` iterations on the training split's first batches,
    the same for every candidate (the Runner's
    iteration hooks run, so losses are logged), and evaluates on the held-out
    split, which is the config's validation split (``val_dataloader``,
    ``val_evaluator``: the Runner's val loop scores the candidates with the
    toolbox's metric): fitness = metric - ``cost_weight`` x
    distillation cost. Each mask is evaluated once: results are cached in
    ``<work_dir>/mask_search.json`` after every candidate, and a resumed run
    (``resume=True``) reads them back and replays the (deterministic) search
    without evaluating them again. Rank 0's decisions and cache are
    broadcast, so every rank trains the same candidate. Subclasses implement
    :meth:`search`.

    Args:
        runner (Runner): the Runner.
        dataloader (dict | DataLoader): the training split.
        metric (str): the metric key the fitness uses, e.g.
            ``'coco/bbox_mAP'``.
        finetune_iters (int): training iterations per candidate.
        cost_weight (float): the price of the whole teacher pyramid, in
            metric units.
        base_config (str, optional): the KD config the written
            ``fixed_mask.py`` extends.
    """

    name = None

    def __init__(self, runner, dataloader, metric, finetune_iters,
                 cost_weight=0.0, base_config=None):
        super().__init__(runner, dataloader)
        self.metric = metric
        self.finetune_iters = finetune_iters
        self.cost_weight = cost_weight
        self.base_config = base_config
        self._iter = 0
        self.cache = {}  # every mask scored, by flags ('0110')
        self._visited = {}  # those this search asked for

    @property
    def iter(self):
        return self._iter

    @property
    def epoch(self):
        return 0

    @property
    def max_epochs(self):
        return 1

    @property
    def max_iters(self):
        return self.finetune_iters * self.max_candidates()

    def max_candidates(self):
        """An upper bound on the evaluations (for progress and ETA)."""
        return 2**len(self.distiller.levels)

    @property
    def distiller(self):
        return unwrapped_model(self.runner)

    @property
    def cache_file(self):
        return osp.join(self.runner.work_dir, 'mask_search.json')

    def run(self):
        model = self.distiller
        if not isinstance(getattr(model, 'selector', None), FixedSelector):
            raise TypeError(f'{type(self).__name__} needs a PyramidDistiller '
                            "with dict(type='FixedSelector', mask=...)")
        if self.runner.val_loop is None:
            raise ValueError(
                f'{type(self).__name__} scores masks on the held-out split: '
                'set val_dataloader, val_evaluator and val_cfg')
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        self._start = copy.deepcopy(dict(
            model=model.state_dict(),
            optimizer=self.runner.optim_wrapper.optimizer.state_dict(),
            schedulers=[s.state_dict() for s in self._schedulers()],
            rng=_rng_state()))
        cache = [None]  # --resume / resume=True: mmengine keeps it here
        if self.runner._resume and is_main_process() and osp.exists(
                self.cache_file):
            with open(self.cache_file) as f:
                cache = [json.load(f)]
        broadcast_object_list(cache)
        self.cache = cache[0] or {}
        self.search()
        visited = self._visited.values()
        best = max(visited, key=lambda r: r['fitness'])
        write_search_result(
            self.runner.work_dir, self.name, model.levels, best['flags'],
            best['cost'], dict(best['metrics'], source='fine-tune of the '
                               'mask, held-out split'),
            sum(r['seconds'] for r in visited), self.base_config,
            cost_weight=self.cost_weight,
            candidates=sorted(visited, key=lambda r: -r['fitness']))
        self.runner.logger.info(f'{self.name} chose {best["mask"]} '
                                f'(fitness {best["fitness"]:.4f}) out of '
                                f'{len(visited)} evaluated masks')
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def search(self):
        """Evaluate candidates with :meth:`evaluate` (they are cached)."""
        raise NotImplementedError

    def _schedulers(self):
        """The Runner's parameter schedulers (a list, or a dict of lists
        for several optimisers), flattened."""
        schedulers = self.runner.param_schedulers or []
        groups = (schedulers.values() if isinstance(schedulers, dict)
                  else [schedulers])
        return [s for group in groups for s in group]

    def evaluate(self, flags):
        """Fine-tune and score one mask (once).

        Args:
            flags (Sequence[bool]): one flag per level.

        Returns:
            dict: ``mask``, ``flags``, ``metrics``, ``cost``, ``fitness`` and
            ``seconds``.
        """
        decision = [[bool(f) for f in flags]]
        broadcast_object_list(decision)  # rank 0 decides
        flags = decision[0]
        key = ''.join('1' if f else '0' for f in flags)
        if key not in self.cache:
            self.cache[key] = self._finetune_and_score(flags)
            if is_main_process():
                with open(self.cache_file, 'w') as f:
                    json.dump(self.cache, f, indent=2)
        self._visited[key] = self.cache[key]
        return self.cache[key]

    def _finetune_and_score(self, flags):
        start = time.time()
        model, runner = self.distiller, self.runner
        shared = self._start
        model.load_state_dict(shared['model'])
        runner.optim_wrapper.optimizer.load_state_dict(shared['optimizer'])
        for scheduler, state in zip(self._schedulers(),
                                    shared['schedulers']):
            scheduler.load_state_dict(state)
        _set_rng_state(shared['rng'])
        model.selector.flags.copy_(torch.tensor(flags))
        runner.logger.info(f'{self.name}: fine-tuning mask {flags} '
                           f'({len(self.cache) + 1} evaluated)')
        runner.model.train()
        batches = endless_batches(self.dataloader)  # the same for every mask
        for idx in range(self.finetune_iters):
            batch = next(batches)
            runner.call_hook('before_train_iter', batch_idx=idx,
                             data_batch=batch)
            outputs = runner.model.train_step(
                batch, optim_wrapper=runner.optim_wrapper)
            runner.call_hook('after_train_iter', batch_idx=idx,
                             data_batch=batch, outputs=outputs)
            self._iter += 1
        metrics = runner.val_loop.run()
        cost = model.teacher_cost(model.selector.flags[None]).item()
        return dict(
            mask=[n for n, f in zip(model.levels, flags) if f],
            flags=[int(f) for f in flags],
            metrics={k: float(v) for k, v in metrics.items()
                     if isinstance(v, (int, float))},
            cost=round(cost, 4),
            fitness=float(metrics[self.metric]) - self.cost_weight * cost,
            seconds=round(time.time() - start, 1))


def _rng_state():
    return dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                random=random.getstate(),
                cuda=torch.cuda.get_rng_state_all()
                if torch.cuda.is_available() else None)


def _set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['random'])
    if state['cuda'] is not None:
        torch.cuda.set_rng_state_all(state['cuda'])


@LOOPS.register_module()
class ExhaustiveSearchLoop(MaskSearchLoop):
    """Every one of the 2^L masks, the empty one (the student alone)
    included: the reference the other searchers are measured against."""

    name = 'Exhaustive'

    def search(self):
        for flags in itertools.product((False, True),
                                       repeat=len(self.distiller.levels)):
            self.evaluate(flags)
