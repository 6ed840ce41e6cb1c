"""The ``pyramidkd_mm::`` config scope.

``pyramidkd_mm::digits/det_teacher.py`` names a config of this package, as
``mmdet::faster_rcnn/...`` names one of mmdet's: in ``_base_`` entries, in
teacher configs and wherever mmengine resolves a ``scope::path``.

mmengine resolves a scope through ``MODULE2PACKAGE`` (which lists only the
OpenMMLab toolboxes) and the package's installed location, looking in
``<package>/.mim/configs``. With a PEP 660 editable install (``pip install
-e .`` with current setuptools) the distribution's location is
site-packages, where the package's files are not. So the scope is
registered under the name of one of this package's modules, which mmengine
finds with importlib, i.e. where the code really is, in every install mode.
The registration adds a key to ``MODULE2PACKAGE`` and changes nothing else.
It happens on import, so it works where this package is imported before a
config is parsed (its tools, ``mim train pyramidkd_mm``); a config parsed by
another entry point resolves its ``_base_`` before its ``custom_imports``
and must name this package's configs by path (see README).
"""
import os.path as osp

from mmengine.config.utils import MODULE2PACKAGE
from mmengine.utils import get_installed_path

SCOPE = 'pyramidkd_mm'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


def register_scope():
    """Let mmengine resolve ``pyramidkd_mm::`` to this package's configs."""
    MODULE2PACKAGE.setdefault(SCOPE, __name__)


def config_root():
    """The folder ``pyramidkd_mm::`` paths point into: the installed
    package's ``.mim/configs`` (a copy for ``pip install .``, a link into the
    checkout for ``pip install -e .``), or the ``configs/`` of a source
    checkout that is only on ``PYTHONPATH``."""
    for root in (osp.join(PACKAGE_DIR, '.mim', 'configs'),
                 osp.join(osp.dirname(PACKAGE_DIR), 'configs')):
        if osp.isdir(root):
            return root
    raise FileNotFoundError(f'no configs found beside {PACKAGE_DIR}; '
                            'reinstall pyramidkd_mm (pip install .)')


def resolve_config(path):
    """Path of a config given as a file or as ``package::rel/path.py``
    (``mmdet::``, ``mmseg::``, ``mmpretrain::``, ``pyramidkd_mm::``)."""
    if '::' not in path:
        return path
    module, rel = path.split('::', 1)
    if module == SCOPE:
        root = config_root()
    else:
        try:
            root = osp.join(get_installed_path(
                MODULE2PACKAGE.get(module, module)), '.mim', 'configs')
        except Exception:  # noqa: BLE001 - one clear error for any failure
            raise ValueError(f'config {path!r}: package {module!r} is not '
                             'installed (unknown scope)') from None
    resolved = osp.join(root, rel)
    if not osp.isfile(resolved):
        raise FileNotFoundError(f'config {path!r} not found at {resolved}')
    return resolved
