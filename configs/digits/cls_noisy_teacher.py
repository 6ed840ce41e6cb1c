# The KD teacher for noisy digits: twice the student's width, trained on the
# same noisy labels (a real teacher's data is as noisy as the student's).
_base_ = ['./cls_noisy.py']

model = dict(backbone=dict(stem_channels=16, base_channels=16),
             head=dict(in_channels=128))
