"""Training runs that are trained once: the run-and-cache code of the bench
tools (the Pareto grid, the demo, the layer-search retrains).

A :class:`TrainingRun` is a config, its ``--cfg-options`` and a work_dir.
:func:`run_cached` trains it with ``tools/train.py`` in a subprocess unless
the work_dir holds the record of the same run, and returns that record: the
final validation metrics, the teacher compute the run spent per sample
(``distill_cost_mean``, see :class:`PyramidDistiller`) and its wall time. The
record is written only once the run has finished, and an unfinished work_dir
is cleared before the run starts again, so an interrupted grid resumes
without counting a run twice or training a finished one again.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import threading
import time
from argparse import Namespace
from dataclasses import asdict, dataclass, field
from glob import glob

from mmengine.config import Config, DictAction

from .scope import PACKAGE_DIR

# Config.fromfile resolves `package::` bases through pkg_resources, whose
# working set is not thread-safe: tools fingerprint runs from worker threads.
_CONFIG_LOCK = threading.Lock()

RECORD = 'run_record.json'


def tools_root():
    """This package's ``tools/`` (installed under ``.mim``, or the
    checkout's)."""
    for root in (osp.join(PACKAGE_DIR, '.mim', 'tools'),
                 osp.join(osp.dirname(PACKAGE_DIR), 'tools')):
        if osp.isdir(root):
            return root
    raise FileNotFoundError(f'no tools/ found beside {PACKAGE_DIR}')


@dataclass
class TrainingRun:
    """One training run.

    Attributes:
        config (str): the config file.
        work_dir (str): where it trains; its record is kept there.
        options (list[str]): ``--cfg-options`` entries, ``key=value``.
    """
    config: str
    work_dir: str
    options: list = field(default_factory=list)

    def fingerprint(self):
        """Hash of the resolved config with the options applied: a record
        of an edited config (or of one of its bases) is not reused."""
        with _CONFIG_LOCK:
            cfg = Config.fromfile(self.config)
        if self.options:  # parsed as the tools' --cfg-options are
            parsed = Namespace()
            DictAction(option_strings=[], dest='options')(
                None, parsed, self.options)
            cfg.merge_from_dict(parsed.options)
        return hashlib.sha1(cfg.pretty_text.encode()).hexdigest()


@dataclass
class RunRecord:
    """What a finished run measured.

    Attributes:
        run (dict): the :class:`TrainingRun` it belongs to.
        fingerprint (str): :meth:`TrainingRun.fingerprint` when it ran.
        metrics (dict): the last validation metrics.
        distill_cost (float | None): mean teacher compute spent per sample
            over training, as a fraction of uniform KD (None: no distiller).
        wall_s (float): wall time of the whole run (start, training,
            validation).
        iters (int): training iterations.
        code (str | None): :func:`code_version` when it ran (None: not
            known, or a record from before it was kept).
        cpu_s (float | None): CPU time of the training process and the
            children it waited for (data workers); unlike the wall time it
            does not grow with what else the machine runs (None: a record
            from before it was kept).
    """
    run: dict
    fingerprint: str
    metrics: dict
    distill_cost: float
    wall_s: float
    iters: int
    code: str = None
    cpu_s: float = None

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


def code_version():
    """The commit of the checkout this package runs from, ``+dirty`` if its
    code, configs or tools differ from it; None outside a git checkout.
    The fingerprint sees configs only, so a table says which code its runs
    were trained with."""
    root = osp.dirname(PACKAGE_DIR)
    git = ['git', '-C', root]
    try:
        commit = subprocess.run(git + ['rev-parse', '--short', 'HEAD'],
                                capture_output=True, text=True, check=True)
        changed = subprocess.run(
            git + ['status', '--porcelain', '--', 'pyramidkd_mm', 'configs',
                   'tools'], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ('+dirty' if changed.stdout else '')


def read_scalars(work_dir):
    """Training and validation scalars of the latest run in ``work_dir``."""
    logs = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        return []
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f]


def summarize(work_dir):
    """The last validation metrics, the teacher compute spent per sample
    over the run (the last logged ``distill_cost_mean``) and the last
    training iteration of a finished run."""
    scalars = read_scalars(work_dir)
    train = [s for s in scalars if 'loss' in s]
    val = [s for s in scalars if 'loss' not in s and 'step' in s]
    if not val:
        raise RuntimeError(f'{work_dir} has no validation result')
    costs = [s['distill_cost_mean'] for s in train
             if 'distill_cost_mean' in s]
    metrics = {k: v for k, v in val[-1].items()
               if k not in ('step', 'data_time', 'time')}
    return metrics, (costs[-1] if costs else None), \
        train[-1]['iter'] if train else 0


def run_cached(run, force=False, env=None):
    """Train ``run`` unless its work_dir records the same finished run.

    Args:
        run (TrainingRun): the run.
        force (bool): train again even if a record exists.
        env (dict, optional): extra environment variables of the process.

    Returns:
        RunRecord: the record of the finished run.
    """
    record = osp.join(run.work_dir, RECORD)
    fingerprint = run.fingerprint()
    if not force and osp.exists(record):
        done = RunRecord.load(record)
        if done.run == asdict(run) and done.fingerprint == fingerprint:
            return done
    shutil.rmtree(run.work_dir, ignore_errors=True)  # an unfinished run
    os.makedirs(run.work_dir)
    cmd = [sys.executable, osp.join(tools_root(), 'train.py'), run.config,
           '--work-dir', run.work_dir]
    if run.options:
        cmd += ['--cfg-options', *run.options]
    start, code = time.time(), code_version()
    with open(osp.join(run.work_dir, 'train.log'), 'w') as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, **(env or {})))
        # wait4: this child's own CPU time, also with other runs in
        # parallel threads (RUSAGE_CHILDREN would mix them)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:  # interrupted: leave no training behind
            child.kill()
            child.wait()
            raise
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f'training failed ({child.returncode}): '
                           f'{" ".join(cmd)}; see {log.name}')
    metrics, cost, iters = summarize(run.work_dir)
    done = RunRecord(asdict(run), fingerprint, metrics, cost,
                     time.time() - start, iters, code,
                     usage.ru_utime + usage.ru_stime)
    with open(record + '.tmp', 'w') as f:
        json.dump(asdict(done), f, indent=2)
    os.replace(record + '.tmp', record)
    return done
