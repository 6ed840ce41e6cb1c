"""Meta-Weight-Net's bi-level step, run by a Runner hook before every
training iteration.

Why a hook: the step needs a second dataloader (the clean meta set), the
real optimiser's learning rate, the unwrapped module (higher-order gradients
do not go through DDP, pytorch#63812) and a place in the checkpoint for its
own optimiser; a hook has all four. The real step after it is the Runner's
ordinary ``train_step`` (through DDP, AMP and every optimiser wrapper),
which reads the updated weighting net. An optimiser wrapper sees no data and
a model wrapper would replace DDP's.
"""
import warnings
from dataclasses import dataclass

import torch
from mmengine.dist import all_reduce, broadcast
from mmengine.hooks import Hook
from mmengine.registry import OPTIMIZERS
from torch.func import functional_call

from ..models.meta_weight_net import MetaWeightedModel
from ..registry import HOOKS
from .distributed import endless_batches, unwrapped_model


@dataclass
class MetaStep:
    """What one meta step measured."""
    meta_loss: float  # the virtually updated model's loss on the meta batch
    weight_mean: float  # mean weight of the training batch (before update)
    grad_norm: float  # norm of the (rank-averaged) weighting-net gradient
    finite: bool  # False: the update was skipped (non-finite loss/grad)


def meta_weight_step(model, optimizer, train, meta, lr):
    """One update of ``model.weight_net`` (MW-Net's steps 1-3).

    With the model's trainable parameters ``theta`` and the batch's
    per-sample losses ``l_i``: the virtual step
    ``theta' = theta - lr * grad_theta sum_i w(l_i) l_i / N`` keeps its
    graph (second order); the meta loss ``L_meta(theta')`` on the clean
    batch is differentiated to the weighting net through it. Both passes run
    with :func:`torch.func.functional_call` on copies of the buffers, so the
    model's weights and normalisation statistics are untouched and no DDP
    hook fires. The gradient is averaged over ranks before ``optimizer``
    steps (weighting nets stay identical); a non-finite meta loss or
    gradient skips the update on every rank.

    Args:
        model (MetaWeightedModel): the unwrapped model.
        optimizer (torch.optim.Optimizer): over ``model.weight_net``.
        train, meta (dict): preprocessed batches (``inputs``,
            ``data_samples``) of the training and the meta set.
        lr (float): the virtual step's learning rate (the real one's, as
            MW-Net; plain SGD, without momentum or weight decay).

    Returns:
        MetaStep
    """
    net_params = list(model.weight_net.parameters())
    own = {id(p) for p in net_params}
    names, params = zip(*[(n, p) for n, p in model.named_parameters()
                          if p.requires_grad and id(p) not in own])
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    losses = functional_call(model, (dict(zip(names, params)), buffers),
                             (train['inputs'], train['data_samples']),
                             dict(mode='weighted_loss'))
    loss, _ = model.parse_losses(losses)
    grads = torch.autograd.grad(loss, params, create_graph=True,
                                allow_unused=True)
    virtual = {n: p if g is None else p - lr * g
               for n, p, g in zip(names, params, grads)}
    meta_loss, _ = model.parse_losses(functional_call(
        model, (virtual, buffers), (meta['inputs'], meta['data_samples']),
        dict(mode='meta_loss')))
    net_grads = torch.autograd.grad(meta_loss, net_params,
                                    allow_unused=True)
    net_grads = [torch.zeros_like(p) if g is None else g
                 for p, g in zip(net_params, net_grads)]
    for grad in net_grads:
        all_reduce(grad, op='mean')  # a no-op outside distributed training
    norm = torch.cat([g.flatten() for g in net_grads]).norm()
    finite = bool(norm.isfinite()) and bool(meta_loss.isfinite())
    if finite:
        optimizer.zero_grad()
        for p, grad in zip(net_params, net_grads):
            p.grad = grad
        optimizer.step()
        optimizer.zero_grad()
    return MetaStep(meta_loss=meta_loss.item(),
                    weight_mean=losses['sample_weight'].item(),
                    grad_norm=norm.item(), finite=finite)


