# EA-LS: evolution over the 16 FPN-level masks; each candidate fine-tunes the
# shared starting student for 50 iterations and is scored by mmdet's
# CocoMetric on the held-out split: fitness = mAP - 0.02 x distill cost.
_base_ = ['./_split.py']

model = dict(selector=dict(_delete_=True, type='FixedSelector',
                           mask=[1, 1, 1, 1]))
# No ann_file for the metric: the held-out ground truth comes with the
# samples (their 'instances'), so only those 160 scenes are scored.
search_pipeline = _base_.test_pipeline[:-1] + [
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'instances'))
]
search_dataloader = dict(
    _base_.val_dataloader,
    dataset=dict(_base_.train_dataloader.dataset, indices=-160,
                 pipeline=search_pipeline))
search_evaluator = dict(type='mmdet.CocoMetric', metric='bbox')
train_cfg = dict(
    _delete_=True, type='pyramidkd_mm.EvolutionSearchLoop',
    search_dataloader=search_dataloader, search_evaluator=search_evaluator,
    metric='coco/bbox_mAP', finetune_iters=50, cost_weight=0.02,
    population_size=4, num_generations=2, num_parents=2, num_offspring=2,
    base_config='{{ fileDirname }}/../det_uniform_kd.py')
# The cache (mask_search.json) is what a resumed search needs.
default_hooks = dict(checkpoint=dict(interval=-1, save_last=False))
val_cfg = None
val_dataloader = None
val_evaluator = None
