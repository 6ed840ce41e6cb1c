# RL-KD with phase 4: det_rl_kd.py whose policy, in the last quarter, is
# meta-learned (MAML) across digits detection (this run's rollouts) and the
# recorded seg and cls tasks (tools/analysis_tools/record_task.py), through
# per-task input adapters in front of one shared core.
_base_ = ['./det_rl_kd.py']

# The recorded tasks score level masks: phase 4 learns per-level choices
# (the seed's action space, reward and state).
model = dict(selector=dict(
    action='levels', signals=(), env=dict(reward='gain'),
    policy=dict(_delete_=True, type='pyramidkd_mm.TaskAdapterPolicy',
                task='det', embed_dim=64, core=dict(hidden_dim=128))))
custom_hooks = [
    dict(type='pyramidkd_mm.DistillPhaseHook',
         milestones=[int(_base_.max_iters * f) for f in (0.2, 0.5, 0.75)],
         meta=dict(tasks=dict(seg='work_dirs/meta/seg_cache.pth',
                              cls='work_dirs/meta/cls_cache.pth'),
                   algorithm='maml', inner_lr=0.1, num_inner_steps=5,
                   outer_lr=3e-4, max_grad_norm=0.5, inner_max_grad_norm=0.5,
                   support_size=64, query_size=64))
]
