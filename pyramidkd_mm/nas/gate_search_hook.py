"""Runs a gate search (DARTS-LS, GDAS-LS) alongside the Runner's training."""
import time

import torch
from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.registry import OPTIMIZERS

from ..engine import endless_batches, unwrapped_model
from ..registry import HOOKS
from .darts import Architect, DARTSSelector
from .gdas import GDASSelector
from .result import derive_mask, write_search_result


@HOOKS.register_module()
class GateSearchHook(Hook):
    """Bi-level gate search in the Runner: before every training iteration
    (the student's step on the training split) the gates take one
    :class:`Architect` step on a batch of the held-out split.

    For a :class:`GDASSelector` it also anneals the temperature linearly from
    ``temperature[0]`` to ``temperature[1]`` over the run and draws the
    iteration's sample. Gate probabilities, the held-out loss and the size of
    the gate gradient are logged every iteration as ``gate_<level>``,
    ``search_val_loss`` and ``search_hypergrad_norm``, and each gate's
    margin from ``threshold`` as ``gate_margin_<level>`` (a gate near the
    threshold has not decided). When training ends it writes the mask
    (:func:`derive_mask`), the margins and the mask's cost, the last validation
    metrics of the search-trained student and the search time
    (:func:`write_search_result`). The gates are in the model's state
    dict; the gate optimiser and the time spent so far go into checkpoints,
    so ``--resume`` continues the search (its held-out batches start over:
    the loader's position is not saved).

    Args:
        search_dataloader (dict): the held-out split, with a training
            pipeline (the gates descend its task loss).
        arch_optimizer (dict): optimiser of the gate logits (DARTS: Adam,
            lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; larger lrs suit
            the few logits here).
        unrolled (bool): second-order DARTS (see :class:`Architect`).
        cost_weight (float): price of the teacher compute in held-out loss
            units (see :class:`Architect`); 0 searches for accuracy alone.
        temperature (tuple[float, float]): GDAS's start and end temperature.
        budget (float, optional): relative teacher compute the mask may cost
            (top levels under the budget); without it, the levels whose
            probability exceeds ``threshold``.
        threshold (float): see ``budget``.
        base_config (str, optional): the KD config the written
            ``fixed_mask.py`` extends.
    """

    priority = 'NORMAL'

    def __init__(self,
                 search_dataloader,
                 arch_optimizer=dict(type='Adam', lr=3e-3, betas=(0.5, 0.999),
                                     weight_decay=1e-3),
                 unrolled=True,
                 cost_weight=0.0,
                 temperature=(10.0, 0.1),
                 budget=None,
                 threshold=0.5,
                 base_config=None):
        self.search_dataloader = search_dataloader
        self.arch_optimizer = arch_optimizer
        self.unrolled = unrolled
        self.cost_weight = cost_weight
        self.temperature = temperature
        self.budget = budget
        self.threshold = threshold
        self.base_config = base_config
        self.architect = None
        self.seconds = 0.0  # search time of earlier (resumed) runs
        self.metrics = {}

    def before_run(self, runner):
        model = unwrapped_model(runner)
        selector = getattr(model, 'selector', None)
        if not isinstance(selector, DARTSSelector):
            raise TypeError(
                'GateSearchHook needs a PyramidDistiller with a gate selector '
                "(dict(type='DARTSSelector') or 'GDASSelector'); got "
                f'{type(selector).__name__}')
        if model.balancer is not None:
            raise ValueError('a gate search weights the levels itself; '
                             'remove loss_balancer from the model')
        for param in selector.parameters():
            broadcast(param.data)  # one set of gates on every rank
        optimizer = OPTIMIZERS.build(
            dict(self.arch_optimizer, params=list(selector.parameters())))
        self.architect = Architect(model, optimizer, self.unrolled,
                                   self.cost_weight)
        self._loader = runner.build_dataloader(self.search_dataloader,
                                               seed=runner.seed)

    def before_train(self, runner):
        self._held_out = endless_batches(self._loader)
        self._start = time.time()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrapped_model(runner)
        selector = model.selector
        if isinstance(selector, GDASSelector):
            start, end = self.temperature
            progress = runner.iter / max(runner.max_iters - 1, 1)
            selector.temperature = start - (start - end) * progress
            selector.resample()
            runner.message_hub.update_scalar('train/gdas_tau',
                                             selector.temperature)
        train = model.data_preprocessor(data_batch, training=True)
        held_out = model.data_preprocessor(next(self._held_out),
                                           training=True)
        xi = runner.optim_wrapper.get_lr()['lr'][0]
        stats = self.architect.step(train, held_out, xi)
        for key, value in stats.items():
            runner.message_hub.update_scalar(f'train/search_{key}', value)
        for name, prob in zip(model.levels, selector.probabilities()):
            runner.message_hub.update_scalar(f'train/gate_{name}',
                                             prob.item())
            runner.message_hub.update_scalar(
                f'train/gate_margin_{name}', prob.item() - self.threshold)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})

    def after_train(self, runner):
        model = unwrapped_model(runner)
        probs = model.selector.probabilities()
        flags = derive_mask(probs, model.teacher_cost, self.budget,
                            self.threshold)
        cost = model.teacher_cost(
            torch.tensor(flags, device=probs.device)[None])
        name = ('GDAS-LS' if isinstance(model.selector, GDASSelector) else
                f"DARTS-LS ({'second' if self.unrolled else 'first'} order)")
        result = write_search_result(
            runner.work_dir, name, model.levels, flags, cost.item(),
            dict(self.metrics, source='the search-trained student on the '
                 'val split'),
            self.seconds + time.time() - self._start, self.base_config,
            probabilities=[round(p, 4) for p in probs.tolist()],
            margins=[round(p - self.threshold, 4) for p in probs.tolist()])
        runner.logger.info(f'{name} chose {result["mask"]} (probabilities '
                           f'{result["probabilities"]}, margins from '
                           f'{self.threshold}: {result["margins"]}, distill '
                           f'cost {result["distill_cost"]})')

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['gate_search'] = dict(
            optimizer=self.architect.optimizer.state_dict(),
            seconds=self.seconds + time.time() - self._start)

    def after_load_checkpoint(self, runner, checkpoint):
        if 'gate_search' in checkpoint:
            state = checkpoint['gate_search']
            self.architect.optimizer.load_state_dict(state['optimizer'])
            self.seconds = state['seconds']
