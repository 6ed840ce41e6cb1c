# RL-PyramidKD on ImageNet (ResNet-101 -> ResNet-50): uniform_kd_imagenet.py
# with a per-sample policy deciding whether the teacher distills each image,
# under half the teacher's compute over the run, with the settings of
# configs/digits/cls_rl_kd.py. Phases: uniform to epoch 25, policy learning
# to 75, joint to 100. The levels are backbone stages, so phase 2 freezes
# nothing (see DistillPhaseHook). Not run on ImageNet here.
_base_ = ['./uniform_kd_imagenet.py']

model = dict(selector=dict(
    _delete_=True, type='RLSelector', action='sample', signals=('entropy', ),
    policy=dict(hidden_dim=256),
    env=dict(budget=0.5, reward='gap', lam=1.0, lam_lr=0.01),
    rollout_iters=8))
custom_hooks = [
    dict(type='pyramidkd_mm.DistillPhaseHook', milestones=[25, 75],
         by_epoch=True, freeze=None)
]
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