@HOOKS.register_module()
class MetaWeightHook(Hook):
    """Trains the weighting net of a :class:`MetaWeightedModel` by
    Meta-Weight-Net's bi-level step (:func:`meta_weight_step`) before every
    training iteration, on that iteration's batch and the next batch of the
    clean meta set; the Runner's step then trains the model with the
    updated weights.

    Logged every iteration: ``mwn_meta_loss``, ``mwn_weight`` (the batch's
    mean weight before the update), ``mwn_grad_norm`` and ``mwn_skipped``
    (updates skipped for a non-finite meta loss or gradient, so far). The
    weighting net is in the model's state dict; its optimiser and the skip
    count go into checkpoints, and a resumed run continues the meta batches
    where the checkpoint left them, so ``--resume`` reproduces the
    uninterrupted run. Under DDP every rank steps on its own batches and the
    weighting-net gradients are averaged. Gradient accumulation is refused:
    the virtual step is the optimiser step of one batch.

    Args:
        meta_dataloader (dict): the clean meta set, e.g. the ``meta.txt`` of
            :func:`generate_noisy_digits`; without random augmentation if
            resume must be exact (the train loop's skipped batches draw
            augmentation randomness in a different order).
        meta_optimizer (dict): the weighting net's optimiser (the reference
            code's Adam, lr 1e-3, weight decay 1e-4).
    """

    priority = 'NORMAL'

    def __init__(self,
                 meta_dataloader,
                 meta_optimizer=dict(type='Adam', lr=1e-3,
                                     weight_decay=1e-4)):
        self.meta_dataloader = meta_dataloader
        self.meta_optimizer = meta_optimizer
        self.optimizer = None
        self.skipped = 0

    def before_run(self, runner):
        model = unwrapped_model(runner)
        if not isinstance(model, MetaWeightedModel):
            raise TypeError(
                "MetaWeightHook needs model=dict(type='pyramidkd_mm."
                "MetaWeightedModel', model=...); got "
                f'{type(model).__name__}')
        # built here: a resumed run loads its state after before_run
        self.optimizer = OPTIMIZERS.build(dict(
            self.meta_optimizer, params=model.weight_net.parameters()))
        self._loader = runner.build_dataloader(self.meta_dataloader,
                                               seed=runner.seed)

    def before_train(self, runner):
        # private in mmengine 0.10, as DistillPhaseHook reads it
        counts = getattr(runner.optim_wrapper, '_accumulative_counts', 1)
        if counts > 1:
            raise ValueError(
                f'MetaWeightHook got optim_wrapper accumulative_counts='
                f'{counts}: its virtual step is the optimiser step of one '
                'batch; raise the batch size instead of accumulating')
        for param in unwrapped_model(runner).weight_net.parameters():
            broadcast(param.data)  # one weighting net on every rank
        self._batches = endless_batches(self._loader)
        for _ in range(runner.iter):  # as the train loop skips its batches
            next(self._batches)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrapped_model(runner)
        train = model.data_preprocessor(data_batch, training=True)
        meta = model.data_preprocessor(next(self._batches), training=True)
        lr = runner.optim_wrapper.get_lr()['lr'][0]
        step = meta_weight_step(model, self.optimizer, train, meta, lr)
        if not step.finite:
            self.skipped += 1
            warnings.warn(f'iteration {runner.iter}: non-finite meta loss '
                          f'({step.meta_loss}) or weighting-net gradient; '
                          f'update skipped ({self.skipped} so far)')
        hub = runner.message_hub
        hub.update_scalar('train/mwn_meta_loss', step.meta_loss)
        hub.update_scalar('train/mwn_weight', step.weight_mean)
        hub.update_scalar('train/mwn_grad_norm', step.grad_norm)
        hub.update_scalar('train/mwn_skipped', self.skipped)

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['meta_weight'] = dict(
            optimizer=self.optimizer.state_dict(), skipped=self.skipped)

    def after_load_checkpoint(self, runner, checkpoint):
        if 'meta_weight' in checkpoint:
            state = checkpoint['meta_weight']
            self.optimizer.load_state_dict(state['optimizer'])
            self.skipped = state['skipped']
