from .distiller import PyramidDistiller, build_teacher
from .losses import NormalizedMSELoss, PearsonLoss
from .pyramid import PyramidTap
from .selectors import FixedSelector, UniformSelector

__all__ = [
    'PyramidDistiller', 'build_teacher', 'NormalizedMSELoss', 'PearsonLoss',
    'PyramidTap', 'FixedSelector', 'UniformSelector'
]
