"""A toy layer-search problem whose best mask is known, and a Runner for it.

Student and teacher compute each pyramid level by its own strided linear 1x1
conv straight from the image (no shared trunk), and the student's head
regresses a target from level c3 alone: the offset of channel 0. The
teacher's c3 is channel 0 itself, its c2 and c4 are the noise channels 1
and 2. Distilling c3 pulls the student towards exactly what its task needs
(both losses share the minimiser, so their gradients never point apart),
while c2 and c4 touch parameters the task never uses: they cost teacher
compute and change nothing. The best mask is exactly ``['c3']``.
"""
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import METRICS
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from pyramidkd_mm.registry import MODELS

LEVELS = ('c2', 'c3', 'c4')
TEACHER_SOURCE = (1, 0, 2)  # image channel each teacher level copies


class Branches(nn.Module):
    """Levels c2-c4 (strides 2, 4, 8), each a linear 1x1 conv of the
    image."""

    def __init__(self, channels):
        super().__init__()
        self.res_layers = ['layer1', 'layer2', 'layer3']
        for i, c in enumerate(channels):
            self.add_module(f'layer{i + 1}',
                            nn.Conv2d(3, c, 1, stride=2**(i + 1)))

    def forward(self, x):
        return tuple(getattr(self, name)(x) for name in self.res_layers)


@MODELS.register_module(force=True)
class ToyBranchModel(BaseModel):
    """Regression of channel 0's offset from the pooled c3 branch;
    ``predict`` returns the negative squared error (a metric to maximise)."""

    def __init__(self, channels=(4, 4, 4), teacher=False,
                 data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = Branches(channels)
        self.head = nn.Linear(channels[1], 1)
        if teacher:
            with torch.no_grad():
                for i, src in enumerate(TEACHER_SOURCE):
                    conv = getattr(self.backbone, f'layer{i + 1}')
                    conv.weight.zero_()
                    conv.bias.zero_()
                    conv.weight[:, src] = 1

    def extract_feat(self, inputs):
        return self.backbone(inputs)

    def _forward(self, inputs, data_samples=None):
        return self.head(self.extract_feat(inputs)[1].mean((2, 3)))[:, 0]

    def loss(self, inputs, data_samples):
        return dict(loss_reg=F.mse_loss(self._forward(inputs), data_samples))

    def predict(self, inputs, data_samples):
        return -(self._forward(inputs) - data_samples).pow(2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return getattr(self, mode if mode != 'tensor' else '_forward')(
            inputs, data_samples)


@METRICS.register_module(force=True)
class NegativeSquaredError(BaseMetric):
    """Mean negative squared error of the predictions."""

    def process(self, data_batch, data_samples):
        self.results.extend(float(v) for v in data_samples)

    def compute_metrics(self, results):
        return dict(neg_mse=sum(results) / len(results))


class SignalImages(Dataset):
    """16x16 noise images whose channel 0 carries an offset: the target."""

    def __init__(self, size=64, offset=0):
        self.size, self.offset = size, offset

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index + self.offset)
        target = torch.randn((), generator=g)
        image = torch.randn(3, 16, 16, generator=g)
        image[0] += target
        return dict(inputs=image, data_samples=target)


def teacher_files(tmp_path):
    config = tmp_path / 'toy_branch_teacher.py'
    config.write_text("default_scope = 'pyramidkd_mm'\n"
                      "model = dict(type='ToyBranchModel', teacher=True)\n")
    teacher = MODELS.build(dict(type='ToyBranchModel', teacher=True,
                                _scope_='pyramidkd_mm'))
    checkpoint = tmp_path / 'toy_branch_teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), checkpoint)
    return str(config), str(checkpoint)


def loader(dataset, shuffle=True):
    return dict(dataset=dataset, batch_size=8, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=shuffle),
                collate_fn=dict(type='default_collate'))


def model_cfg(tmp_path, selector):
    """The toy distiller: the toy teacher distilled into the toy student."""
    config, checkpoint = teacher_files(tmp_path)
    return dict(type='pyramidkd_mm.PyramidDistiller',
                student=dict(type='pyramidkd_mm.ToyBranchModel'),
                teacher=dict(config=config, checkpoint=checkpoint),
                levels=LEVELS, distill_loss=dict(type='NormalizedMSELoss'),
                selector=selector, probe_size=16)


def write_kd_config(tmp_path):
    """A uniform-KD config of the toy distiller, for ``fixed_mask.py`` to
    extend."""
    path = tmp_path / 'toy_kd.py'
    model = model_cfg(tmp_path, dict(type='pyramidkd_mm.UniformSelector'))
    path.write_text(f"default_scope = 'pyramidkd_mm'\nmodel = {model!r}\n")
    return str(path)


def build_runner(tmp_path, work_dir, selector, train_cfg, **kwargs):
    """A Runner training the toy distiller with ``selector``."""
    kwargs.setdefault('randomness', dict(seed=0))
    kwargs.setdefault('optim_wrapper', dict(optimizer=dict(type='SGD',
                                                           lr=0.1)))
    kwargs.setdefault('default_hooks', dict(
        checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False),
        logger=dict(type='LoggerHook', interval=10)))
    return Runner(
        model=model_cfg(tmp_path, selector), work_dir=str(work_dir),
        train_dataloader=loader(SignalImages()),

        train_cfg=train_cfg, default_scope='pyramidkd_mm', **kwargs)
