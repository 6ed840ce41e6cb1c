# DARTS-LS (second order) on the digits detection task: a sigmoid gate per
# FPN level, learned on the held-out split while the student trains.
_base_ = ['./_split.py']

search_iters = 150
model = dict(selector=dict(_delete_=True, type='DARTSSelector'))
train_cfg = dict(max_iters=search_iters, val_interval=search_iters)
default_hooks = dict(checkpoint=dict(interval=search_iters // 2))
custom_hooks = [
    dict(type='pyramidkd_mm.GateSearchHook',
         search_dataloader=_base_.held_out, unrolled=True,
         base_config='{{ fileDirname }}/../det_uniform_kd.py')
]
log_processor = dict(custom_cfg=[
    dict(data_src=f'gate_{level}', method_name='mean', window_size=1)
    for level in ('p2', 'p3', 'p4', 'p5')
])
