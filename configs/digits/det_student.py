# The student alone: a half-width R18-FPN Faster R-CNN on the digits scenes,
# trained exactly like the teacher.
_base_ = ['./det_teacher.py']

model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64)))
