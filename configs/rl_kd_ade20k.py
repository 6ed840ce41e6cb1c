# RL-PyramidKD on ADE20K (DeepLabV3+ R101 -> R50). The RL selector comes with
# issue #3; until then this runs the uniform selector with the final wiring.
_base_ = ['./uniform_kd_ade20k.py']
