"""The Pareto tool on a tiny cls grid: runs differ only in the selector,
finished runs are cached, an interrupted run is trained again (once), and
the table and the figure are written."""
import json
import os
import sys
from argparse import Namespace

import pytest
from mmengine.config import Config, DictAction

from test_tools import REPO, TINY, iters, random_teacher, run


def pareto(tmp_path, teacher):
    return run(sys.executable, 'tools/analysis_tools/pareto.py', '--task',
               'cls', '--selectors', 'student', 'uniform', '--seeds', '0',
               '--teacher', teacher,
               '--work-root', tmp_path / 'grid', '--out', tmp_path / 'out',
               '--cfg-options', *TINY, *iters(2))


def test_grid_caches_resumes_and_writes(tmp_path, digits_data):
    teacher = random_teacher(tmp_path, 'cls')
    pareto(tmp_path, teacher)
    root = tmp_path / 'grid' / 'cls'
    runs = sorted(os.listdir(root))
    assert runs == ['student_s0', 'uniform_s0']
    records = {r: json.loads((root / r / 'run_record.json').read_text())
               for r in runs}
    options = {r: rec['run']['options'] for r, rec in records.items()}
    # Same seed, teacher and overrides: only the selector differs.
    assert options['uniform_s0'] == options['student_s0'][:2] + \
        options['student_s0'][4:]
    assert records['student_s0']['distill_cost'] == 0
    assert records['uniform_s0']['distill_cost'] == 1
    assert all(rec['cpu_s'] > 0 for rec in records.values())
    # A run killed midway (no record) is trained again; the others not.
    (root / 'uniform_s0' / 'run_record.json').unlink()
    kept = {r: (root / r / 'run_record.json').stat().st_mtime
            for r in runs if r != 'uniform_s0'}
    pareto(tmp_path, teacher)
    assert kept == {r: (root / r / 'run_record.json').stat().st_mtime
                    for r in kept}
    assert (root / 'uniform_s0' / 'run_record.json').exists()
    table = (tmp_path / 'out' / 'pareto_cls.md').read_text()
    rows = [line for line in table.splitlines()
            if line.startswith('| ') and 'selector' not in line]
    assert [row.split('|')[1].strip() for row in rows] == [
        'student', 'uniform']
    assert all(row.rstrip(' |').endswith('1') for row in rows)  # 1 seed
    assert (tmp_path / 'out' / 'pareto_cls.png').stat().st_size > 10000
    # the table says which code trained its runs
    code = {rec['code'] for rec in records.values()} | {
        json.loads((root / 'uniform_s0' / 'run_record.json').read_text())[
            'code']}
    assert len(code) == 1 and None not in code
    assert table.rstrip().endswith(f'Trained with the code of '
                                   f'{code.pop()} (2 runs).')


