"""What a grid of runs says: its rows (mean and std over seeds), the
Markdown table, and the standings (the distillation gap in pooled
standard deviations, each selector against the random controls at the same
spent cost, and the A/A noise floor of random choices). Used by
``pareto.py`` and ``layer_search_table.py``."""
import math
import statistics
from collections import Counter


def spec_items(spec):
    """{key: value} of a selector variant 'key=value,...'."""
    return dict(item.partition('=')[::2]
                for item in filter(None, spec.split(',')))


def provenance(records):
    """Which code trained the grid's runs (see ``code_version``)."""
    counts = Counter(record.code or 'unknown' for record in records.values())
    return 'Trained with the code of ' + ', '.join(
        f'{code} ({n} run{"s" if n > 1 else ""})'
        for code, n in sorted(counts.items())) + '.'


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values)
                                     if len(values) > 1 else 0.0)


def aggregate(records, metric):
    """{(selector, budget): dict(metric, cost, wall mean and std, n and the
    metric per seed)}."""
    points = {}
    for (name, budget, seed), record in records.items():
        points.setdefault((name, budget), {})[seed] = record
    rows = {}
    for key, group in points.items():
        per_seed = {s: r.metrics[metric] for s, r in sorted(group.items())}
        rows[key] = dict(
            n=len(group), per_seed=per_seed,
            metric=mean_std(list(per_seed.values())),
            cost=mean_std([r.distill_cost or 0.0 for r in group.values()]),
            wall=mean_std([r.wall_s / 60 for r in group.values()]))
    return rows


def fmt(pair, digits=3):
    mean, std = pair
    return '-' if mean is None else f'{mean:.{digits}f} ± {std:.{digits}f}'


def table(rows, metric, teacher):
    lines = [f'| selector | budget | {metric} | per seed | spent teacher '
             'compute | wall time (min) | seeds |', '|---' * 7 + '|']
    for (name, budget), row in sorted(
            rows.items(), key=lambda kv: (kv[1]['cost'][0], kv[0][0])):
        seeds = ' / '.join(f'{v:.3f}' for v in row['per_seed'].values())
        lines.append(f"| {name} | {'-' if budget is None else budget} | "
                     f"{fmt(row['metric'])} | {seeds} | "
                     f"{fmt(row['cost'], 2)} | {fmt(row['wall'], 1)} | "
                     f"{row['n']} |")
    if teacher is not None:
        lines.append(f'| teacher | - | {teacher.metrics[metric]:.3f} | - | '
                     f'- | {teacher.wall_s / 60:.1f} | 1 |')
    return '\n'.join(lines)


def pooled(*stds):
    return math.sqrt(sum(s * s for s in stds) / len(stds))


def paired(row, base):
    """'; paired by seed ...' text: mean ± std of ``row`` - ``base`` over
    the seeds both ran (same initial state and batches per seed), or ''."""
    seeds = sorted(set(row['per_seed']) & set(base['per_seed']))
    if len(seeds) < 2:
        return ''
    mean, std = mean_std([row['per_seed'][s] - base['per_seed'][s]
                          for s in seeds])
    return f'; paired by seed {mean:+.3f} ± {std:.3f} over {len(seeds)}'


def standings(rows):
    """What the table says, as text lines: the distillation gap in pooled
    standard deviations (and how many seeds give the resolution of 6 pooled
    std at 3 seeds: the standard error of a difference of means shrinks as
    sqrt(2 / seeds)), and each selector against random samples at the
    nearest spent cost (a selector with a warm-up, RL-KD's included, also
    against random samples and the heuristic after the same warm-up):
    ``beats`` / ``loses to`` by more than the pooled std, else ``ties``.
    Each line adds the per-seed paired difference, which seed-to-seed
    swings of a whole run do not blur."""
    lines = []
    if ('student', None) in rows and ('uniform', None) in rows:
        (low, s_low), (high, s_high) = (rows['student', None]['metric'],
                                        rows['uniform', None]['metric'])
        spread = pooled(s_low, s_high)
        n = min(rows['student', None]['n'], rows['uniform', None]['n'])
        if spread > 0:
            gap = (high - low) / spread
            # gap * sqrt(seeds / 2) standard errors = 6 * sqrt(3 / 2)
            seeds = math.ceil(3 * 6 ** 2 / gap ** 2) if gap > 0 else None
            lines.append(
                f'- uniform − student = {high - low:.3f}, {gap:.1f} pooled '
                f'std over {n} seeds; 6 pooled std at 3 seeds would need '
                f'{seeds or "∞"} seeds at this gap'
                + paired(rows['uniform', None], rows['student', None]))
    for (name, budget), (spread, streams, seeds) in choice_noise(
            rows).items():
        lines.append(f'- A/A: {name}@{budget} with {streams} random streams '
                     f'beside the same student: within-seed std {spread:.3f} '
                     f'over {seeds} seeds, the noise floor of a paired '
                     'difference per run')
    for (name, budget), row in rows.items():
        if name in ('student', 'uniform', 'random_samples'):
            continue
        label = name if budget is None else f'{name}@{budget}'
        lines += versus(label, row, rows, 'random_samples')
        base, _, spec = name.partition(':')
        items = spec_items(spec)
        warmup = items.get('warmup', '0.2' if base == 'rl' else None)
        if warmup is None:
            continue
        # and the same schedule with the controls' choices (also weighted
        # as the selector weighs its distilled samples)
        controls = [f'{control}:warmup={warmup}'
                    for control in ('random_samples', 'uncertainty')]
        if items.get('importance', '0') != '0':
            controls += [f'{control}:warmup={warmup},importance=1'
                         for control in ('random_samples', 'uncertainty')]
        for control in controls:
            if name != control:
                lines += versus(label, row, rows, control)
    return '\n'.join(lines)


def choice_noise(rows):
    """{(selector, budget): (pooled within-seed std, streams, seeds)} of
    the selectors that ran with other random streams (``stream=N``) beside
    their default one: the spread of their choices alone."""
    groups = {}
    for (name, budget), row in rows.items():
        base, _, spec = name.partition(':')
        items = spec_items(spec)
        items.pop('stream', None)
        plain = base + (':' + ','.join(f'{k}={v}' for k, v in items.items())
                        if items else '')
        groups.setdefault((plain, budget), []).append(row['per_seed'])
    noise = {}
    for key, replicates in groups.items():
        seeds = set.intersection(*(set(r) for r in replicates))
        if len(replicates) > 1 and seeds:
            variance = statistics.mean(statistics.variance(
                [r[s] for r in replicates]) for s in seeds)
            noise[key] = math.sqrt(variance), len(replicates), len(seeds)
    return noise


def versus(label, row, rows, control):
    """['- label ... beats / ties / loses to <control> at its nearest spent
    cost'], or [] when the grid has no such control."""
    controls = [(r['cost'][0], r) for (name, _), r in rows.items()
                if name == control]
    if not controls:
        return []
    cost, base = min(controls, key=lambda c: abs(c[0] - row['cost'][0]))
    diff = row['metric'][0] - base['metric'][0]
    spread = pooled(row['metric'][1], base['metric'][1])
    verdict = ('beats' if diff > spread else
               'loses to' if diff < -spread else 'ties')
    return [f'- {label} at {row["cost"][0]:.2f} spent {verdict} '
            f'{control.replace("_", " ")} at {cost:.2f} ({diff:+.3f}, '
            f'pooled std {spread:.3f}{paired(row, base)})']
