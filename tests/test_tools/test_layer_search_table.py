"""The layer-search table: each search's row carries the retrained metric of
the mask it chose, whatever the searcher (gate margins, probabilities or
scored candidates)."""
import os
import sys

from test_tools import REPO

sys.path.insert(0, os.path.join(REPO, 'tools', 'analysis_tools'))
import layer_search_table  # noqa: E402
from grid_summary import aggregate  # noqa: E402
from pareto import TASKS  # noqa: E402

from pyramidkd_mm.experiment import RunRecord  # noqa: E402


def search(searcher, mask, **details):
    return dict(searcher=searcher, mask=mask, distill_cost=0.4,
                metric={'coco/bbox_mAP': 0.5}, search_wall_s=120.0,
                device_hours=0.0333, **details)


def test_each_search_gets_its_masks_retrained_metric():
    spec = TASKS['det']
    assert layer_search_table.selector_of([], spec['levels']) == 'student'
    assert layer_search_table.selector_of(
        list(spec['levels']), spec['levels']) == 'uniform'
    assert layer_search_table.selector_of(
        ['p3', 'p4'], spec['levels']) == 'mask:p3+p4'
    metrics = dict(student=(0.50, 0.52), uniform=(0.58, 0.60),
                   **{'mask:p3+p4': (0.55, 0.57)})
    records = {
        (name, None, seed): RunRecord(
            run={}, fingerprint='', metrics={'coco/bbox_mAP': value},
            distill_cost=dict(student=0.0, uniform=1.0).get(name, 0.4),
            wall_s=60.0, iters=10)
        for name, values in metrics.items()
        for seed, value in enumerate(values)}
    results = [search('EA-LS', ['p3', 'p4'], candidates=[1, 2, 3]),
               search('GDAS-LS', [], margins=[-0.01, 0.02, -0.03, -0.04]),
               search('DARTS-LS', ['p2', 'p3', 'p4', 'p5'],
                      probabilities=[0.6, 0.7, 0.8, 0.9])]
    lines = layer_search_table.table(
        results, aggregate(records, spec['metric']), spec, seeds=2)
    assert lines[0].endswith('| bbox_mAP retrained (2 seeds) |')
    ea, gdas, darts, uniform, student = lines[2:]
    assert ea == ('| EA-LS | p3 p4 | 3 masks scored | 0.500 | 0.40 | '
                  '2.0 min | 0.033 | 0.560 ± 0.014 |')
    assert gdas.startswith('| GDAS-LS | (none) | margins -0.01 / +0.02')
    assert gdas.endswith('| 0.510 ± 0.014 |')  # the student alone
    assert 'gates 0.600 / 0.700' in darts
    assert darts.endswith('| 0.590 ± 0.014 |')  # uniform KD
    assert uniform == ('| uniform KD (no search) | - | - | - | 1.00 | - | - '
                       '| 0.590 ± 0.014 |')
    assert student.startswith('| student alone | - | - | - | 0.00 |')
