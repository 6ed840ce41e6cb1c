# Uniform KD with GradNorm balancing the four level losses (weights on the
# student FPN's C5 lateral conv, logged every iteration as gradnorm_w_*).
_base_ = ['./det_uniform_kd.py']

model = dict(loss_balancer=dict(type='GradNorm', alpha=1.5, lr=1e-2))
# Updates the weights once per optimiser step (with accumulative_counts).
custom_hooks = [dict(type='pyramidkd_mm.LossBalancerHook')]
log_processor = dict(custom_cfg=[
    dict(data_src=f'gradnorm_w_distill_{level}', method_name='mean',
         window_size=1)
    for level in ('p2', 'p3', 'p4', 'p5')
])
