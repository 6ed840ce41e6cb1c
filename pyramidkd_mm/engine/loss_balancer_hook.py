"""Loss-balancer updates once per optimiser step under gradient
accumulation."""
from mmengine.hooks import Hook

from ..registry import HOOKS
from .distributed import unwrapped_model


@HOOKS.register_module()
class LossBalancerHook(Hook):
    """Lets a :class:`PyramidDistiller`'s loss balancer (e.g.
    :class:`GradNorm`) update its weights on optimiser steps only.

    With ``optim_wrapper=dict(accumulative_counts=k)`` the Runner makes k
    forward passes per optimiser step, and a balancer that updates in every
    forward would take k steps per window. The distiller cannot ask the optim
    wrapper itself (under DDP the wrapper's ``train_step`` does not go
    through the module's), so before every iteration this hook sets the
    distiller's ``balancer_update`` to ``optim_wrapper.should_sync()``: True
    on the last micro-batch of a window and on the last iteration of
    training, and always True without accumulation. The value is the same on
    every rank, as the balancer's collective calls require.
    """

    def before_run(self, runner):
        model = unwrapped_model(runner)
        if getattr(model, 'balancer', None) is None:
            raise ValueError(
                'LossBalancerHook needs a PyramidDistiller with a loss '
                "balancer, e.g. model=dict(loss_balancer=dict(type='GradNorm')"
                f'); {type(model).__name__} has none')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        # should_sync() counts the backward passes made so far, so here,
        # before this iteration's, it tells whether this one steps.
        unwrapped_model(runner).balancer_update = (
            runner.optim_wrapper.should_sync())
