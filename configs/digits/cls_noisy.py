# CE on noisy digits: a quarter-width ResNet-18 (CIFAR stem) on 16 px crops
# with 40 % uniform label noise (MW-Net's p*U + (1-p)*I, 36 % wrong labels);
# other settings: change `noisy_digits_data` and the ann_file paths.
_base_ = ['./cls_student.py']

noisy_root = 'cls_noisy/uniform40/'  # under data/digits/
noisy_digits_data = dict(root='data/digits/' + noisy_root, noise='uniform',
                         rate=0.4)
max_iters = 1200

model = dict(backbone=dict(stem_channels=8, base_channels=8),
             head=dict(in_channels=64))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(16, 16)),
    dict(type='RandomCrop', crop_size=16, padding=1),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(16, 16)),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(
    data_root='data/digits/', data_prefix='cls',
    ann_file=noisy_root + 'train.txt', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    data_root='data/digits/', data_prefix='cls',
    ann_file=noisy_root + 'val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = dict(T_max=max_iters)
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 10)
default_hooks = dict(checkpoint=dict(interval=max_iters))
