# DeepLabV3+ R18-V1c teacher on the embedded digits segmentation scenes
# (background + 10 digit classes, 64 px, CPU-sized): 83.4 mIoU after these
# 1600 iterations (7.5 min on two threads, README "Digits segmentation").
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py'
]
custom_imports = dict(imports=['pyramidkd_mm'], allow_failed_imports=False)
randomness = dict(seed=0)  # reproducible runs on the embedded data

data_root = 'data/digits/seg/'
digits_data = dict(task='seg', root=data_root)
crop_size = (64, 64)
max_iters = 1600
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs GPUs

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=512, c1_in_channels=64, channels=128,
                     num_classes=11, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=11,
                        norm_cfg=norm_cfg))

metainfo = dict(classes=('background', ) + tuple(str(d) for d in range(10)))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.png', seg_map_suffix='.png', pipeline=pipeline)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/train',
                                           seg_map_path='ann_dir/train')))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/val',
                                           seg_map_path='ann_dir/val')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
