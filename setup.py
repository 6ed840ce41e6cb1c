"""Installs pyramidkd_mm with OpenMMLab's mim extension.

``configs/``, ``tools/`` and ``model-index.yml`` are exposed under
``pyramidkd_mm/.mim`` so that ``mim train pyramidkd_mm configs/<cfg>.py`` and
the ``pyramidkd_mm::`` config scope find them: symlinked for an editable
install, copied for a wheel or sdist.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')


def version():
    scope = {}
    with open(osp.join(ROOT, 'pyramidkd_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension():
    editable = {'develop', 'editable_wheel'} & set(sys.argv)
    packaged = {'bdist_wheel', 'sdist', 'build', 'install'} & set(sys.argv)
    if not (editable or packaged):
        return
    mim_path = osp.join(ROOT, 'pyramidkd_mm', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for item in MIM_ITEMS:
        src, dst = osp.join(ROOT, item), osp.join(mim_path, item)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)


def requirements(name):
    with open(osp.join(ROOT, 'requirements', name)) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith('#')]


add_mim_extension()
setup(
    name='pyramidkd_mm',
    version=version(),
    description='RL-driven feature-pyramid knowledge distillation for '
    'OpenMMLab detectors, segmentors and classifiers',
    long_description=open(osp.join(ROOT, 'README.md')).read()
    if osp.exists(osp.join(ROOT, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    package_data={'pyramidkd_mm': ['.mim/**/*']},
    python_requires='>=3.8',
    install_requires=['torch>=2.0', 'torchvision', 'mmcv>=2.0.0,<2.2.0']
    + requirements('runtime.txt'),
    extras_require={'tests': requirements('tests.txt')},
    license='Apache-2.0',
    zip_safe=False,
)
