"""Noisy and long-tailed digits classification with a clean meta set.

Built on the embedded classification crops of :mod:`.digits` (two crops per
training source digit, one per validation digit): this module only writes
annotation files in mmpretrain's ``CustomDataset`` format (``path label``
per line) into its own folder, so every setting shares the same images.

* ``meta.txt``: ``meta_per_class`` clean images per class. Their source
  digits are removed from training altogether (both crops), so the meta set
  is disjoint from what the model trains on.
* ``train.txt``: the rest of the training crops, optionally subsampled to a
  long tail and with corrupted labels.
* ``val.txt``: the clean validation crops (unchanged).
* ``info.json``: the settings, the true label of every ``train.txt`` line
  and the measured noise rate and class counts.

Label noise is drawn per source digit, so both crops of a digit carry the
same (possibly wrong) label, as an annotation error on a real image would:

* ``uniform`` (MW-Net's ``p*U + (1-p)*I``): with probability ``rate`` the
  label is redrawn uniformly from all classes, the true one included, so the
  expected fraction of wrong labels is ``rate * (C - 1) / C`` (36 % at
  ``rate=0.4``, not 40 %).
* ``pair`` (Han et al., Co-teaching, 2018): with probability ``rate`` class
  ``c`` becomes ``(c + 1) mod C``; the wrong fraction is ``rate``.

Long tail (Cui et al. 2019, as in MW-Net): class ``c`` keeps
``round(head * factor ** (-c / (C - 1)))`` crops, so class 0 keeps ``head``
and class ``C - 1`` keeps ``head / factor``.

Everything depends only on the seed and the settings (and the crops).
"""
import fcntl
import json
import os
import os.path as osp
import shutil
from collections import defaultdict

import numpy as np

from .digits import CLASSES, generate_digits

NOISE_TYPES = ('uniform', 'pair')


def setting_name(noise=None, rate=0.0, imbalance=1):
    """A short folder name for a setting: ``clean``, ``uniform40``,
    ``pair20``, ``lt100`` (long tail) or combinations such as
    ``uniform40_lt10``."""
    parts = [f'{noise}{round(rate * 100)}'] if noise and rate else []
    if imbalance != 1:
        parts.append(f'lt{imbalance:g}')
    return '_'.join(parts) or 'clean'


def transition_matrix(noise, rate, num_classes=len(CLASSES)):
    """Row ``c``: the probabilities of each observed label given true class
    ``c``."""
    eye = np.eye(num_classes)
    if noise == 'uniform':
        return rate / num_classes + (1 - rate) * eye
    if noise == 'pair':
        return (1 - rate) * eye + rate * np.roll(eye, 1, axis=1)
    raise ValueError(f'unknown label noise {noise!r}; use one of '
                     f'{NOISE_TYPES}')


def long_tail_counts(head, factor, num_classes=len(CLASSES)):
    """Crops kept per class for imbalance ``factor`` (head / tail)."""
    return [int(round(head * factor**(-c / (num_classes - 1))))
            for c in range(num_classes)]


def _crops(images, split):
    """(path relative to ``images``, label, source digit) of every crop."""
    crops = []
    for label, name in enumerate(CLASSES):
        folder = osp.join(images, split, name)
        for file in sorted(os.listdir(folder)):
            crops.append((f'{split}/{name}/{file}', label,
                          (label, file.split('_')[0])))
    return crops


