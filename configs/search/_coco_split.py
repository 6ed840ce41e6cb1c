# What the COCO layer searches share: the student trains on train2017 minus
# its last 5,000 annotated images, which are the held-out split the search
# scores on (val2017 stays unseen until the chosen mask is retrained).
_base_ = ['../uniform_kd_coco.py']

num_held_out = 5000
num_annotated = 117266  # train2017 images left by filter_empty_gt
train_dataloader = dict(dataset=dict(indices=num_annotated - num_held_out))
held_out = dict(_base_.train_dataloader,
                dataset=dict(_base_.train_dataloader.dataset,
                             indices=-num_held_out))
