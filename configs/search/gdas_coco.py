# GDAS-LS on COCO: Gumbel-softmax straight-through skip/distill samples per
# FPN level, temperature 10 -> 0.1 over the 2 search epochs.
_base_ = ['./darts_coco.py']

model = dict(selector=dict(type='GDASSelector'))
