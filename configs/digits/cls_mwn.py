# Meta-Weight-Net on the noisy-digits CE run: the per-sample cross-entropy
# weighted by MetaWeightNet, trained on the clean meta set (10 per class).
_base_ = ['./cls_noisy.py']

model = dict(
    _delete_=True,
    type='pyramidkd_mm.MetaWeightedModel',
    model=_base_.model,
    weight_net=dict(type='MetaWeightNet', hidden=100),
    normalize=True)  # sum(w * loss) / sum(w): see MetaWeightedModel
meta_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root='data/digits/',
                 data_prefix='cls', ann_file=_base_.noisy_root + 'meta.txt',
                 pipeline=_base_.test_pipeline))
custom_hooks = [
    dict(type='pyramidkd_mm.MetaWeightHook', meta_dataloader=meta_dataloader,
         meta_optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
]
