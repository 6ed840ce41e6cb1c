"""What a layer search hands on: the chosen mask as a config fragment for
``FixedSelector`` and a ``search_result.json`` with its costs."""
import json
import os.path as osp

import torch
from mmengine.dist import get_world_size, is_main_process


def derive_mask(probabilities, teacher_cost, budget=None, threshold=0.5):
    """The fixed mask a gate search ends with.

    Args:
        probabilities (Tensor): (levels,) how much each level is wanted.
        teacher_cost (TeacherCost): the distiller's cost of a mask.
        budget (float, optional): the most relative teacher compute the
            mask may cost; levels are then added greedily in order of
            probability while the mask stays within the budget.
        threshold (float): without a budget, the levels above it.

    Returns:
        list[bool]: one flag per level.
    """
    if budget is None:
        return (probabilities > threshold).tolist()
    flags = torch.zeros(len(probabilities), dtype=torch.bool,
                        device=probabilities.device)
    for level in probabilities.argsort(descending=True).tolist():
        flags[level] = True
        if teacher_cost(flags[None]).item() > budget + 1e-6:
            flags[level] = False
    return flags.tolist()


def write_search_result(work_dir, searcher, levels, flags, cost, metric,
                        seconds, base_config=None, **details):
    """Write ``search_result.json`` and ``fixed_mask.py`` (main process).

    ``fixed_mask.py`` sets ``FixedSelector(mask=<level names>)``; with
    ``base_config`` it extends that config (the KD config the search was
    for), so ``tools/train.py work_dir/fixed_mask.py`` trains the chosen
    mask with the standard schedule, into ``work_dir/fixed_mask``.

    Args:
        metric (dict): the metric behind the choice and where it came from.
        seconds (float): the search's wall time; device-hours count one
            device per process.
        **details: searcher-specific records (candidates, probabilities).

    Returns:
        dict: the result as written.
    """
    names = [name for name, flag in zip(levels, flags) if flag]
    result = dict(searcher=searcher, mask=names, flags=[int(f) for f in flags],
                  distill_cost=round(float(cost), 4), metric=metric,
                  search_wall_s=round(seconds, 1), world_size=get_world_size(),
                  device_hours=round(seconds * get_world_size() / 3600, 4),
                  **details)
    if is_main_process():
        with open(osp.join(work_dir, 'search_result.json'), 'w') as f:
            json.dump(result, f, indent=2)
        lines = [f'# The mask chosen by {searcher} (search_result.json).']
        if base_config is not None:
            lines.append(f'_base_ = [{base_config!r}]')
        lines.append(
            'model = dict(selector=dict(\n    _delete_=True, '
            f"type='pyramidkd_mm.FixedSelector', mask={names!r}))")
        lines.append(f"work_dir = {osp.join(work_dir, 'fixed_mask')!r}")
        with open(osp.join(work_dir, 'fixed_mask.py'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return result
