"""Meta-learning of a policy's initialisation: MAML (Finn et al., 2017), its
first-order approximation (FOMAML) and Reptile (Nichol et al., 2018).

The meta-parameters are the policy's own parameters. Adaptation never
touches them: :meth:`MAMLTrainer.adapt` returns a new dict of parameters,
evaluated with ``torch.func.functional_call`` (the shape of learn2learn's
``clone()``/``adapt()``). For a meta-batch of tasks with support set S and
query set Q, with ``theta'`` the parameters after ``num_inner_steps`` SGD
steps of size ``inner_lr`` on S:

- ``maml``: the gradient of ``L_Q(theta'(theta))`` with respect to theta,
  through the inner steps (second order, ``create_graph=True``);
- ``fomaml``: the gradient of ``L_Q`` at ``theta'``, taken as the gradient
  at theta (the inner steps' Jacobian is dropped);
- ``reptile``: ``theta - theta'`` (so an SGD outer step of size epsilon
  moves theta towards theta'); Q only reports the adapted loss.

The meta-gradient is averaged over the tasks, then over ranks, and the
outer optimiser (Adam with ``outer_lr`` unless given) steps on the policy
itself. Call it on the unwrapped policy: higher-order gradients through
DDP are broken in PyTorch (pytorch#63812, #47562), and the all-reduce keeps
the meta-parameters identical on all ranks.

The default loss, inner and outer, is PPO's clipped surrogate with
importance ratios (:class:`PolicyGradientLoss`); see there for why.
"""
import copy

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from torch.func import functional_call

from .policy_gradient_loss import PolicyGradientLoss
from .ppo import _world_size

ALGORITHMS = ('maml', 'fomaml', 'reptile')


