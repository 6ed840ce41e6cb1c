# DARTS-LS on COCO: a sigmoid gate per FPN level, learned on the held-out
# split over 2 epochs of the student's training; the mask is the top levels
# within half the teacher's pyramid compute.
_base_ = ['./_coco_split.py']

model = dict(selector=dict(_delete_=True, type='DARTSSelector'))
train_cfg = dict(max_epochs=2, val_interval=2)
custom_hooks = [
    dict(type='pyramidkd_mm.GateSearchHook',
         search_dataloader=_base_.held_out, unrolled=True, budget=0.5,
         base_config='{{ fileDirname }}/../uniform_kd_coco.py')
]
