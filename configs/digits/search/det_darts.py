# DARTS-LS (second order) on the digits detection task: a sigmoid gate per
# FPN level, learned on the held-out split while the student trains. Adam at
# 3e-2 for 300 steps moves a gate with a consistent hypergradient by up to 9
# logits, so a gate still near 0.5 at the end had no consistent signal
# (at 3e-3 for 150 steps the gates stayed at their initial 0.5).
_base_ = ['./_split.py']

search_iters = 300
model = dict(selector=dict(_delete_=True, type='DARTSSelector'))
train_cfg = dict(max_iters=search_iters, val_interval=search_iters)
default_hooks = dict(checkpoint=dict(interval=search_iters // 2))
custom_hooks = [
    dict(type='pyramidkd_mm.GateSearchHook',
         search_dataloader=_base_.held_out, unrolled=True,
         arch_optimizer=dict(type='Adam', lr=3e-2, betas=(0.5, 0.999),
                             weight_decay=1e-3),
         base_config='{{ fileDirname }}/../det_uniform_kd.py')
]
log_processor = dict(custom_cfg=[
    dict(data_src=f'gate_{kind}{level}', method_name='mean', window_size=1)
    for level in ('p2', 'p3', 'p4', 'p5') for kind in ('', 'margin_')
])
