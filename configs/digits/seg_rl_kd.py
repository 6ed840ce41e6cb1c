# RL-KD on digits segmentation: seg_uniform_kd.py with the per-sample policy
# of det_rl_kd.py (skip or distill each sample, the gap reward, the student's
# prediction entropy in the state). The distilled levels are the backbone's
# own stages, so phase 2 freezes nothing (a frozen backbone would leave
# nothing to distill).
_base_ = ['./seg_uniform_kd.py']

model = dict(selector=dict(
    _delete_=True, type='RLSelector', action='sample', signals=('entropy', ),
    policy=dict(hidden_dim=128, recurrent=False),
    env=dict(budget=0.5, reward='gap', lam=1.0, lam_lr=0.01),
    ppo=dict(lr=3e-4, minibatch_size=32),
    rollout_iters=8))
custom_hooks = [
    dict(type='pyramidkd_mm.DistillPhaseHook', freeze=None,
         milestones=[int(_base_.max_iters * 0.2), int(_base_.max_iters * 0.5)])
]
log_processor = dict(custom_cfg=[
    dict(data_src='rl_phase', method_name='mean', window_size=1)])
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
