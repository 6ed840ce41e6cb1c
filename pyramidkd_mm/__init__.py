"""pyramidkd_mm: RL-driven feature-pyramid knowledge distillation for
OpenMMLab detectors, segmentors and classifiers."""
from .compat import check_versions

check_versions()

from . import checkpoint, datasets, engine, models, nas, rl  # noqa: E402,F401
from .scope import register_scope  # noqa: E402
from .version import __version__  # noqa: E402

register_scope()

__all__ = ['__version__']
