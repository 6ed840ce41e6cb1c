"""pyramidkd_mm's registries, children of mmengine's roots.

Configs built in another scope (``default_scope='mmdet'`` etc.) reach these
modules with the ``pyramidkd_mm.`` prefix, e.g.
``type='pyramidkd_mm.PyramidDistiller'``.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='pyramidkd_mm',
                  locations=['pyramidkd_mm.models', 'pyramidkd_mm.rl',
                             'pyramidkd_mm.nas'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS,
                          scope='pyramidkd_mm',
                          locations=['pyramidkd_mm.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='pyramidkd_mm',
                 locations=['pyramidkd_mm.engine', 'pyramidkd_mm.nas'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='pyramidkd_mm',
                 locations=['pyramidkd_mm.nas'])
