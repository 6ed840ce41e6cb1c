# RL-KD: det_uniform_kd.py with a per-sample policy choosing the FPN levels
# under a budget of half the teacher's pyramid compute. Phases: uniform
# warm-up, policy learning (student backbone frozen), joint fine-tuning.
_base_ = ['./det_uniform_kd.py']

model = dict(selector=dict(
    _delete_=True, type='RLSelector',
    policy=dict(hidden_dim=128, recurrent=False),
    env=dict(budget=0.5, lam=0.5, lam_lr=0.01),
    ppo=dict(lr=1e-3, minibatch_size=32),  # a short schedule: few updates
    rollout_iters=8))
custom_hooks = [
    dict(type='pyramidkd_mm.DistillPhaseHook',
         milestones=[int(_base_.max_iters * 0.2), int(_base_.max_iters * 0.5)])
]
log_processor = dict(custom_cfg=[
    dict(data_src='rl_phase', method_name='mean', window_size=1)])
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
randomness = dict(diff_rank_seed=True)  # each rank samples its own choices
