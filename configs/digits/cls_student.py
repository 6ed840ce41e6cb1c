# The student alone: a half-width ResNet-18 trained like the teacher.
_base_ = ['./cls_teacher.py']

model = dict(backbone=dict(stem_channels=32, base_channels=32),
             head=dict(in_channels=256))
