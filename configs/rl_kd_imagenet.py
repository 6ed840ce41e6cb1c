# RL-PyramidKD on ImageNet (ResNet-101 -> ResNet-50). The RL selector comes
# with issue #3; until then this runs the uniform selector with the final
# wiring.
_base_ = ['./uniform_kd_imagenet.py']
