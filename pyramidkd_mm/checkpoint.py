"""Which checkpoints may be unpickled in full.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7
calls ``torch.load`` without saying otherwise, so a Runner checkpoint (numpy
values, message-hub state with bound methods) cannot be loaded at all. Full
unpickling runs arbitrary code, so it is granted deliberately: only to the
run's own checkpoints, i.e. files under a trusted work_dir or named
explicitly by the user (``--resume PATH``, the checkpoint given to
``tools/test.py``). Everything else, teacher weights included, loads as
tensors only; a file that is more than weights gets one error saying how to
extract its weights.
"""
import os.path as osp
import pickle

import torch
from mmengine.runner import CheckpointLoader

_trusted = set()


def trust_checkpoints(*paths):
    """Allow full unpickling of these files and of everything under these
    folders (``None`` entries are ignored)."""
    _trusted.update(osp.abspath(osp.expanduser(p)) for p in paths if p)


def is_trusted(filename):
    path = osp.abspath(filename)
    return any(path == t or path.startswith(t.rstrip('/') + '/')
               for t in _trusted)


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename, map_location):
    """mmengine's local loader, with the trust rule above."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if is_trusted(filename):
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f'{filename} holds more than weights, so it is not unpickled '
            'outside its own run. Extract its weights with `python '
            f'tools/model_converters/extract_weights.py {filename} OUT.pth` '
            'and use OUT.pth, or resume it with `--resume`. '
            f'({str(e).splitlines()[0]})') from None
