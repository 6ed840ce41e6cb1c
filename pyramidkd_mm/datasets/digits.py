"""Deterministic embedded datasets generated from scikit-learn's digits.

scikit-learn ships 1,797 real 8x8 handwritten digits. They are split once into
disjoint train/val writer pools, then rendered into:

* ``det``: scenes with several digits pasted at sizes spread log-uniformly over
  COCO's small/medium/large ranges, so that every FPN level has work; COCO json
  annotations, read by mmdet's ``CocoDataset`` and scored by ``CocoMetric``.
* ``det_scales``: the same scenes, but each image has one scale regime
  (``small``: digits of 10-24 px only, ``large``: 64-144 px only, or
  ``mixed``), recorded as the image's ``scale`` in the json, so that different
  images need different pyramid levels.
* ``seg``: the same kind of scenes with per-pixel labels (0 background,
  ``d + 1`` for digit ``d``) in mmseg's ``img_dir``/``ann_dir`` layout.
* ``cls``: one digit per crop in mmpretrain's folder-per-class layout.

Everything depends only on the seed and the sizes, so a data folder can be
regenerated bit for bit. A ``.done`` marker holding the parameters tells a
finished folder from a partial one or one generated with other parameters.
"""
import fcntl
import json
import os
import os.path as osp
import shutil

import numpy as np
from PIL import Image

CLASSES = tuple(str(d) for d in range(10))
INK = 0.35  # rendered intensity above which a pixel belongs to the digit
DEFAULTS = dict(
    det=dict(img_size=192, num_train=800, num_val=150, min_size=10,
             max_size=144, max_digits=5),
    det_scales=dict(img_size=192, num_train=800, num_val=150, min_size=10,
                    max_size=144, max_digits=5,
                    regimes=dict(small=(10, 24), large=(64, 144),
                                 mixed=(10, 144))),
    # 64 px scenes of 20-48 px digits: at 128 px with 12-64 px digits and
    # 600 scenes a DeepLabV3+ teacher never learnt which digit (10.9 mIoU).
    seg=dict(img_size=64, num_train=2000, num_val=300, min_size=20,
             max_size=48, max_digits=3),
    cls=dict(img_size=32, num_train=2, num_val=1),  # crops per source digit
)


