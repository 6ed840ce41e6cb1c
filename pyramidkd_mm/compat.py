"""Import-time check of the installed OpenMMLab stack.

Versions known to break get one error with the reason and the fix; versions
inside the toolboxes' own declared ranges that this project has not been
tested with only get a warning, so a cluster with, say, mmdet 3.2 or
mmengine 0.10.4 can still use the package.
"""
import warnings
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

# The tested matrix (README); other versions within the ranges below warn.
TESTED = {
    'torch': '2.13.0', 'mmengine': '0.10.7', 'mmcv': '2.1.0',
    'mmdet': '3.3.0', 'mmsegmentation': '1.2.2', 'mmpretrain': '1.2.0',
}
# package -> (lowest, first unsupported) major.minor, why, fix. The bounds
# are the OpenMMLab 2.0 generation the project is written against (the
# toolboxes check their own mmcv / mmengine ranges when they are imported).
SUPPORTED = {
    'torch': ((2, 0), None, 'torch.func and the autocast API are used',
              'pip install torch==2.13.0'),
    'mmengine': ((0, 7), (1, 0), 'the Runner, hooks, loops and analysis '
                 'API of mmengine 0.x are used',
                 'pip install mmengine==0.10.7'),
    'mmcv': ((2, 0), (3, 0), 'mmdet 3 and mmseg 1 need the mmcv 2 API',
             'bash tools/install.sh (builds mmcv 2.1.0 with ops for your '
             'torch) or, on GPU, mim install mmcv==2.1.0'),
    'mmdet': ((3, 0), (4, 0), 'the configs and models are mmdet 3.x',
              'pip install mmdet==3.3.0'),
    'mmsegmentation': ((1, 0), (2, 0), 'the configs and models are mmseg '
                       '1.x', 'pip install mmsegmentation==1.2.2'),
    'mmpretrain': ((1, 0), (2, 0), 'the configs and models are mmpretrain '
                   '1.x', 'pip install mmpretrain==1.2.0'),
}
REQUIRED = ('torch', 'mmengine', 'mmcv')  # the toolboxes: only their configs
# mmcv-lite is OpenMMLab's distribution of mmcv without the compiled ops
DISTRIBUTIONS = {'mmcv': ('mmcv', 'mmcv-lite')}


def _major_minor(text):
    return tuple(int(part) for part in text.split('.')[:2])


def _installed_version(name):
    for distribution in DISTRIBUTIONS.get(name, (name, )):
        try:
            return version(distribution)
        except PackageNotFoundError:
            pass
    raise PackageNotFoundError(name)


def check_versions():
    """Raise ImportError for a version known to break, warn for untested
    ones."""
    for name, (low, high, why, fix) in SUPPORTED.items():
        try:
            found = _installed_version(name)
        except PackageNotFoundError:
            if name in REQUIRED:
                raise ImportError(f'pyramidkd_mm needs {name}, which is not '
                                  f'installed. Fix: {fix}') from None
            continue
        if _major_minor(found) < low or (high and
                                         _major_minor(found) >= high):
            bound = f'{low[0]}.{low[1]}' + (
                f' to below {high[0]}.{high[1]}' if high else ' or newer')
            raise ImportError(
                f'pyramidkd_mm needs {name} {bound} ({why}) but found '
                f'{name}=={found}. Fix: {fix}')
        if not found.startswith(TESTED[name]):
            warnings.warn(
                f'pyramidkd_mm is tested with {name}=={TESTED[name]}, found '
                f'{name}=={found}; it should work, but results may differ. '
                f'The tested version: {fix}', stacklevel=2)
    if find_spec('mmcv._ext') is None:
        # classification and the toy models run without them, so only warn:
        # mmdet and mmseg fail at their own import of mmcv.ops
        warnings.warn(
            'mmcv is installed without its compiled ops (mmcv._ext): '
            'classification works, detection and segmentation (mmdet, mmseg) '
            f'do not. Fix: {SUPPORTED["mmcv"][3]}', stacklevel=2)
