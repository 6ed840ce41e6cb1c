# Uniform KD (C2-C5, Pearson) on noisy digits from the noisy-data teacher.
_base_ = ['./cls_noisy.py']

teacher_checkpoint = 'work_dirs/cls_noisy_teacher/teacher.pth'
model = dict(
    _delete_=True,
    type='pyramidkd_mm.PyramidDistiller',
    student=_base_.model,
    teacher=dict(config='pyramidkd_mm::digits/cls_noisy_teacher.py',
                 checkpoint=teacher_checkpoint),
    levels=('c2', 'c3', 'c4', 'c5'),
    distill_loss=dict(type='PearsonLoss', loss_weight=1.0),
    selector=dict(type='UniformSelector'))
find_unused_parameters = True
