"""A selector's own stream of torch random numbers.

The student draws from torch's global generator too: dropout in a decode
head, mmdet's proposal and RoI samplers. A selector that drew its choices
from the same generator would shift every later draw of the student, so two
selectors of one seed would train on other dropout masks and other RoIs
besides their choices. With a stream of its own, every selector of a seed
leaves the student the random numbers of uniform KD, and a comparison
differs in the selection only.
"""
import torch

# Mixed into the run's seed so that the stream is not the sequence that
# initialised the weights.
_SALT = 0x5E1EC7
_CPU_STATE_BYTES = torch.Generator().get_state().numel()


class RandomStream:
    """Torch random numbers of their own, used as a context manager:
    ``with stream:`` runs its block on this stream's generator state (the
    CPU's and, once CUDA is in use, the current device's) and then gives the
    global generators their state back.

    Args:
        seed (int): the run's seed (``torch.initial_seed()`` after mmengine's
            ``set_random_seed``), so that the stream is the same on every
            rank and in every run of the seed.
    """

    def __init__(self, seed):
        self.seed = (seed ^ _SALT) % 2**63
        self.cpu = torch.Generator().manual_seed(self.seed).get_state()
        self.cuda = None  # the current device's, from its first use
        self._fork = None
        self._on_cuda = False

    def __enter__(self):
        if self._fork is not None:
            raise RuntimeError('RandomStream is already in use')
        self._on_cuda = torch.cuda.is_initialized()
        self._fork = torch.random.fork_rng(
            devices=[torch.cuda.current_device()] if self._on_cuda else [])
        self._fork.__enter__()
        torch.set_rng_state(self.cpu)
        if self._on_cuda:
            if self.cuda is None:
                torch.cuda.manual_seed(self.seed)
            else:
                torch.cuda.set_rng_state(self.cuda)
        return self

    def __exit__(self, *exc):
        self.cpu = torch.get_rng_state()
        if self._on_cuda:
            self.cuda = torch.cuda.get_rng_state()
        fork, self._fork = self._fork, None
        return fork.__exit__(*exc)

    def get_state(self):
        """The stream's state in one CPU byte tensor (the CPU generator's,
        then the CUDA one's once used), as ``torch.Generator.get_state``:
        the Runner broadcasts every entry of the model's state dict as one
        tensor."""
        return torch.cat([self.cpu] + ([] if self.cuda is None
                                       else [self.cuda]))

    def set_state(self, state):
        state = state.cpu()
        self.cpu = state[:_CPU_STATE_BYTES].clone()
        self.cuda = state[_CPU_STATE_BYTES:].clone() \
            if len(state) > _CPU_STATE_BYTES else None
