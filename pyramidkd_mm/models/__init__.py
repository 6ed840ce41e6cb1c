from .distiller import PyramidDistiller, build_teacher
from .gradnorm import GradNorm
from .losses import NormalizedMSELoss, PearsonLoss
from .pyramid import PyramidTap
from .selectors import FixedSelector, UniformSelector

__all__ = [
    'PyramidDistiller', 'build_teacher', 'GradNorm', 'NormalizedMSELoss',
    'PearsonLoss', 'PyramidTap', 'FixedSelector', 'UniformSelector'
]
