# Uniform pyramid KD on ImageNet: ResNet-101 teacher -> ResNet-50 student,
# every backbone stage (C2-C5) of every image.
_base_ = ['mmpretrain::resnet/resnet50_8xb32_in1k.py']
custom_imports = dict(imports=['pyramidkd_mm'], allow_failed_imports=False)

teacher_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet101_8xb32_in1k_20210831-539c63f8.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='pyramidkd_mm.PyramidDistiller',
    student=_base_.model,
    teacher=dict(config='mmpretrain::resnet/resnet101_8xb32_in1k.py',
                 checkpoint=teacher_checkpoint),
    levels=('c2', 'c3', 'c4', 'c5'),
    distill_loss=dict(type='PearsonLoss', loss_weight=1.0),
    selector=dict(type='UniformSelector'))
find_unused_parameters = True
