"""Noisy and long-tailed digits: the noise rates, transition structure and
imbalance factors are what the settings claim; the meta set is clean and
disjoint from training; everything is deterministic from the seed."""
import json
import os.path as osp

import numpy as np
import pytest
from mmpretrain.datasets import CustomDataset

from conftest import REPO
from pyramidkd_mm.datasets import (generate_digits, generate_noisy_digits,
                                   long_tail_counts, setting_name)

IMAGES = osp.join(REPO, 'data', 'digits', 'cls')  # the tools' default crops


@pytest.fixture(scope='module')
def images():
    generate_digits('cls', IMAGES)
    return IMAGES


def read(root, split):
    with open(osp.join(root, f'{split}.txt')) as f:
        return [(p, int(y)) for p, y in (line.split() for line in f)]


def source(path):
    """The source digit of a crop: class folder and index."""
    return path.split('/')[1], osp.basename(path).split('_')[0]


def make(tmp_path, images, **setting):
    root = str(tmp_path / setting_name(**setting))
    info = generate_noisy_digits(root, images=images, **setting)
    true = np.array(info['true_labels'])
    observed = np.array([y for _, y in read(root, 'train')])
    return root, info, true, observed


@pytest.mark.parametrize('rate', [0.2, 0.4, 0.6])
def test_uniform_noise_is_mwnets_definition(tmp_path, images, rate):
    _, info, true, observed = make(tmp_path, images, noise='uniform',
                                   rate=rate)
    wrong = observed != true
    # p*U + (1-p)*I: a redrawn label is right one time in ten; the draws
    # are per source digit (two crops each), hence sqrt(n / 2)
    expected = rate * 0.9
    assert abs(wrong.mean() - expected) < 3 * np.sqrt(
        expected * (1 - expected) / (len(true) / 2))
    assert info['mislabelled_fraction'] == pytest.approx(wrong.mean())
    # wrong labels spread over every other class
    offsets = (observed[wrong] - true[wrong]) % 10
    assert set(offsets.tolist()) == set(range(1, 10))
    counts = np.bincount(offsets, minlength=10)[1:]
    assert counts.min() > 0.5 * counts.mean()


def test_pair_noise_flips_to_the_next_class(tmp_path, images):
    _, info, true, observed = make(tmp_path, images, noise='pair', rate=0.4)
    wrong = observed != true
    assert abs(wrong.mean() - 0.4) < 3 * np.sqrt(0.24 / (len(true) / 2))
    assert ((observed[wrong] - true[wrong]) % 10 == 1).all()


@pytest.mark.parametrize('factor', [10, 50, 100])
def test_long_tail_has_the_imbalance_factor(tmp_path, images, factor):
    root, info, true, observed = make(tmp_path, images, imbalance=factor)
    counts = np.bincount(observed, minlength=10)
    assert counts.tolist() == long_tail_counts(200, factor)
    assert counts[0] / counts[9] == factor == info['imbalance_ratio']
    assert (counts[:-1] >= counts[1:]).all()
    assert (observed == true).all()  # no label noise unless asked


def test_meta_set_is_clean_disjoint_and_loadable(tmp_path, images):
    root, _, true, observed = make(tmp_path, images, noise='uniform',
                                   rate=0.6)
    meta, train = read(root, 'meta'), read(root, 'train')
    assert np.bincount([y for _, y in meta]).tolist() == [10] * 10
    for path, label in meta:  # clean: the label is the class folder
        assert int(path.split('/')[1]) == label
    assert not {source(p) for p, _ in meta} & {source(p) for p, _ in train}
    labels = {}
    for (path, label) in train:  # both crops of a digit share the label
        assert labels.setdefault(source(path), label) == label
    assert len(read(root, 'val')) == 360
    assert len(train) + 2 * len(meta) == 2 * 1437
    dataset = CustomDataset(data_root=osp.dirname(images),
                            data_prefix=osp.basename(images),
                            ann_file=osp.join(root, 'meta.txt'))
    assert len(dataset) == 100 and osp.exists(dataset[0]['img_path'])


def test_deterministic_from_the_seed(tmp_path, images):
    setting = dict(noise='uniform', rate=0.4, imbalance=10)
    a = generate_noisy_digits(str(tmp_path / 'a'), images=images, **setting)
    b = generate_noisy_digits(str(tmp_path / 'b'), images=images, **setting)
    assert a == b
    assert read(tmp_path / 'a', 'train') == read(tmp_path / 'b', 'train')
    with open(tmp_path / 'a' / 'info.json') as f:
        assert json.load(f)['rate'] == 0.4
    # another noise draw: the same images, other labels and meta set
    c = generate_noisy_digits(str(tmp_path / 'c'), images=images, seed=1,
                              **setting)
    assert c['true_labels'] != a['true_labels'] or \
        read(tmp_path / 'c', 'meta') != read(tmp_path / 'a', 'meta')
    with pytest.raises(ValueError, match='unknown label noise'):
        generate_noisy_digits(str(tmp_path / 'd'), images=images,
                              noise='gaussian', rate=0.2)
