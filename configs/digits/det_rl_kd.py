# RL-KD: det_uniform_kd.py with a per-sample policy that decides, from what
# the student sees of a sample (its pooled features and the entropy of its
# own predictions), whether the teacher distills it at all: with an FPN
# teacher three quarters of the compute is shared by every level, so the
# saving is in skipping samples. Reward: the sample's distillation losses in
# the training forward (no extra pass). Budget: half the teacher's compute
# over the whole run; phase 1 distills every sample, and DistillPhaseHook
# paces the policy to spend the rest. Phases: uniform warm-up, policy
# learning, joint fine-tuning, nothing frozen. These settings measured best
# on digits (README, "Digits detection: the Pareto slice"); the seed's
# design is action='levels', reward='gain', signals=(), freeze='backbone'.
_base_ = ['./det_uniform_kd.py']

model = dict(selector=dict(
    _delete_=True, type='RLSelector', action='sample', signals=('entropy', ),
    policy=dict(hidden_dim=128, recurrent=False),
    # lam starts near where a typical gain buys all levels (about 1): with
    # 0.5 and PPO lr 1e-3 the policy settled on every level before the
    # price caught up, and its entropy was gone.
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
