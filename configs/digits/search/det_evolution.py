# EA-LS: evolution over the 16 FPN-level masks; each candidate fine-tunes the
# shared starting student for 30 iterations and is scored by mmdet's
# CocoMetric on the held-out split: fitness = mAP - 0.02 x distill cost.
_base_ = ['./_split.py']

model = dict(selector=dict(_delete_=True, type='FixedSelector',
                           mask=[1, 1, 1, 1]))
train_cfg = dict(
    _delete_=True, type='pyramidkd_mm.EvolutionSearchLoop',
    metric='coco/bbox_mAP', finetune_iters=30, cost_weight=0.02,
    population_size=4, num_generations=2, num_parents=2, num_offspring=2,
    base_config='{{ fileDirname }}/../det_uniform_kd.py')
# The search scores candidates with the Runner's val loop on the held-out
# split. No ann_file for the metric: the ground truth comes with the samples
# (their 'instances'), so only those 160 scenes are scored.
val_dataloader = dict(dataset=dict(
    _base_.train_dataloader.dataset, _delete_=True, indices=-160,
    pipeline=_base_.test_pipeline[:-1] + [
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor', 'instances'))
    ]))
val_evaluator = dict(_delete_=True, type='mmdet.CocoMetric', metric='bbox')
# The cache (mask_search.json) is what a resumed search needs.
default_hooks = dict(checkpoint=dict(interval=-1, save_last=False))
