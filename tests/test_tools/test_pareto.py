"""The Pareto tool on a tiny cls grid: runs differ only in the selector,
finished runs are cached, an interrupted run is trained again (once), and
the table and the figure are written."""
import json
import os
import sys

from test_tools import TINY, iters, random_teacher, run


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
