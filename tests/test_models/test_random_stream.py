"""RandomStream, and the selectors that draw from it: their choices leave
torch's global generator to the student."""
import pytest
import torch

from pyramidkd_mm.models.random_stream import RandomStream
from test_distiller import batch, make
from test_rl_selector import RL


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a GPU')
DEVICES = ['cpu', pytest.param('cuda', marks=needs_cuda)]


@pytest.mark.parametrize('device', DEVICES)
def test_a_stream_keeps_its_numbers_apart_and_resumes(device):
    torch.manual_seed(0)
    global_next = torch.rand(4, device=device)  # on cuda: CUDA in use now
    torch.manual_seed(0)
    stream = RandomStream(0)
    with stream:
        first = torch.rand(4, device=device)
    # the global untouched
    assert torch.equal(torch.rand(4, device=device), global_next)
    assert not torch.equal(first, global_next)  # not the weights' numbers
    with RandomStream(0):  # the seed's stream
        assert torch.equal(torch.rand(4, device=device), first)
    resumed = RandomStream(1)
    resumed.set_state(stream.get_state())  # the CPU's and the device's
    assert (resumed.cuda is not None) == (device == 'cuda')
    with stream:
        second = torch.rand(4, device=device)
    with resumed:
        assert torch.equal(torch.rand(4, device=device), second)
    assert not torch.equal(second, first)
    with stream:
        with pytest.raises(RuntimeError, match='already in use'):
            stream.__enter__()


def train(toy_teacher, selector, steps=5, device='cpu'):
    """The global generators' state (the CPU's, then the GPU's on CUDA) after
    ``steps`` training steps (two PPO updates of RL-KD, whose rollouts are 2
    steps)."""
    torch.manual_seed(0)
    model = make(toy_teacher, selector=selector).train().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    masks = []
    model.selector.register_forward_hook(lambda m, a, mask: masks.append(
        mask.clone()))
    for seed in range(steps):
        losses = model.loss(*(t.to(device) for t in batch(8, seed=seed)))
        optimizer.zero_grad()
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        optimizer.step()
        if model.selector.needs_outcome:
            model.selector.learn(model.outcome())
    state = [torch.get_rng_state()] + (
        [torch.cuda.get_rng_state()] if device == 'cuda' else [])
    return torch.cat(state), torch.stack(masks).cpu()


@pytest.mark.parametrize('selector', [
    dict(type='RandomSelector', budget=0.5),
    dict(type='RandomSelector', budget=0.5, mode='levels'),
    dict(type='UncertaintySelector', budget=0.3), RL])
@pytest.mark.parametrize('device', DEVICES)
def test_selectors_leave_the_global_generator_to_the_student(
        toy_teacher, selector, device):
    uniform, _ = train(toy_teacher, dict(type='UniformSelector'),
                       device=device)
    state, masks = train(toy_teacher, selector, device=device)
    assert torch.equal(state, uniform)
    assert 0 < masks.float().mean() < 1  # it did choose, at random
    _, again = train(toy_teacher, selector, device=device)  # the seed fixes
    assert torch.equal(again, masks)  # the choice


@pytest.mark.parametrize('selector', [
    dict(type='RandomSelector', budget=0.5),
    dict(type='UncertaintySelector', budget=0.3), RL])
def test_another_stream_seed_draws_other_choices_for_the_same_student(
        toy_teacher, selector):
    _, masks = train(toy_teacher, selector)
    _, same = train(toy_teacher, dict(selector, stream_seed=0))  # the run's
    assert torch.equal(same, masks)
    state, other = train(toy_teacher, dict(selector, stream_seed=100))
    assert not torch.equal(other, masks)  # an A/A control's other choices
    uniform, _ = train(toy_teacher, dict(type='UniformSelector'))
    assert torch.equal(state, uniform)  # beside the same student