def _source_pools(seed):
    """Real 8x8 digits in [0, 1], split into disjoint train/val pools."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    cut = int(0.8 * len(order))
    images = digits.images.astype(np.float32) / 16.0
    return {split: (images[idx], digits.target[idx])
            for split, idx in (('train', order[:cut]), ('val', order[cut:]))}


def _render(digit, size):
    """Upscale a small [0, 1] image (an 8x8 digit) to ``size`` px, smoothly."""
    img = Image.fromarray((digit * 255).astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.BILINEAR),
                      dtype=np.float32) / 255.0


def _background(rng, size):
    """Smooth low-contrast clutter (coarse noise, upsampled)."""
    coarse = rng.uniform(0, 0.25, (max(size // 16, 2), ) * 2)
    noise = _render(coarse, size)[..., None]
    return np.repeat(noise, 3, axis=2)


def _scene(rng, pool, cfg):
    """One scene: an RGB image, a label map and a list of (box, label);
    digit sides are log-uniform in [min_size, max_size]."""
    size = cfg['img_size']
    image = _background(rng, size)
    labels = np.zeros((size, size), np.uint8)
    objects = []
    for _ in range(rng.integers(2, cfg['max_digits'] + 1)):
        i = rng.integers(len(pool[1]))
        side = int(np.exp(rng.uniform(np.log(cfg['min_size']),
                                      np.log(cfg['max_size']))))
        ink = _render(pool[0][i], side)
        mask = ink > INK
        if not mask.any():
            continue
        for _ in range(30):  # rejection sampling of a free spot
            y, x = rng.integers(0, size - side + 1, size=2)
            if not labels[y:y + side, x:x + side][mask].any():
                break
        else:
            continue
        color = rng.uniform(0.6, 1.0, 3).astype(np.float32)
        window = image[y:y + side, x:x + side]
        np.maximum(window, ink[..., None] * color, out=window)
        labels[y:y + side, x:x + side][mask] = pool[1][i] + 1
        ys, xs = np.nonzero(mask)
        box = [x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1]
        objects.append(([int(v) for v in box], int(pool[1][i])))
    return (image * 255).astype(np.uint8), labels, objects


def _save(array, path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def _write_det(root, split, rng, pool, cfg):
    images, annotations = [], []
    regimes = cfg.get('regimes')
    for idx in range(cfg[f'num_{split}']):
        extra, scene_cfg = {}, cfg
        if regimes:  # one scale regime per image
            regime = sorted(regimes)[rng.integers(len(regimes))]
            low, high = regimes[regime]
            scene_cfg = dict(cfg, min_size=low, max_size=high)
            extra = dict(scale=regime)
        image, _, objects = _scene(rng, pool, scene_cfg)
        name = f'{idx:05d}.png'
        _save(image, osp.join(root, split, name))
        images.append(dict(id=idx, file_name=name, width=cfg['img_size'],
                           height=cfg['img_size'], **extra))
        for (x1, y1, x2, y2), label in objects:
            w, h = x2 - x1, y2 - y1
            annotations.append(dict(
                id=len(annotations) + 1, image_id=idx, category_id=label + 1,
                bbox=[x1, y1, w, h], area=w * h, iscrowd=0,
                segmentation=[[x1, y1, x2, y1, x2, y2, x1, y2]]))
    categories = [dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), f)


def _write_seg(root, split, rng, pool, cfg):
    for idx in range(cfg[f'num_{split}']):
        image, labels, _ = _scene(rng, pool, cfg)
        _save(image, osp.join(root, 'img_dir', split, f'{idx:05d}.png'))
        _save(labels, osp.join(root, 'ann_dir', split, f'{idx:05d}.png'))


def _write_cls(root, split, rng, pool, cfg):
    size = cfg['img_size']
    for i, (digit, label) in enumerate(zip(*pool)):
        for copy in range(cfg[f'num_{split}']):
            side = int(rng.integers(size // 2, size + 1))
            crop = _background(rng, size)
            y, x = rng.integers(0, size - side + 1, size=2)
            ink = _render(digit, side)[..., None] * rng.uniform(0.6, 1.0, 3)
            window = crop[y:y + side, x:x + side]
            np.maximum(window, ink.astype(np.float32), out=window)
            _save((crop * 255).astype(np.uint8),
                  osp.join(root, split, CLASSES[label], f'{i:04d}_{copy}.png'))


WRITERS = dict(det=_write_det, det_scales=_write_det, seg=_write_seg,
               cls=_write_cls)


def generate_digits(task, root, seed=0, **overrides):
    """Generate the ``task`` dataset into ``root`` unless it is already there.

    Args:
        task (str): ``'det'``, ``'det_scales'``, ``'seg'`` or ``'cls'``.
        root (str): output folder.
        seed (int): seed of the writer split and of every random choice.
        **overrides: sizes overriding :data:`DEFAULTS` for the task.

    Returns:
        bool: True if the data was generated, False if it already existed.
    """
    if task not in WRITERS:
        raise ValueError(f'unknown digits task {task!r}; use one of '
                         f'{sorted(WRITERS)}')
    unknown = set(overrides) - set(DEFAULTS[task])
    if unknown:
        raise ValueError(f'unknown digits {task} options {sorted(unknown)}; '
                         f'known: {sorted(DEFAULTS[task])}')
    cfg = dict(DEFAULTS[task], **overrides)
    marker = json.dumps(dict(task=task, seed=seed, **cfg), sort_keys=True)
    done = osp.join(root, '.done')
    os.makedirs(osp.dirname(osp.abspath(root)), exist_ok=True)
    # One writer at a time: every rank of a distributed run calls this.
    with open(root.rstrip('/') + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if osp.exists(done) and open(done).read() == marker:
            return False
        tmp = root.rstrip('/') + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        pools = _source_pools(seed)
        for split in ('train', 'val'):
            rng = np.random.default_rng([seed, split == 'val'])
            WRITERS[task](tmp, split, rng, pools[split], cfg)
        with open(osp.join(tmp, '.done'), 'w') as f:
            f.write(marker)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    return True


def prepare_data(cfg):
    """Generate the embedded data a config declares in ``digits_data``.

    Configs on the digits data carry ``digits_data = dict(task=..., root=...,
    **sizes)``, the noisy classification settings ``noisy_digits_data``
    (see :func:`generate_noisy_digits`); the tools call this before building
    the Runner.
    """
    spec = cfg.get('digits_data')
    if spec:
        generate_digits(**spec)
    noisy = cfg.get('noisy_digits_data')  # noisy / long-tailed cls settings
    if noisy:
        from .noisy_digits import generate_noisy_digits  # builds on this one
        generate_noisy_digits(**noisy)
