# Uniform KD: the student of det_student.py distilled on every FPN level
# (P2-P5) of every image from the R18 teacher of det_teacher.py.
_base_ = ['./det_student.py']

teacher_checkpoint = 'work_dirs/det_teacher/teacher.pth'
model = dict(
    _delete_=True,
    type='pyramidkd_mm.PyramidDistiller',
    student=_base_.model,
    teacher=dict(config='pyramidkd_mm::digits/det_teacher.py',
                 checkpoint=teacher_checkpoint),
    levels=('p2', 'p3', 'p4', 'p5'),
    distill_loss=dict(type='PearsonLoss', loss_weight=1.0),
    selector=dict(type='UniformSelector'))
# Under DDP, levels a selector switches off leave their connectors unused.
find_unused_parameters = True
