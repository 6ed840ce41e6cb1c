# Uniform pyramid KD on COCO: Faster R-CNN R101-FPN teacher -> R50-FPN student,
# every FPN level (P2-P5) of every image, PKD's Pearson loss.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['pyramidkd_mm'], allow_failed_imports=False)

teacher_checkpoint = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='pyramidkd_mm.PyramidDistiller',
    student=_base_.model,
    teacher=dict(config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
                 checkpoint=teacher_checkpoint),
    levels=('p2', 'p3', 'p4', 'p5'),
    distill_loss=dict(type='PearsonLoss', loss_weight=6.0),
    selector=dict(type='UniformSelector'))
# Under DDP, levels a selector switches off leave their connectors unused.
find_unused_parameters = True
