"""Which checkpoints may be unpickled in full.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10
calls ``torch.load`` without saying otherwise, so a Runner checkpoint (numpy
values, message-hub state) cannot be resumed at all. Full unpickling runs
arbitrary code, so this module grants it only to checkpoints of the user's
own runs:

* files in a Runner work_dir, i.e. a folder where mmengine's CheckpointHook
  keeps its ``last_checkpoint`` marker: ``--resume`` and ``load_from`` of
  one's own runs work from any entry point (this project's tools, mmdet's
  ``tools/train.py`` with ``custom_imports``, ``mim train``);
* files and folders named with :func:`trust_checkpoints` (the tools trust
  their work_dir, ``--resume PATH`` and the checkpoint given to
  ``tools/test.py``).

Everything else, teacher weights and model-zoo downloads included, loads as
tensors only; a file that holds more than tensors gets one error saying
why and what to do. The rule is mmengine's local checkpoint loader,
registered again when the package is imported; loading is otherwise
unchanged.
"""
import os.path as osp
import pickle

import torch
from mmengine.runner import CheckpointLoader

_trusted = set()
MARKER = 'last_checkpoint'  # written by mmengine's CheckpointHook


def trust_checkpoints(*paths):
    """Allow full unpickling of these files and of everything under these
    folders (``None`` entries are ignored)."""
    _trusted.update(osp.abspath(osp.expanduser(p)) for p in paths if p)


def is_trusted(filename):
    """Whether ``filename`` is a checkpoint of the user's own runs."""
    path = osp.abspath(filename)
    if osp.isfile(osp.join(osp.dirname(path), MARKER)):
        return True
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
            f'{filename} holds more than tensors and is not a checkpoint of '
            f'one of your runs (no mmengine {MARKER!r} beside it), so '
            'pyramidkd_mm does not unpickle it (that could run code). If '
            'you trust it: extract its weights with `python '
            f'tools/model_converters/extract_weights.py {filename} OUT.pth` '
            'and use OUT.pth, or resume it with `tools/train.py CONFIG '
            f'--resume {filename}`. ({str(e).splitlines()[0]})') from None
