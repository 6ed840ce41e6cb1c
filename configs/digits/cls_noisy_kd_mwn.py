# KD + Meta-Weight-Net: the per-sample distillation loss of the noisy-digits
# KD run weighted by MetaWeightNet (the student's cross-entropy unweighted).
_base_ = ['./cls_noisy_kd.py']

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
    dict(type='pyramidkd_mm.MetaWeightHook', meta_dataloader=meta_dataloader)
]
