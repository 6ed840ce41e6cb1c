"""Import-time check of the tested version matrix.

A mismatching OpenMMLab package fails in obscure places (registry scopes,
missing ops, changed signatures), so it is named here with the fix instead.
"""
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

# package -> (required version, install hint)
MATRIX = {
    'mmengine': ('0.10.7', 'pip install mmengine==0.10.7'),
    'mmcv': ('2.1.0', 'bash tools/install.sh (builds mmcv 2.1.0 with ops '
             'for your torch) or, on GPU, mim install mmcv==2.1.0'),
    'mmdet': ('3.3.0', 'pip install mmdet==3.3.0'),
    'mmsegmentation': ('1.2.2', 'pip install mmsegmentation==1.2.2'),
    'mmpretrain': ('1.2.0', 'pip install mmpretrain==1.2.0'),
}
REQUIRED = ('mmengine', 'mmcv')  # the toolboxes are needed only by configs using them
# package -> (lowest, first unsupported) major.minor, install hint. torch 2.14
# needs C++20, against which mmcv 2.1.0 does not build.
RANGES = {
    'torch': ((2, 0), (2, 14), 'pip install --isolated torch==2.13.0 '
              'torchvision==0.28.0 (tested), or any torch 2.0-2.13 with a '
              'matching mmcv build'),
    'numpy': ((1, 23), (3, 0), 'pip install "numpy>=1.23,<3"'),
}


def _major_minor(text):
    return tuple(int(part) for part in text.split('.')[:2])


def check_versions():
    """Raise ImportError naming the first package that does not match."""
    for name, (wanted, fix) in MATRIX.items():
        try:
            found = version(name)
        except PackageNotFoundError:
            if name in REQUIRED:
                raise ImportError(
                    f'pyramidkd_mm needs {name}=={wanted}, which is not '
                    f'installed. Fix: {fix}') from None
            continue
        if found != wanted:
            raise ImportError(
                f'pyramidkd_mm is tested with {name}=={wanted} but found '
                f'{name}=={found}. Fix: {fix}')
    for name, (low, high, fix) in RANGES.items():
        found = version(name)
        if not low <= _major_minor(found) < high:
            raise ImportError(
                f'pyramidkd_mm supports {name} {low[0]}.{low[1]} to below '
                f'{high[0]}.{high[1]} but found {name}=={found}. Fix: {fix}')
    if find_spec('mmcv._ext') is None:
        raise ImportError(
            'mmcv 2.1.0 is installed without its compiled ops (mmcv._ext), '
            f'which mmdet and mmseg need. Fix: {MATRIX["mmcv"][1]}')
