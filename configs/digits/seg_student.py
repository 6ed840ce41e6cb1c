# The student alone: a half-width R18-V1c DeepLabV3+ trained like the teacher.
_base_ = ['./seg_teacher.py']

model = dict(
    backbone=dict(stem_channels=32, base_channels=32),
    decode_head=dict(in_channels=256, c1_in_channels=32, channels=64),
    auxiliary_head=dict(in_channels=128, channels=32))
