# Uniform KD on the scale-regime scenes: each image holds small-only
# (10-24 px), large-only (64-144 px) or mixed digits (its json 'scale'), so
# that different images need different pyramid levels. Same teacher.
_base_ = ['./det_uniform_kd.py']

data_root = 'data/digits/det_scales/'
digits_data = dict(task='det_scales', root=data_root)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
