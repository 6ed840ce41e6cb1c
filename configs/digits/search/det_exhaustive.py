# Exhaustive search: all 16 FPN-level masks, each scored as in EA-LS.
_base_ = ['./det_evolution.py']

train_cfg = dict(
    _delete_=True, type='pyramidkd_mm.ExhaustiveSearchLoop',
    search_dataloader=_base_.search_dataloader,
    search_evaluator=_base_.search_evaluator, metric='coco/bbox_mAP',
    finetune_iters=50, cost_weight=0.02,
    base_config='{{ fileDirname }}/../det_uniform_kd.py')
