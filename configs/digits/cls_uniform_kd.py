# Uniform KD: the cls student distilled on every backbone stage (C2-C5) of
# every crop from the cls teacher.
_base_ = ['./cls_student.py']

teacher_checkpoint = 'work_dirs/cls_teacher/teacher.pth'
model = dict(
    _delete_=True,
    type='pyramidkd_mm.PyramidDistiller',
    student=_base_.model,
    teacher=dict(config='pyramidkd_mm::digits/cls_teacher.py',
                 checkpoint=teacher_checkpoint),
    levels=('c2', 'c3', 'c4', 'c5'),
    distill_loss=dict(type='PearsonLoss', loss_weight=1.0),
    selector=dict(type='UniformSelector'))
find_unused_parameters = True
