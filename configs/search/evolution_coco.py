# EA-LS on COCO: each candidate mask fine-tunes a shared student checkpoint
# for 2,000 iterations and is scored by CocoMetric on the held-out split.
# `search_start` is a weights-only student checkpoint (e.g. the student alone
# after a few epochs, exported with tools/model_converters/extract_weights.py).
_base_ = ['./_coco_split.py']

search_start = 'work_dirs/search_start_coco/student.pth'
model = dict(
    student=dict(init_cfg=dict(type='Pretrained', checkpoint=search_start)),
    selector=dict(_delete_=True, type='FixedSelector', mask=[1, 1, 1, 1]))
train_cfg = dict(
    _delete_=True, type='pyramidkd_mm.EvolutionSearchLoop',
    metric='coco/bbox_mAP', finetune_iters=2000, cost_weight=0.02,
    population_size=4, num_generations=2, num_parents=2, num_offspring=2,
    base_config='{{ fileDirname }}/../uniform_kd_coco.py')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500)
]
val_dataloader = dict(dataset=dict(
    _base_.train_dataloader.dataset, _delete_=True,
    indices=-_base_.num_held_out,
    pipeline=_base_.test_pipeline[:-1] + [
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor', 'instances'))
    ]))
val_evaluator = dict(_delete_=True, type='mmdet.CocoMetric', metric='bbox')
default_hooks = dict(checkpoint=dict(interval=-1, save_last=False))
