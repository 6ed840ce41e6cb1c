# What every digits layer search shares: the student trains on the first 640
# training scenes, the search scores on the held-out last 160 (the val split
# stays unseen until the chosen mask is retrained and evaluated), and all
# searches start from one student trained alone for 250 iterations
# (see README: "Layer search").
_base_ = ['../det_uniform_kd.py']

search_start = 'work_dirs/search_start/student.pth'
model = dict(student=dict(
    init_cfg=dict(type='Pretrained', checkpoint=search_start)))
train_dataloader = dict(dataset=dict(indices=640))
held_out = dict(_base_.train_dataloader,
                dataset=dict(_base_.train_dataloader.dataset, indices=-160))
# Constant learning rate after a short warm-up: the searches fine-tune.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)
]