def _build(images, seed, noise, rate, imbalance, meta_per_class, head):
    rng = np.random.default_rng([seed, 15])
    train = _crops(images, 'train')
    by_class = defaultdict(list)
    for source in dict.fromkeys(s for _, _, s in train):  # ordered, unique
        by_class[source[0]].append(source)
    meta_sources = set()
    for label in range(len(CLASSES)):
        pick = rng.choice(len(by_class[label]), meta_per_class, replace=False)
        meta_sources.update(by_class[label][i] for i in sorted(pick))
    meta = [(p, y) for p, y, s in train
            if s in meta_sources and p.endswith('_0.png')]
    train = [c for c in train if c[2] not in meta_sources]
    if imbalance != 1:
        counts = long_tail_counts(head, imbalance)
        kept = []
        for label, count in enumerate(counts):
            crops = [c for c in train if c[1] == label]
            if count > len(crops):
                raise ValueError(
                    f'class {label} has {len(crops)} training crops, fewer '
                    f'than the {count} the long tail keeps; lower `head`')
            pick = np.sort(rng.choice(len(crops), count, replace=False))
            kept += [crops[i] for i in pick]
        train = kept
    observed = {s: y for _, y, s in train}
    if noise is not None and rate > 0:
        matrix = transition_matrix(noise, rate)
        for source in sorted(observed):
            observed[source] = int(rng.choice(len(CLASSES),
                                              p=matrix[observed[source]]))
    noisy = [(p, observed[s]) for p, _, s in train]
    true = [y for _, y, _ in train]
    val = [(p, y) for p, y, _ in _crops(images, 'val')]
    counts = np.bincount([y for _, y in noisy], minlength=len(CLASSES))
    info = dict(
        true_labels=true,
        mislabelled_fraction=float(np.mean(
            [y != t for (_, y), t in zip(noisy, true)])),
        class_counts=counts.tolist(),
        imbalance_ratio=float(counts.max() / max(counts.min(), 1)))
    return dict(train=noisy, meta=meta, val=val), info


def generate_noisy_digits(root,
                          images='data/digits/cls',
                          seed=0,
                          noise=None,
                          rate=0.0,
                          imbalance=1,
                          meta_per_class=10,
                          head=200):
    """Write the annotation files of one setting into ``root`` unless they
    are already there; generates the crops into ``images`` if missing.

    Args:
        root (str): output folder of the annotation files.
        images (str): the digits classification crops (:mod:`.digits`'s
            ``cls`` task with its defaults, as the cls configs generate
            them); the listed paths are relative to it.
        seed (int): seed of the choices made here (meta set, long tail,
            noise); the crops are the defaults' whatever it is.
        noise (str, optional): ``'uniform'`` or ``'pair'`` (see the module
            docstring).
        rate (float): noise rate in [0, 1].
        imbalance (float): long-tail factor (1: balanced).
        meta_per_class (int): clean meta images per class.
        head (int): crops of the most frequent class under a long tail.

    Returns:
        dict: the ``info.json`` contents.
    """
    if noise is not None and noise not in NOISE_TYPES:
        raise ValueError(f'unknown label noise {noise!r}; use one of '
                         f'{NOISE_TYPES}')
    if not 0 <= rate <= 1 or imbalance < 1:
        raise ValueError(f'rate {rate} must be in [0, 1] and imbalance '
                         f'{imbalance} at least 1')
    generate_digits('cls', images)
    settings = dict(images=osp.abspath(images), seed=seed, noise=noise,
                    rate=rate, imbalance=imbalance,
                    meta_per_class=meta_per_class, head=head)
    marker = json.dumps(settings, sort_keys=True)
    done = osp.join(root, '.done')
    os.makedirs(osp.dirname(osp.abspath(root)), exist_ok=True)
    # One writer at a time: every rank of a distributed run calls this.
    with open(root.rstrip('/') + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (osp.exists(done) and open(done).read() == marker):
            splits, info = _build(images, seed, noise, rate, imbalance,
                                  meta_per_class, head)
            tmp = root.rstrip('/') + '.tmp'
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for split, samples in splits.items():
                with open(osp.join(tmp, f'{split}.txt'), 'w') as f:
                    f.writelines(f'{p} {y}\n' for p, y in samples)
            with open(osp.join(tmp, 'info.json'), 'w') as f:
                json.dump(dict(settings, **info), f)
            with open(osp.join(tmp, '.done'), 'w') as f:
                f.write(marker)
            shutil.rmtree(root, ignore_errors=True)
            os.replace(tmp, root)
    with open(osp.join(root, 'info.json')) as f:
        return json.load(f)
