"""Shared fixtures: a registered toy pyramid model (1x1-conv stages, fast on
CPU) and the digits data the real-config tests train on."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset

from pyramidkd_mm.datasets import generate_digits
from pyramidkd_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


class ToyBackbone(nn.Module):
    """ResNet-like stages (``res_layers``), each a strided 1x1 conv."""

    def __init__(self, channels):
        super().__init__()
        self.res_layers = []
        for i, (cin, cout) in enumerate(zip((3, ) + tuple(channels[:-1]),
                                            channels)):
            self.add_module(f'layer{i + 1}', nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=2), nn.ReLU()))
            self.res_layers.append(f'layer{i + 1}')

    def forward(self, x):
        outs = []
        for name in self.res_layers:
            x = getattr(self, name)(x)
            outs.append(x)
        return tuple(outs)


@MODELS.register_module(force=True)
class ToyPyramidModel(BaseModel):
    """A classifier on :class:`ToyBackbone`; data samples are label tensors."""

    def __init__(self, channels=(4, 8, 16), data_preprocessor=None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = ToyBackbone(channels)
        self.head = nn.Linear(channels[-1], 2)

    def extract_feat(self, inputs):
        return self.backbone(inputs)

    def _forward(self, inputs, data_samples=None):
        return self.head(self.extract_feat(inputs)[-1].mean((2, 3)))

    def loss(self, inputs, data_samples):
        return dict(loss_cls=F.cross_entropy(self._forward(inputs),
                                             data_samples))

    def predict(self, inputs, data_samples=None):
        return self._forward(inputs).argmax(1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return getattr(self, mode if mode != 'tensor' else '_forward')(
            inputs, data_samples)


class Recorder(Hook):
    """Records ``read(model)`` of the unwrapped model before training and
    after every iteration, after the project's own hooks."""

    priority = 'LOW'

    def __init__(self, read):
        self.read = read
        self.values = []

    def _record(self, runner):
        model = runner.model
        self.values.append(
            self.read(getattr(model, 'module', model)).detach().clone())

    def before_train(self, runner):
        self._record(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self._record(runner)


class ToyImages(Dataset):
    """Random 16x16 images with binary labels (fixed by the index)."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(3, 16, 16, generator=g),
                    data_samples=torch.tensor(index % 2))


def toy_loader():
    """A Runner's train_dataloader over :class:`ToyImages`."""
    return dict(dataset=ToyImages(), batch_size=4, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True),
                collate_fn=dict(type='default_collate'))


@pytest.fixture
def toy_teacher(tmp_path):
    """A toy teacher config file and a weights-only checkpoint for it."""
    config = tmp_path / 'toy_teacher.py'
    config.write_text("default_scope = 'pyramidkd_mm'\n"
                      "model = dict(type='ToyPyramidModel', "
                      "channels=(4, 8, 16))\n")
    torch.manual_seed(1)
    # explicit scope: a test may have left another DefaultScope current
    teacher = MODELS.build(dict(Config.fromfile(str(config)).model,
                                _scope_='pyramidkd_mm'))
    checkpoint = tmp_path / 'toy_teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), checkpoint)
    return str(config), str(checkpoint)


@pytest.fixture(scope='session')
def digits_data():
    """The default digits datasets under the repository's data/ folder,
    generated once (the tools would generate the same)."""
    for task in ('det', 'seg', 'cls'):
        generate_digits(task, osp.join(REPO, 'data', 'digits', task))
    return osp.join(REPO, 'data', 'digits')


def tiny_classifier(num_classes=3, channels=4):
    """A real mmpretrain ImageClassifier, tiny: one ResNet_CIFAR stage (two
    BasicBlocks with BN), pooling and a linear head."""
    # _scope_: the head builds its default loss in mmpretrain's scope also
    # when another test's Runner left a different default scope current
    return dict(
        type='mmpretrain.ImageClassifier', _scope_='mmpretrain',
        backbone=dict(type='mmpretrain.ResNet_CIFAR', depth=18, num_stages=1,
                      strides=(1, ), dilations=(1, ), out_indices=(0, ),
                      stem_channels=channels, base_channels=channels),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(type='mmpretrain.LinearClsHead', num_classes=num_classes,
                  in_channels=channels),
        data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor',
                               num_classes=num_classes))