class MAMLTrainer:
    """Meta-updates and fast adaptation of a policy.

    Args:
        policy (nn.Module): the meta-policy (unwrapped). Its ``forward`` is
            what the loss calls: for :class:`PolicyNetwork` it is
            ``evaluate_actions``.
        inner_lr (float): SGD step size of the inner loop.
        outer_lr (float): learning rate of the default outer optimiser
            (Adam); for Reptile, with an SGD outer optimiser, the
            interpolation step size epsilon.
        num_inner_steps (int): inner SGD steps, each on the whole support
            set.
        algorithm (str): ``'maml'``, ``'fomaml'`` or ``'reptile'``.
        loss (callable, optional): ``loss(policy_fn, data) -> Tensor``;
            :class:`PolicyGradientLoss` by default. ``policy_fn(*args)`` runs
            the policy's forward with the parameters being evaluated.
        inner_params (Sequence[str], optional): name prefixes of the
            parameters the inner loop adapts (e.g. ``('core.', )`` to keep a
            task's input adapter fixed there); all by default. All
            parameters get a meta-gradient (none from Reptile for the
            others, which its inner loop leaves where they are).
        max_grad_norm (float, optional): clip the meta-gradient's norm.
        inner_max_grad_norm (float, optional): clip each inner gradient's
            norm (differentiably), as PPO clips its steps; for data whose
            returns are not normalised, where plain SGD on the value loss
            can diverge. None keeps the algorithms' plain inner SGD.
        optimizer (torch.optim.Optimizer, optional): the outer optimiser.
    """

    def __init__(self, policy, inner_lr=1e-3, outer_lr=1e-4,
                 num_inner_steps=5, algorithm='maml', loss=None,
                 inner_params=None, max_grad_norm=None,
                 inner_max_grad_norm=None, optimizer=None):
        if algorithm not in ALGORITHMS:
            raise ValueError(f'algorithm {algorithm!r} is not one of '
                             f'{ALGORITHMS}')
        if num_inner_steps < 1:
            raise ValueError(f'num_inner_steps must be at least 1, got '
                             f'{num_inner_steps}')
        self.policy = policy
        self.inner_lr = inner_lr
        self.num_inner_steps = num_inner_steps
        self.algorithm = algorithm
        self.loss = loss or PolicyGradientLoss()
        names = [n for n, p in policy.named_parameters() if p.requires_grad]
        self.inner_names = [n for n in names if inner_params is None
                            or n.startswith(tuple(inner_params))]
        if not self.inner_names:
            raise ValueError(f'inner_params {inner_params} match no '
                             f'parameter of the policy, e.g. {names[:3]}')
        self.max_grad_norm = max_grad_norm
        self.inner_max_grad_norm = inner_max_grad_norm
        self.optimizer = optimizer or torch.optim.Adam(
            [p for p in policy.parameters() if p.requires_grad], lr=outer_lr)
        self.nonfinite_steps = 0

    def meta_parameters(self):
        """The policy's trainable parameters by name (the tensors
        themselves)."""
        return {n: p for n, p in self.policy.named_parameters()
                if p.requires_grad}

    def functional(self, params):
        """The policy's forward evaluated with ``params``."""
        return lambda *args: functional_call(self.policy, params, args)

    def adapt(self, support, params=None, num_steps=None,
              create_graph=False):
        """Inner-loop SGD on ``support``; the meta-parameters are untouched.

        Args:
            support: the loss's data, e.g. a :class:`Rollout`.
            params (dict, optional): where to start; the meta-parameters by
                default.
            num_steps (int, optional): defaults to ``num_inner_steps``.
            create_graph (bool): keep the graph of the steps, so the result
                can be differentiated with respect to ``params`` (MAML).
                Otherwise the result is detached, with ``requires_grad``.

        Returns:
            dict[str, Tensor]: the adapted parameters by name.
        """
        params, loss = self._adapt(support, params, num_steps, create_graph)
        if params is None:
            raise FloatingPointError(f'non-finite inner loss {loss.item()}')
        return params

    def _adapt(self, support, params, num_steps, create_graph):
        """:meth:`adapt`, also returning the loss before the first step;
        no parameters (None) once a loss is not finite."""
        params = dict(self.meta_parameters() if params is None else params)
        if not create_graph:
            params = {n: p.detach().requires_grad_() for n, p in
                      params.items()}
        first = None
        for _ in range(num_steps or self.num_inner_steps):
            loss = self.loss(self.functional(params), support)
            first = loss.detach() if first is None else first
            if not torch.isfinite(loss):
                return None, loss.detach()
            grads = torch.autograd.grad(
                loss, [params[n] for n in self.inner_names],
                create_graph=create_graph, allow_unused=True)
            if self.inner_max_grad_norm is not None:
                grads = _clip(grads, self.inner_max_grad_norm)
            for name, grad in zip(self.inner_names, grads):
                if grad is not None:
                    step = params[name] - self.inner_lr * grad
                    params[name] = (step if create_graph
                                    else step.detach().requires_grad_())
        return params, first

    def adapted_policy(self, params):
        """A copy of the policy holding ``params`` (detached): an adapted
        policy to act with."""
        policy = copy.deepcopy(self.policy)
        with torch.no_grad():
            for name, param in policy.named_parameters():
                if name in params:
                    param.copy_(params[name])
        return policy

    def fast_adapt(self, support, num_steps=None, name=None):
        """Adapts to a new task without touching the meta-parameters.

        Args:
            support (Rollout | Callable): the task's data, or
                ``collect(policy)`` called with the meta-policy.
            num_steps (int, optional): defaults to ``num_inner_steps``.
            name (str, optional): the task, for a policy with per-task
                inputs.

        Returns:
            nn.Module: a copy of the policy with the adapted weights.
        """
        self._select_task(name)
        support = _collect(support, self.policy)
        return self.adapted_policy(self.adapt(support, num_steps=num_steps))

    def meta_update(self, tasks):
        """One outer step over a meta-batch of tasks.

        Under ``torch.distributed`` every rank passes its own tasks (the same
        number of calls on all ranks); the meta-gradients are averaged over
        ranks, so the meta-parameters stay identical. A non-finite
        meta-gradient skips the step on every rank, with a warning, and is
        counted in ``nonfinite_steps``.

        Args:
            tasks (Sequence[MetaTask]): the meta-batch.

        Returns:
            dict[str, float]: ``support_loss`` (before adaptation) and
            ``query_loss`` (after it), averaged over the tasks, and the
            meta-gradient's norm ``grad_norm``.
        """
        tasks = list(tasks)
        if not tasks:
            raise ValueError('meta_update needs at least one task')
        meta = self.meta_parameters()
        total = {n: torch.zeros_like(p) for n, p in meta.items()}
        support_losses, query_losses = [], []
        for task in tasks:
            grads, support_loss, query_loss = self._task_gradient(task, meta)
            for name, grad in grads.items():
                if grad is not None:
                    total[name] += grad / len(tasks)
            support_losses.append(support_loss)
            query_losses.append(query_loss)
        flat = torch.cat([g.flatten() for g in total.values()] + [
            torch.stack(support_losses + query_losses).mean(0, True)])
        world_size = _world_size()
        if world_size > 1:
            dist.all_reduce(flat)
            flat /= world_size
        grad_norm = flat[:-1].norm()
        stats = dict(support_loss=torch.stack(support_losses).mean().item(),
                     query_loss=torch.stack(query_losses).mean().item(),
                     grad_norm=grad_norm.item())
        if not torch.isfinite(flat).all():
            self.nonfinite_steps += 1
            print_log(f'MAMLTrainer: non-finite meta-gradient or loss, step '
                      f'skipped ({self.nonfinite_steps} so far)',
                      logger='current', level=30)
            return stats
        offset = 0
        for name, param in meta.items():
            param.grad = flat[offset:offset + param.numel()].view_as(param)
            offset += param.numel()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(meta.values(), self.max_grad_norm)
        self.optimizer.step()
        # No stale gradients for an optimiser that also holds the policy.
        self.optimizer.zero_grad(set_to_none=True)
        return stats

    def _task_gradient(self, task, meta):
        """Meta-gradient of one task; returns it (by name, None where the
        loss does not reach a parameter) and the support and query loss."""
        self._select_task(task.name)
        support = _collect(task.support, self.policy)
        second_order = self.algorithm == 'maml'
        adapted, support_loss = self._adapt(support, meta, None,
                                            second_order)
        if adapted is None:  # poisons the meta-gradient: the step is skipped
            nan = support_loss.new_tensor(float('nan'))
            return ({n: torch.full_like(p, float('nan'))
                     for n, p in meta.items()}, nan, nan)
        if callable(task.query):
            query = task.query(self.adapted_policy(adapted))
        else:
            query = task.query
        if self.algorithm == 'reptile':
            with torch.no_grad():
                query_loss = self.loss(self.functional(adapted), query)
            return ({n: meta[n].detach() - adapted[n].detach()
                     for n in meta}, support_loss, query_loss)
        query_loss = self.loss(self.functional(adapted), query)
        wrt = meta if second_order else adapted
        grads = torch.autograd.grad(query_loss, [wrt[n] for n in meta],
                                    allow_unused=True)
        return dict(zip(meta, grads)), support_loss, query_loss.detach()

    def _select_task(self, name):
        if name is None:
            return
        if not hasattr(self.policy, 'task'):
            raise ValueError(
                f'task {name!r} is named but {type(self.policy).__name__} '
                'has no per-task input; use TaskAdapterPolicy or leave '
                'MetaTask.name None')
        self.policy.task = name

    def sync_policy(self):
        """Broadcasts rank 0's meta-parameters; a no-op on one process."""
        if _world_size() > 1:
            for param in self.meta_parameters().values():
                dist.broadcast(param.data, src=0)

    def state_dict(self):
        """The outer optimiser and the skipped-step count; the
        meta-parameters are saved with the model that owns the policy."""
        return dict(optimizer=self.optimizer.state_dict(),
                    nonfinite_steps=self.nonfinite_steps)

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict['optimizer'])
        self.nonfinite_steps = state_dict['nonfinite_steps']


def _clip(grads, max_norm):
    """``grads`` scaled to a global norm of at most ``max_norm`` (a
    differentiable ``clip_grad_norm_``)."""
    norm = torch.stack([g.norm() for g in grads if g is not None]).norm()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return [None if g is None else g * scale for g in grads]


def _collect(data, policy):
    """``data`` itself, or what the callable collects with ``policy``."""
    return data(policy) if callable(data) else data
