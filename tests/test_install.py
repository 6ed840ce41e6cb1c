"""Both ways a user installs the package, with current setuptools (>= 80):
``pip install .`` and the PEP 660 editable ``pip install -e .``. Each is
built into a throwaway venv that sees the installed stack (``--no-deps``),
from a copy of the checkout, offline (tools/install.sh keeps a setuptools
wheel in ``<venv>/build-wheels``); then the ``pyramidkd_mm::`` scope must
resolve for teacher configs, ``_base_`` entries and mmengine's
``get_config``, and ``mim train pyramidkd_mm`` must find its configs and
tools where mim can (a regular install)."""
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import textwrap
import venv

from conftest import REPO

WHEELS = osp.join(sys.prefix, 'build-wheels')
NOT_SOURCE = ('.git', '.venv', 'data', 'work_dirs', 'results', 'build',
              '.mim', '__pycache__', '.pytest_cache', '*.egg-info')

CHECK = textwrap.dedent('''
    import os.path as osp, sys
    import pyramidkd_mm
    from mmengine.config import Config
    from mmengine.hub import get_config
    from pyramidkd_mm.scope import resolve_config
    print('package', osp.dirname(pyramidkd_mm.__file__))
    teacher = resolve_config('pyramidkd_mm::digits/det_teacher.py')
    assert osp.isfile(teacher), teacher
    with open(sys.argv[1], 'w') as f:  # a user's config on our base
        f.write("_base_ = ['pyramidkd_mm::digits/det_student.py']\\n"
                "model = dict(backbone=dict(depth=34))\\n")
    cfg = Config.fromfile(sys.argv[1])
    assert cfg.model.backbone.depth == 34 and cfg.model.neck.out_channels == 64
    assert get_config('pyramidkd_mm::digits/det_student.py').model.type \\
        == 'FasterRCNN'
    print('scope ok')
''')


def install(tmp_path, editable):
    assert os.listdir(WHEELS), f'{WHEELS} is empty: run tools/install.sh'
    env_dir = tmp_path / 'venv'
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / 'bin' / 'python')
    purelib = subprocess.check_output(
        [python, '-c', 'import sysconfig; '
         'print(sysconfig.get_paths()["purelib"])'], text=True).strip()
    with open(osp.join(purelib, 'installed_stack.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    pip = [python, '-m', 'pip', '--disable-pip-version-check', 'install',
           '-q', '--no-index', '--find-links', WHEELS]
    subprocess.run(pip + ['setuptools>=80'], check=True)
    source = tmp_path / 'source'
    shutil.copytree(REPO, source, symlinks=True,
                    ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(pip + ['--no-deps', '--no-build-isolation']
                   + (['-e'] if editable else []) + [str(source)],
                   check=True, cwd=tmp_path)
    return python, source


def run(python, *args, cwd):
    result = subprocess.run([python, *args], cwd=cwd, capture_output=True,
                            text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-3000:]
    return result.stdout


def test_editable_install(tmp_path):
    python, source = install(tmp_path, editable=True)
    out = run(python, '-c', CHECK, str(tmp_path / 'user.py'), cwd=tmp_path)
    assert f'package {source}/pyramidkd_mm' in out and 'scope ok' in out


def test_regular_install_and_mim_train(tmp_path, digits_data):
    python, _ = install(tmp_path, editable=False)
    out = run(python, '-c', CHECK, str(tmp_path / 'user.py'), cwd=tmp_path)
    assert 'site-packages/pyramidkd_mm' in out and 'scope ok' in out
    # mim finds the config by name and the train script in the package.
    out = run(python, '-m', 'mim', 'train', 'pyramidkd_mm',
              'cls_student.py', '--work-dir', str(tmp_path / 'mim'),
              '--cfg-options', 'train_cfg.max_iters=1',
              'train_cfg.val_interval=1', 'train_dataloader.batch_size=4',
              'val_dataloader.dataset.indices=8',
              'default_hooks.checkpoint.interval=1', cwd=REPO)
    assert osp.isfile(tmp_path / 'mim' / 'iter_1.pth'), out[-2000:]
