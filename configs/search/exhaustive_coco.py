# Exhaustive search on COCO: all 16 FPN-level masks, scored as in EA-LS.
_base_ = ['./evolution_coco.py']

train_cfg = dict(
    _delete_=True, type='pyramidkd_mm.ExhaustiveSearchLoop',
    metric='coco/bbox_mAP', finetune_iters=2000, cost_weight=0.02,
    base_config='{{ fileDirname }}/../uniform_kd_coco.py')
