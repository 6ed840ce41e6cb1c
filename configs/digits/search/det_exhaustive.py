# Exhaustive search: all 16 FPN-level masks, each scored as in EA-LS.
_base_ = ['./det_evolution.py']

train_cfg = dict(
    _delete_=True, type='pyramidkd_mm.ExhaustiveSearchLoop',
    metric='coco/bbox_mAP', finetune_iters=30, cost_weight=0.02,
    base_config='{{ fileDirname }}/../det_uniform_kd.py')
