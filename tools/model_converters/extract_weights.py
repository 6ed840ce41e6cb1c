"""Extract plain weights from a Runner checkpoint.

A Runner checkpoint also holds optimiser, message-hub and numpy state, so it
only loads with full unpickling. This writes a weights-only file that loads
with ``torch.load(weights_only=True)``: use it for a teacher, or, with
``--prefix student.``, to turn a distillation checkpoint into a checkpoint of
the plain toolbox student model.

    python tools/model_converters/extract_weights.py IN.pth OUT.pth
        [--prefix student.]
"""
import argparse

import torch


def extract(src, dst, prefix=''):
    """Write the ``state_dict`` entries of ``src`` under ``prefix`` (prefix
    removed) to ``dst``; returns how many tensors were written."""
    # The user names this file on purpose, so it may be unpickled in full.
    ckpt = torch.load(src, map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict', ckpt)
    weights = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix) and torch.is_tensor(v)}
    if not weights:
        raise ValueError(f'{src} has no weights under prefix {prefix!r}; '
                         f'its keys start with {sorted(state)[:3]}')
    meta = ckpt.get('meta', {})
    torch.save(dict(state_dict=weights,
                    meta=dict(source=str(src), prefix=prefix,
                              epoch=int(meta.get('epoch', 0)),
                              iter=int(meta.get('iter', 0)))), dst)
    return len(weights)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='Runner checkpoint')
    parser.add_argument('dst', help='output weights file')
    parser.add_argument('--prefix', default='',
                        help="keep only keys under this prefix, e.g. "
                        "'student.' for a distillation checkpoint")
    args = parser.parse_args()
    count = extract(args.src, args.dst, args.prefix)
    print(f'wrote {count} tensors to {args.dst}')


if __name__ == '__main__':
    main()