def test_rl_variants_map_to_config_options():
    sys.path.insert(0, os.path.join(REPO, 'tools', 'analysis_tools'))
    import pareto
    name = ('rl:action=sample,reward=gap,freeze=None,standardize=1,'
            'features=0,calibrate=1')
    runs = pareto.grid('det', [name], [0.5], [1], '/nowhere/teacher.pth',
                       '/tmp/grid')
    (key, run), = runs.items()
    assert key == (name, 0.5, 1)
    assert run.config.endswith('configs/digits/det_rl_kd.py')
    cfg = Config.fromfile(run.config)
    parsed = Namespace()
    DictAction(option_strings=[], dest='options')(None, parsed, run.options)
    cfg.merge_from_dict(parsed.options)
    assert cfg.model.selector.action == 'sample'
    assert cfg.model.selector.env.reward == 'gap'
    assert cfg.model.selector.env.budget == 0.5
    assert cfg.custom_hooks[0]['freeze'] is None
    assert cfg.model.selector.env.standardize_signals is True
    assert cfg.model.selector.env.pooled_features is False
    assert cfg.model.selector.calibrate is True
    assert cfg.randomness.seed == 1
    with pytest.raises(ValueError, match="unknown selector option 'actions'"):
        pareto.variant_options('actions=sample', pareto.RL_KEYS)
    # a shorter phase 1: phase 2 starts at 5 % of det's 500 iterations
    (_, run), = pareto.grid('det', ['rl:warmup=0.05'], [0.25], [0], '/t.pth',
                            '/g').items()
    assert run.options[-1] == 'custom_hooks.0.milestones=[25,250]'
    (_, run), = pareto.grid('det', ['uncertainty:warmup=0.05,pick=sure'],
                            [0.25], [0], '/t.pth', '/g').items()
    assert run.options[2:] == [
        'model.selector.type=UncertaintySelector',
        'model.selector.budget=0.25', 'model.selector.warmup=0.05',
        'model.selector.pick=sure']
    (_, run), = pareto.grid('det', ['oracle:warmup=0.05,pick=near'],
                            [0.25], [0], '/t.pth', '/g').items()
    assert run.options[2:] == [
        'model.selector.type=GapOracleSelector',
        'model.selector.budget=0.25', 'model.selector.warmup=0.05',
        'model.selector.pick=near']
    with pytest.raises(ValueError, match="unknown selector option 'pick'"):
        pareto.grid('det', ['random_samples:pick=sure'], [0.25], [0],
                    '/t.pth', '/g')
    with pytest.raises(ValueError, match="unknown selector option 'warmup'"):
        pareto.grid('det', ['early:warmup=0.1'], [0.25], [0], '/t.pth', '/g')
    (key, run), = pareto.grid('det', ['random_samples:warmup=0.2'], [0.5],
                              [1], '/t.pth', '/g').items()
    assert run.options[2:] == [
        'model.selector.type=RandomSelector', 'model.selector.budget=0.5',
        'model.selector.mode=samples', 'model.selector.warmup=0.2']
    assert run.work_dir.endswith('det/random_samples_warmup_0.2_b0.5_s1')
    (_, run), = pareto.grid('det', ['random_samples:importance=1'], [0.25],
                            [0], '/t.pth', '/g').items()
    assert run.options[-1] == 'model.selector.importance=True'
    (_, run), = pareto.grid('det', ['rl:calibrate=1,importance=1'], [0.25],
                            [0], '/t.pth', '/g').items()
    assert run.options[-2:] == ['model.selector.calibrate=True',
                                'model.selector.importance=True']
    # an A/A pair: the same run with the selector's stream of another seed
    (_, run), = pareto.grid('seg', ['random_samples:warmup=0.2,stream=100'],
                            [0.5], [1], '/t.pth', '/g').items()
    assert run.options[-1] == 'model.selector.stream_seed=100'
    assert run.work_dir.endswith(
        'seg/random_samples_warmup_0.2_stream_100_b0.5_s1')
    (_, run), = pareto.grid('seg', ['rl:stream=100'], [0.5], [1], '/t.pth',
                            '/g').items()
    assert run.options[-1] == 'model.selector.stream_seed=100'


def test_a_selector_with_a_budget_of_its_own():
    sys.path.insert(0, os.path.join(REPO, 'tools', 'analysis_tools'))
    import pareto
    runs = pareto.grid('det', ['student', 'random_samples',
                               'random_samples@0.6'],
                       [0.25, 0.5], [0], '/nowhere/teacher.pth', '/tmp/grid')
    assert sorted(runs, key=str) == sorted([
        ('student', None, 0), ('random_samples', 0.25, 0),
        ('random_samples', 0.5, 0), ('random_samples', 0.6, 0)], key=str)
    assert runs['random_samples', 0.6, 0].work_dir.endswith(
        'det/random_samples_b0.6_s0')
    assert 'model.selector.budget=0.6' in runs[
        'random_samples', 0.6, 0].options
    early = pareto.grid('cls', ['early@0.3'], [0.5], [1], '/t.pth', '/g')
    assert early['early', 0.3, 1].options[2:] == [
        'model.selector.type=EarlySelector', 'model.selector.budget=0.3']
