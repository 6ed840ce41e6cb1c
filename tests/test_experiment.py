import os.path as osp
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyramidkd_mm.experiment import TrainingRun, code_version

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_fingerprints_from_worker_threads_match_the_serial_one():
    # The Pareto tool fingerprints runs in parallel; mmengine resolves the
    # `mmdet::` bases through pkg_resources, which races between threads.
    run = TrainingRun(osp.join(ROOT, 'configs', 'digits', 'det_student.py'),
                      'unused', ['randomness.seed=1'])
    serial = run.fingerprint()
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda _: run.fingerprint(), range(12)))
    assert parallel == [serial] * 12
    other = TrainingRun(run.config, 'unused', ['randomness.seed=2'])
    assert other.fingerprint() != serial


def test_code_version_is_the_checkouts_commit():
    if not osp.isdir(osp.join(ROOT, '.git')):
        pytest.skip('not a git checkout')
    head = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short',
                           'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    changed = subprocess.run(['git', '-C', ROOT, 'status', '--porcelain',
                              'pyramidkd_mm', 'configs', 'tools'],
                             capture_output=True, text=True,
                             check=True).stdout
    assert code_version() == head + ('+dirty' if changed else '')
