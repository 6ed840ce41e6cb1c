# DARTS-LS, first order: the validation gradient at the current weights (no
# virtual step); see pyramidkd_mm.nas.Architect.
_base_ = ['./det_darts.py']

custom_hooks = [dict(_base_.custom_hooks[0], unrolled=False)]
