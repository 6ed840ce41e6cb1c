# RL-PyramidKD on COCO (R101-FPN -> R50-FPN): uniform_kd_coco.py with a
# per-sample policy deciding whether the teacher distills each image, under
# half the teacher's pyramid compute over the run. Phases: uniform warm-up
# (epochs 1-3), policy learning (4-9), joint fine-tuning (10-12), nothing
# frozen. The settings are the ones that measured best on digits detection
# (see configs/digits/det_rl_kd.py); not run on COCO here.
_base_ = ['./uniform_kd_coco.py']

model = dict(selector=dict(
    _delete_=True, type='RLSelector', action='sample', signals=('entropy', ),
    policy=dict(hidden_dim=256),
    env=dict(budget=0.5, reward='gap', lam=1.0, lam_lr=0.01),
    rollout_iters=8))
custom_hooks = [
    dict(type='pyramidkd_mm.DistillPhaseHook', milestones=[3, 9],
         by_epoch=True, freeze=None)
]
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
