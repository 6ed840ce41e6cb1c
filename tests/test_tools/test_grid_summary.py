"""The grid summary: the standings name ties, the seeds a gap needs and the
A/A noise floor."""
import os
import sys

import pytest

from test_tools import REPO

sys.path.insert(0, os.path.join(REPO, 'tools', 'analysis_tools'))
import grid_summary  # noqa: E402


def test_standings_name_ties_and_the_seeds_a_gap_needs():
    def row(mean, std, cost, per_seed=None):
        return dict(n=3, metric=(mean, std), cost=(cost, 0.0),
                    wall=(1.0, 0.0), per_seed=per_seed or {})

    rows = {('student', None): row(0.54, 0.01, 0.0),
            ('uniform', None): row(0.58, 0.01, 1.0),
            ('random_samples', 0.5): row(0.56, 0.01, 0.5),
            ('random_samples', 0.6): row(0.55, 0.3, 0.6,
                                         {0: 0.9, 1: 0.5, 2: 0.3}),
            ('uncertainty', 0.5): row(0.575, 0.01, 0.5),
            ('rl', 0.5): row(0.555, 0.3, 0.62, {0: 0.95, 1: 0.6, 2: 0.3}),
            ('random_samples:warmup=0.2', 0.5): row(0.57, 0.01, 0.5),
            ('rl:warmup=0.05', 0.25): row(0.6, 0.01, 0.25),
            ('uncertainty:warmup=0.05', 0.25): row(0.58, 0.01, 0.25),
            ('random_samples:warmup=0.05', 0.25): row(0.585, 0.01, 0.25)}
    lines = grid_summary.standings(rows).splitlines()
    # gap 0.04 = 4 pooled std: 108 / 16 -> 7 seeds
    assert lines[0].startswith('- uniform − student = 0.040, 4.0 pooled')
    assert lines[0].endswith('would need 7 seeds at this gap')
    # compared with the random control nearest in spent cost
    assert ('- uncertainty@0.5 at 0.50 spent beats random samples at 0.50 '
            '(+0.015') in lines[1]
    # a tie by the pooled std; per seed, +0.05, +0.1 and 0
    assert '- rl@0.5 at 0.62 spent ties random samples at 0.60' in lines[2]
    assert lines[2].endswith('paired by seed +0.050 ± 0.050 over 3)')
    # RL-KD also against its own schedule with random choices
    assert lines[3].startswith('- rl@0.5 at 0.62 spent ties random samples'
                               ':warmup=0.2 at 0.50 (-0.015')
    assert lines[4].startswith('- random_samples:warmup=0.2@0.5 at 0.50 '
                               'spent ties random samples at 0.50')
    # a shorter warm-up is compared with the controls after the same one
    assert lines[5].startswith('- rl:warmup=0.05@0.25 at 0.25 spent beats '
                               'random samples at 0.50')
    assert lines[6].startswith('- rl:warmup=0.05@0.25 at 0.25 spent beats '
                               'random samples:warmup=0.05 at 0.25 (+0.015')
    assert lines[7].startswith('- rl:warmup=0.05@0.25 at 0.25 spent beats '
                               'uncertainty:warmup=0.05 at 0.25 (+0.020')
    # so is a control after a warm-up, but not with itself
    assert lines[9].startswith('- uncertainty:warmup=0.05@0.25 at 0.25 '
                               'spent ties random samples:warmup=0.05 at '
                               '0.25 (-0.005')
    assert lines[11].startswith('- random_samples:warmup=0.05@0.25 at 0.25 '
                                'spent ties uncertainty:warmup=0.05')
    assert len(lines) == 12
    # a weighted selector against random samples weighted the same way
    rows[('random_samples:warmup=0.05,importance=1', 0.25)] = row(
        0.59, 0.01, 0.25)
    rows[('rl:warmup=0.05,calibrate=1,importance=1', 0.25)] = row(
        0.595, 0.01, 0.25)
    lines = grid_summary.standings(rows).splitlines()
    assert lines[-1].startswith(
        '- rl:warmup=0.05,calibrate=1,importance=1@0.25 at 0.25 spent ties '
        'random samples:warmup=0.05,importance=1 at 0.25 (+0.005')
    assert lines[-2].startswith(
        '- rl:warmup=0.05,calibrate=1,importance=1@0.25 at 0.25 spent beats '
        'uncertainty:warmup=0.05 at 0.25 (+0.015')
    weighted = [line for line in lines if line.startswith(
        '- random_samples:warmup=0.05,importance=1@0.25')]
    assert len(weighted) == 3  # random samples, after the warm-up, heuristic
    assert 'ties random samples:warmup=0.05 at 0.25 (+0.005' in weighted[1]
    # and against the heuristic weighted the same way
    rows[('uncertainty:warmup=0.05,importance=1', 0.25)] = row(
        0.62, 0.01, 0.25)
    assert any(line.startswith(
        '- rl:warmup=0.05,calibrate=1,importance=1@0.25 at 0.25 spent loses '
        'to uncertainty:warmup=0.05,importance=1 at 0.25 (-0.025')
        for line in grid_summary.standings(rows).splitlines())
    # A/A: the same selector from other random streams
    rows = {('random_samples:warmup=0.2', 0.5): row(
                0.5, 0.1, 0.5, {0: 0.5, 1: 0.7}),
            ('random_samples:warmup=0.2,stream=100', 0.5): row(
                0.5, 0.1, 0.5, {0: 0.6, 1: 0.7, 2: 0.1}),
            ('random_samples:stream=100', 0.5): row(0.5, 0.1, 0.5, {0: 0.1})}
    assert grid_summary.choice_noise(rows) == {
        ('random_samples:warmup=0.2', 0.5): (pytest.approx(0.05), 2, 2)}
    assert grid_summary.standings(rows).splitlines()[0] == (
        '- A/A: random_samples:warmup=0.2@0.5 with 2 random streams beside '
        'the same student: within-seed std 0.050 over 2 seeds, the noise '
        'floor of a paired difference per run')
