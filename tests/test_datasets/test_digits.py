"""The embedded digits generator: deterministic, toolbox layouts, scales."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from pyramidkd_mm.datasets import generate_digits

SMALL = dict(num_train=12, num_val=4)


def read_tree(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), 'rb') as f:
                out[os.path.relpath(os.path.join(folder, name), root)] = \
                    f.read()
    return out


def test_det_is_deterministic_coco(tmp_path):
    assert generate_digits('det', str(tmp_path / 'a'), **SMALL)
    assert not generate_digits('det', str(tmp_path / 'a'), **SMALL)  # reuse
    generate_digits('det', str(tmp_path / 'b'), **SMALL)
    assert read_tree(tmp_path / 'a') == read_tree(tmp_path / 'b')
    coco = json.load(open(tmp_path / 'a/annotations/train.json'))
    assert len(coco['images']) == 12 and len(coco['categories']) == 10
    image = Image.open(tmp_path / 'a/train' / coco['images'][0]['file_name'])
    assert image.size == (192, 192) and image.mode == 'RGB'


def test_det_sizes_span_small_medium_large(tmp_path):
    generate_digits('det', str(tmp_path), num_train=60, num_val=1)
    coco = json.load(open(tmp_path / 'annotations/train.json'))
    areas = np.array([a['area'] for a in coco['annotations']])
    for low, high in ((0, 32**2), (32**2, 96**2), (96**2, np.inf)):
        assert ((areas >= low) & (areas < high)).mean() > 0.05


def test_seed_and_options_change_the_data(tmp_path):
    generate_digits('det', str(tmp_path / 'a'), **SMALL)
    generate_digits('det', str(tmp_path / 'b'), seed=1, **SMALL)
    assert read_tree(tmp_path / 'a') != read_tree(tmp_path / 'b')
    # Other options regenerate the folder instead of reusing it.
    assert generate_digits('det', str(tmp_path / 'a'), num_train=13,
                           num_val=4)
    with pytest.raises(ValueError, match='unknown digits det options'):
        generate_digits('det', str(tmp_path / 'c'), colour=True)


def test_seg_and_cls_layouts(tmp_path):
    generate_digits('seg', str(tmp_path / 'seg'), **SMALL)
    label = np.asarray(Image.open(tmp_path / 'seg/ann_dir/train/00000.png'))
    assert label.max() <= 10 and 0 in label and label.max() > 0
    assert len(os.listdir(tmp_path / 'seg/img_dir/val')) == 4
    generate_digits('cls', str(tmp_path / 'cls'), num_train=1, num_val=1)
    assert sorted(os.listdir(tmp_path / 'cls/train')) == [
        str(d) for d in range(10)]


def test_det_scales_gives_each_image_one_regime(tmp_path):
    generate_digits('det_scales', str(tmp_path), num_train=60, num_val=1)
    coco = json.load(open(tmp_path / 'annotations/train.json'))
    regime = {image['id']: image['scale'] for image in coco['images']}
    assert set(regime.values()) == {'small', 'large', 'mixed'}
    sides = {'small': [], 'large': [], 'mixed': []}
    for ann in coco['annotations']:
        sides[regime[ann['image_id']]].append(max(ann['bbox'][2:]))
    # boxes are the digits' ink, at most the pasted side
    assert max(sides['small']) <= 24 and min(sides['large']) > 24
    assert min(sides['mixed']) < 24 < max(sides['mixed'])
