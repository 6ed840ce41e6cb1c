"""MAMLTrainer against the algorithms' definitions, computed by hand with
``functional_call`` (and by finite differences) on tiny models."""
import gc
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from pyramidkd_mm.rl import MAMLTrainer, MetaTask, PolicyNetwork, Rollout


def mse(model_fn, data):
    x, y = data
    return F.mse_loss(model_fn(x), y)


def tiny_model(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 5), nn.Tanh(),
                         nn.Linear(5, 1)).to(dtype)


def regression_task(seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)

    def data():
        x = torch.randn(6, 2, generator=g, dtype=dtype)
        return x, (x * torch.tensor([1.5, -2.0], dtype=dtype)).sum(
            1, keepdim=True).sin() + seed
    return MetaTask(support=data(), query=data())


def outer_step(model, algorithm, tasks, inner_lr=0.1, steps=2, lr=1.0,
               **kwargs):
    """Runs one meta-update with a plain SGD outer step of size ``lr``;
    returns the meta-gradient it applied, by name."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = MAMLTrainer(
        model, inner_lr=inner_lr, num_inner_steps=steps, algorithm=algorithm,
        loss=mse, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        **kwargs)
    trainer.meta_update(tasks)
    return {n: (before[n] - p.detach()) / lr
            for n, p in model.named_parameters()}


def manual_adapt(model, params, data, inner_lr, steps, create_graph):
    for _ in range(steps):
        loss = mse(lambda x: functional_call(model, params, (x, )), data)
        grads = torch.autograd.grad(loss, list(params.values()),
                                    create_graph=create_graph)
        params = {n: p - inner_lr * g
                  for (n, p), g in zip(params.items(), grads)}
    return params


def maml_objective(model, params, task, inner_lr=0.1, steps=2,
                   create_graph=True):
    adapted = manual_adapt(model, params, task.support, inner_lr, steps,
                           create_graph)
    return mse(lambda x: functional_call(model, adapted, (x, )), task.query)


def test_maml_meta_gradient_is_exact():
    model = tiny_model()
    tasks = [regression_task(1), regression_task(2)]
    params = {n: p.detach().clone().requires_grad_()
              for n, p in model.named_parameters()}
    objective = sum(maml_objective(model, params, t) for t in tasks) / 2
    expected = torch.autograd.grad(objective, list(params.values()))
    applied = outer_step(model, 'maml', tasks)
    for (name, got), want in zip(applied.items(), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6,
                                   msg=name)
    # the second-order terms matter here: FOMAML's gradient is another one
    first_order = outer_step(tiny_model(), 'fomaml', tasks)
    gap = sum((applied[n] - first_order[n]).norm() for n in applied)
    assert gap > 0.05 * sum(g.norm() for g in applied.values())


def test_maml_meta_gradient_matches_finite_differences():
    model = tiny_model(torch.float64)
    task = regression_task(3, torch.float64)
    applied = outer_step(model, 'maml', [task])
    base = {n: p.detach().clone() for n, p in tiny_model(
        torch.float64).named_parameters()}
    eps = 1e-6
    for name in ('0.weight', '2.bias'):
        for index in range(min(3, base[name].numel())):
            shifted = []
            for sign in (1, -1):
                params = {n: p.clone().requires_grad_()
                          for n, p in base.items()}
                with torch.no_grad():
                    params[name].view(-1)[index] += sign * eps
                shifted.append(maml_objective(model, params, task).item())
            numeric = (shifted[0] - shifted[1]) / (2 * eps)
            assert applied[name].view(-1)[index].item() == pytest.approx(
                numeric, rel=1e-5, abs=1e-8)


def test_fomaml_is_the_query_gradient_at_the_adapted_parameters():
    model = tiny_model()
    tasks = [regression_task(1), regression_task(2)]
    params = {n: p.detach().clone().requires_grad_()
              for n, p in model.named_parameters()}
    expected = []
    for task in tasks:
        adapted = {n: p.detach().requires_grad_() for n, p in manual_adapt(
            model, params, task.support, 0.1, 2, False).items()}
        loss = mse(lambda x: functional_call(model, adapted, (x, )),
                   task.query)
        expected.append(torch.autograd.grad(loss, list(adapted.values())))
    applied = outer_step(model, 'fomaml', tasks)
    for i, (name, got) in enumerate(applied.items()):
        torch.testing.assert_close(
            got, (expected[0][i] + expected[1][i]) / 2, msg=name)


def test_reptile_moves_towards_the_adapted_parameters():
    model = tiny_model()
    tasks = [regression_task(1), regression_task(2)]
    theta = {n: p.detach().clone().requires_grad_()
             for n, p in model.named_parameters()}
    adapted = [manual_adapt(model, theta, t.support, 0.1, 3, False)
               for t in tasks]
    epsilon = 0.3
    outer_step(model, 'reptile', tasks, steps=3, lr=epsilon)
    for name, param in model.named_parameters():
        mean_adapted = (adapted[0][name] + adapted[1][name]) / 2
        want = theta[name] + epsilon * (mean_adapted - theta[name])
        torch.testing.assert_close(param.detach(), want.detach(), msg=name)


def test_fast_adapt_leaves_the_meta_parameters_untouched():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = MAMLTrainer(model, inner_lr=0.1, num_inner_steps=3, loss=mse)
    task = regression_task(1)
    adapted = trainer.fast_adapt(task.support)
    for param, saved in zip(model.parameters(), before):
        assert torch.equal(param, saved)
        assert param.grad is None
    want = manual_adapt(model, dict(model.named_parameters()), task.support,
                        0.1, 3, False)
    for name, param in adapted.named_parameters():
        torch.testing.assert_close(param, want[name].detach())
    assert mse(adapted, task.support) < 0.7 * mse(model, task.support)


def test_inner_params_restricts_what_adapts():
    model = tiny_model()
    trainer = MAMLTrainer(model, inner_lr=0.1, loss=mse, inner_params=('2.',))
    adapted = trainer.adapt(regression_task(1).support)
    assert torch.equal(adapted['0.weight'], model[0].weight)
    assert not torch.equal(adapted['2.weight'], model[2].weight)
    # FOMAML still gives the fixed layer a (direct) meta-gradient
    applied = outer_step(model, 'fomaml', [regression_task(1)],
                         inner_params=('2.', ))
    assert applied['0.weight'].abs().sum() > 0
    with pytest.raises(ValueError, match='match no parameter'):
        MAMLTrainer(model, inner_params=('head.', ))


def policy_rollout(policy, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(size, policy.state_dim, generator=g)
    action, log_prob, value = policy.select_action(states)
    reward = action[:, 0] - action[:, 1] + 0.1 * states[:, 0]
    return Rollout(states, action, log_prob, reward - value, reward)


@pytest.mark.parametrize('recurrent', [False, True])
def test_maml_on_the_policy_matches_manual_second_order(recurrent):
    torch.manual_seed(0)
    policy = PolicyNetwork(6, num_levels=3, hidden_dim=8, recurrent=recurrent)
    task = MetaTask(support=policy_rollout(policy, 1),
                    query=policy_rollout(policy, 2))
    trainer = MAMLTrainer(policy, inner_lr=0.5, num_inner_steps=2,
                          optimizer=torch.optim.SGD(policy.parameters(),
                                                    lr=1.0))
    params = {n: p.detach().clone().requires_grad_()
              for n, p in policy.named_parameters()}
    adapted = params
    for _ in range(2):
        loss = trainer.loss(trainer.functional(adapted), task.support)
        grads = torch.autograd.grad(loss, list(adapted.values()),
                                    create_graph=True, allow_unused=True)
        adapted = {n: p if g is None else p - 0.5 * g
                   for (n, p), g in zip(adapted.items(), grads)}
    query = trainer.loss(trainer.functional(adapted), task.query)
    expected = torch.autograd.grad(query, list(params.values()),
                                   allow_unused=True)
    stats = trainer.meta_update([task])
    assert stats['query_loss'] == pytest.approx(query.item(), rel=1e-5)
    for (name, param), want in zip(policy.named_parameters(), expected):
        want = torch.zeros_like(param) if want is None else want
        torch.testing.assert_close(params[name] - param.detach(), want,
                                   rtol=1e-4, atol=1e-6, msg=name)


def test_query_callable_collects_with_the_adapted_policy():
    torch.manual_seed(0)
    policy = PolicyNetwork(6, num_levels=3, hidden_dim=8)
    seen = []

    def query(adapted):
        seen.append(adapted)
        return policy_rollout(adapted, 2)

    trainer = MAMLTrainer(policy, inner_lr=0.5, num_inner_steps=1,
                          algorithm='fomaml')
    support = policy_rollout(policy, 1)
    want = trainer.adapt(support)
    trainer.meta_update([MetaTask(support=support, query=query)])
    assert len(seen) == 1 and seen[0] is not policy
    for name, param in seen[0].named_parameters():
        torch.testing.assert_close(param, want[name].detach())
    assert not torch.equal(want['logit_head.weight'],
                           policy.logit_head.weight)


def test_non_finite_meta_gradient_skips_the_step():
    torch.manual_seed(0)
    policy = PolicyNetwork(6, num_levels=3, hidden_dim=8)
    bad = policy_rollout(policy, 1)
    bad.advantages[0] = float('nan')
    trainer = MAMLTrainer(policy, algorithm='fomaml', num_inner_steps=1)
    before = torch.nn.utils.parameters_to_vector(policy.parameters()).clone()
    trainer.meta_update([MetaTask(bad, policy_rollout(policy, 2))])
    assert trainer.nonfinite_steps == 1
    assert torch.equal(
        torch.nn.utils.parameters_to_vector(policy.parameters()), before)
    with pytest.raises(ValueError, match='per-task input'):
        trainer.meta_update([MetaTask(bad, bad, name='det')])
    with pytest.raises(ValueError, match='algorithm'):
        MAMLTrainer(policy, algorithm='maml2')


def _ddp_worker(rank, work_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{work_dir}/init',
                            rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # different starts: sync_policy fixes them
        model = tiny_model()
        if rank == 1:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
        trainer = MAMLTrainer(model, inner_lr=0.1, num_inner_steps=2,
                              loss=mse)
        trainer.sync_policy()
        for step in range(3):  # each rank its own tasks
            trainer.meta_update([regression_task(10 * step + rank)])
        flat = torch.nn.utils.parameters_to_vector(model.parameters())
        torch.save(flat.detach(), f'{work_dir}/rank{rank}.pth')
    finally:
        gc.collect()
        dist.destroy_process_group()


def test_two_ranks_end_with_identical_meta_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    mp.start_processes(_ddp_worker, args=(str(tmp_path), ), nprocs=2,
                       start_method='spawn')
    results = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    # the same as one process meta-training on both ranks' tasks at once
    model = tiny_model()
    trainer = MAMLTrainer(model, inner_lr=0.1, num_inner_steps=2, loss=mse)
    for step in range(3):
        trainer.meta_update([regression_task(10 * step),
                             regression_task(10 * step + 1)])
    single = torch.nn.utils.parameters_to_vector(model.parameters())
    assert torch.equal(results[0], results[1])
    torch.testing.assert_close(results[0], single.detach())
    assert not torch.equal(single, torch.nn.utils.parameters_to_vector(
        tiny_model().parameters()))


def test_inner_steps_can_be_clipped_like_ppo_steps():
    model = tiny_model()
    task = regression_task(5)
    task = MetaTask((task.support[0], 100 * task.support[1]), task.query)
    meta = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = MAMLTrainer(model, inner_lr=0.1, num_inner_steps=1, loss=mse,
                          inner_max_grad_norm=0.5)
    moved = torch.cat([(p - meta[n]).flatten() for n, p in
                       trainer.adapt(task.support).items()]).norm()
    assert moved.item() == pytest.approx(0.1 * 0.5, rel=1e-4)
    # the clip is differentiable: MAML's meta-gradient stays finite
    stats = trainer.meta_update([task])
    assert trainer.nonfinite_steps == 0 and stats['grad_norm'] > 0
