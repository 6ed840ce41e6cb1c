# ResNet-18 (CIFAR stem) teacher on the embedded 32 px digit crops.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['pyramidkd_mm'], allow_failed_imports=False)
randomness = dict(seed=0)  # reproducible runs on the embedded data

data_root = 'data/digits/cls/'
digits_data = dict(task='cls', root=data_root)
max_iters = 600

model = dict(backbone=dict(init_cfg=None))
data_preprocessor = dict(num_classes=10, mean=[127.5] * 3, std=[64.0] * 3,
                         to_rgb=False)
# Digits are not mirror-symmetric: crop jitter only.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs')
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root,
                 data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root,
                 data_prefix='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=False,
                       T_max=max_iters)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
