# RL-PyramidKD on ADE20K (DeepLabV3+ R101 -> R50): uniform_kd_ade20k.py with
# a per-sample policy deciding whether the teacher distills each image, under
# half the teacher's compute over the run, with the settings of
# configs/digits/seg_rl_kd.py. Phases: uniform to 20k, policy learning to
# 60k, joint to 80k. The levels are backbone stages, so phase 2 freezes
# nothing (see DistillPhaseHook). Not run on ADE20K here.
_base_ = ['./uniform_kd_ade20k.py']

model = dict(selector=dict(
    _delete_=True, type='RLSelector', action='sample', signals=('entropy', ),
    policy=dict(hidden_dim=256),
    env=dict(budget=0.5, reward='gap', lam=1.0, lam_lr=0.01),
    rollout_iters=8))
custom_hooks = [
    dict(type='pyramidkd_mm.DistillPhaseHook', milestones=[20000, 60000],
         freeze=None)
]
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
