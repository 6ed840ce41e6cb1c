import os.path as osp
from concurrent.futures import ThreadPoolExecutor

from pyramidkd_mm.experiment import TrainingRun

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
