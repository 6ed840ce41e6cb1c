from .control_selectors import (EarlySelector, RandomSelector,
                                UncertaintySelector)
from .distiller import PyramidDistiller
from .gap_oracle import GapOracleSelector
from .gradnorm import GradNorm
from .losses import NormalizedMSELoss, PearsonLoss
from .meta_weight_net import MetaWeightedModel, MetaWeightNet
from .pyramid import PyramidTap
from .rl_selector import RLSelector
from .selectors import FixedSelector, UniformSelector
from .teacher import build_teacher

__all__ = [
    'PyramidDistiller', 'build_teacher', 'GradNorm', 'NormalizedMSELoss',
    'EarlySelector', 'GapOracleSelector', 'PearsonLoss', 'PyramidTap',
    'FixedSelector', 'MetaWeightedModel', 'MetaWeightNet', 'RandomSelector',
    'RLSelector', 'UncertaintySelector', 'UniformSelector'
]
