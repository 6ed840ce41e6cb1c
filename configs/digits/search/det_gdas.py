# GDAS-LS: one Gumbel-softmax straight-through skip/distill sample per level
# and iteration (only sampled levels are computed), temperature 10 -> 0.1.
_base_ = ['./det_darts.py']

model = dict(selector=dict(type='GDASSelector'))
custom_hooks = [dict(_base_.custom_hooks[0], temperature=(10.0, 0.1))]
