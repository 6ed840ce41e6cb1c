# Uniform pyramid KD on ADE20K: DeepLabV3+ R101-D8 teacher -> R50-D8 student,
# every backbone stage (C2-C5) of every image.
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py'
]
custom_imports = dict(imports=['pyramidkd_mm'], allow_failed_imports=False)

teacher_checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x512_80k_ade20k/deeplabv3plus_r101-d8_512x512_80k_ade20k_20200615_014139-d5730af7.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='pyramidkd_mm.PyramidDistiller',
    student=_base_.model,
    teacher=dict(
        config='mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-80k_ade20k-512x512.py',  # noqa: E501
        checkpoint=teacher_checkpoint),
    levels=('c2', 'c3', 'c4', 'c5'),
    distill_loss=dict(type='PearsonLoss', loss_weight=1.0),
    selector=dict(type='UniformSelector'))
find_unused_parameters = True
