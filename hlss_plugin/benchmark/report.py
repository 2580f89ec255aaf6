"""Seed statistics, tables and figures of the benchmark report
(``tools/benchmarks/benchmark.py``).

The tool keeps one report dict (written as ``benchmark.json``)::

    {'command': ..., 'machine': {...}, 'settings': {..., 'seeds': [0, 1],
     'knn_data': knn_split_stats(...)}, 'notes': [...],
     'methods': [{'method': 'hlss', 'config': ..., 'error': None,
                  'runs': [{'seed': 0, 'error': None, 'metrics':
                            {level: {key: fraction}}, 'diagnostics': {...},
                            'curve': [...], ...}, ...]}, ...]}

:func:`finalize` adds each method's mean ± std over its successful seeds
(``summary``, ``metrics``) and its comparison with ``random``
(``vs_random``); :func:`render_markdown` turns the report into
``benchmark.md``; :func:`plot_accuracy` and :func:`plot_curves` draw
``benchmark.png`` and ``curves.png``.

Spread rule: a method's mean is *within the seed spread* of the untrained
backbone's when ``|mean - mean_random| <= max(std, std_random)`` (sample
standard deviations over seeds, ``ddof=1``); it *beats* ``random`` when
``mean - mean_random`` is larger than that. Both need two or more
successful seeds on each side; with one seed there is no spread and no
mark.
"""
import math
import statistics
from typing import Any, Dict, Iterable, List, Optional, Sequence

__all__ = ['LEVELS', 'TABLE_KEYS', 'RANDOM', 'mean_std', 'summarize_runs',
           'compare_to_random', 'knn_split_stats', 'format_pm', 'finalize',
           'render_markdown', 'plot_accuracy', 'plot_curves',
           'curve_series']

LEVELS = ('patch', 'slide', 'patient')
#: Metric keys shown in the markdown table (json has all of them).
TABLE_KEYS = ('acc', 'mca')
#: Name of the untrained-backbone method.
RANDOM = 'random'
#: Mark on a mean within the seed spread of ``random``'s.
WITHIN_MARK = '≈'
#: Diagnostics shown in the table.
DIAGNOSTIC_KEY = 'effective_rank'


def mean_std(values: Iterable[float]) -> Dict[str, Any]:
    """``{'mean', 'std', 'n'}`` of ``values``; ``std`` is the sample
    standard deviation (``ddof=1``), None for fewer than two values;
    ``mean`` is None for none.

    Example:
        >>> mean_std([0.5, 0.7])['std'] == statistics.stdev([0.5, 0.7])
        True
        >>> mean_std([0.5])
        {'mean': 0.5, 'std': None, 'n': 1}
    """
    values = [float(v) for v in values if v is not None]
    if not values:
        return dict(mean=None, std=None, n=0)
    std = statistics.stdev(values) if len(values) > 1 else None
    return dict(mean=statistics.fmean(values), std=std, n=len(values))


def summarize_runs(runs: Sequence[dict]) -> Dict[str, Any]:
    """Mean ± std over the successful runs (``error`` None) of a method.

    Args:
        runs (Sequence[dict]): Per-seed entries with ``metrics``
            (``{level: {key: value}}``), optionally ``diagnostics``,
            ``train_time_s`` and ``images_seen``.

    Returns:
        dict: ``metrics`` (``{level: {key: mean_std}}``), ``diagnostics``
        (``{key: mean_std}``), ``train_time_s``, ``images_seen`` and
        ``seeds`` (the successful ones).
    """
    ok = [r for r in runs if r.get('error') is None and r.get('metrics')]
    metrics: Dict[str, Dict[str, Any]] = {}
    for run in ok:
        for level, values in run['metrics'].items():
            for key in values:
                metrics.setdefault(level, {})[key] = None
    for level, keys in metrics.items():
        for key in keys:
            keys[key] = mean_std(r['metrics'].get(level, {}).get(key)
                                 for r in ok)
    diag_keys = sorted({k for r in ok for k in (r.get('diagnostics') or {})})
    return dict(
        metrics=metrics,
        diagnostics={k: mean_std((r.get('diagnostics') or {}).get(k)
                                 for r in ok) for k in diag_keys},
        train_time_s=mean_std(r.get('train_time_s') for r in ok),
        images_seen=mean_std(r.get('images_seen') for r in ok),
        seeds=[r.get('seed') for r in ok])


def compare_to_random(stat: Optional[dict],
                      random_stat: Optional[dict]) -> Optional[str]:
    """``'above'``, ``'within'`` or ``'below'`` the seed spread of random.

    Args:
        stat (dict): :func:`mean_std` of the method.
        random_stat (dict): :func:`mean_std` of ``random``.

    Returns:
        str | None: None when either has fewer than two values (no spread
        to judge by).

    Example:
        >>> compare_to_random(mean_std([0.6, 0.7]), mean_std([0.3, 0.35]))
        'above'
        >>> compare_to_random(mean_std([0.4, 0.5]), mean_std([0.3, 0.5]))
        'within'
    """
    if not stat or not random_stat or stat['n'] < 2 or random_stat['n'] < 2:
        return None
    spread = max(stat['std'], random_stat['std'])
    diff = stat['mean'] - random_stat['mean']
    if abs(diff) <= spread:
        return 'within'
    return 'above' if diff > 0 else 'below'


def knn_split_stats(items: Iterable[dict], classes: int) -> Dict[str, Any]:
    """Sizes and chance levels of a kNN evaluation set.

    Args:
        items (Iterable[dict]): ``HierarchicalKNNDataset`` items, each with
            ``knn_role`` (``'bank'`` or another role: a query),
            ``gt_label``, ``slide_idx`` and ``patient_idx``.
        classes (int): Number of classes.

    Returns:
        dict: ``bank`` and ``query``: ``{'patches', 'slides', 'patients'}``
        counts; ``classes``; ``chance``: per level, ``uniform``
        (``1 / classes``) and ``majority`` (the share of the most frequent
        class among the level's query items: patches, slides or patients,
        a slide or patient taking its patches' label) as fractions.

    Raises:
        ValueError: For ``classes < 1`` or no query item.

    Example:
        >>> items = [dict(knn_role='query', gt_label=c, slide_idx=s,
        ...               patient_idx=0 if s < 2 else 1)
        ...          for c, s in [(0, 0), (0, 1), (1, 2)]]
        >>> stats = knn_split_stats(items, 2)
        >>> stats['query'], stats['chance']['patch']['majority']
        ({'patches': 3, 'slides': 3, 'patients': 2}, 0.6666666666666666)
    """
    if isinstance(classes, bool) or not isinstance(classes, int) \
            or classes < 1:
        raise ValueError(f'classes must be an int >= 1, got {classes!r}.')
    groups = {role: dict(patch={}, slide={}, patient={})
              for role in ('bank', 'query')}
    for n, item in enumerate(items):
        role = 'bank' if item['knn_role'] == 'bank' else 'query'
        label = int(item['gt_label'])
        for level, key in (('patch', n), ('slide', int(item['slide_idx'])),
                           ('patient', int(item['patient_idx']))):
            groups[role][level][key] = label
    if not groups['query']['patch']:
        raise ValueError('the kNN evaluation set has no query item; point '
                         'the query dataset at a split with patches.')
    stats: Dict[str, Any] = dict(classes=classes, chance={})
    for role, levels in groups.items():
        stats[role] = {f'{level}es' if level == 'patch' else f'{level}s':
                       len(labels) for level, labels in levels.items()}
    for level, labels in groups['query'].items():
        counts: Dict[int, int] = {}
        for label in labels.values():
            counts[label] = counts.get(label, 0) + 1
        stats['chance'][level] = dict(
            uniform=1.0 / classes,
            majority=max(counts.values()) / len(labels))
    return stats


def format_pm(stat: Optional[dict], scale: float = 100.0,
              digits: int = 1, mark: str = '') -> str:
    """``'71.4 ± 2.1'`` (``mean ± std`` times ``scale``), ``'71.4'`` for one
    value, ``'—'`` for none; ``mark`` is appended after a space.

    Example:
        >>> format_pm(mean_std([0.70, 0.72]), mark='≈')
        '71.0 ± 1.4 ≈'
    """
    if not stat or stat.get('mean') is None:
        return '—'
    text = f'{stat["mean"] * scale:.{digits}f}'
    if stat.get('std') is not None:
        text += f' ± {stat["std"] * scale:.{digits}f}'
    return f'{text} {mark}' if mark else text


def _method_error(runs: Sequence[dict]) -> Optional[str]:
    failed = [r for r in runs if r.get('error') is not None]
    if not failed:
        return None
    return '; '.join(f'seed {r.get("seed")}: {r["error"]}' for r in failed)


def finalize(report: dict) -> dict:
    """Fill each method's ``summary``, ``metrics`` (means), ``error``,
    ``images_seen`` / ``train_time_s`` (means) and ``vs_random``, in place.

    A method whose config failed keeps its ``error`` and has no runs. The
    comparison uses ``random``'s entry when the report has one.

    Returns:
        dict: The report.
    """
    for entry in report['methods']:
        runs = entry.setdefault('runs', [])
        if runs:
            entry['error'] = _method_error(runs)
            if all(r.get('error') is not None for r in runs):
                entry['error'] = 'every seed failed: ' + entry['error']
        summary = summarize_runs(runs)
        entry['summary'] = summary
        entry['metrics'] = ({level: {k: s['mean'] for k, s in keys.items()}
                             for level, keys in summary['metrics'].items()}
                            or None)
        entry['images_seen'] = summary['images_seen']['mean'] or 0
        entry['train_time_s'] = summary['train_time_s']['mean'] or 0.0
    random = next((e for e in report['methods'] if e['method'] == RANDOM),
                  None)
    for entry in report['methods']:
        if entry is random or random is None:
            entry['vs_random'] = None
            continue
        entry['vs_random'] = {
            level: {key: compare_to_random(
                entry['summary']['metrics'].get(level, {}).get(key),
                random['summary']['metrics'].get(level, {}).get(key))
                for key in TABLE_KEYS} for level in LEVELS}
    return report


def _cell(text: Any) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _beats(entry: dict) -> str:
    """The ``beats random`` cell: levels above the spread, per key."""
    vs = entry.get('vs_random')
    if vs is None:
        return ''
    states = [vs[level][key] for level in LEVELS for key in TABLE_KEYS]
    if all(s is None for s in states):
        return 'n/a (< 2 seeds)'
    parts = []
    for key in TABLE_KEYS:
        above = [lv for lv in LEVELS if vs[lv][key] == 'above']
        if above:
            parts.append(f'{key}: {", ".join(above)}')
    return '; '.join(parts) or 'no'


def _status(entry: dict) -> str:
    if entry.get('error') is None:
        return 'ok'
    ok = entry.get('summary', {}).get('seeds') or []
    prefix = 'partial' if ok else 'failed'
    return f'{prefix}: {entry["error"]}'


def _settings_lines(report: dict) -> List[str]:
    s, m = report['settings'], report['machine']
    seeds = s.get('seeds', [s.get('seed', 0)])
    lines = [
        f'- command: `{report["command"]}`',
        f'- machine: {m["cpu_count"]} CPUs, torch {m["torch"]}, device '
        f'{m["device"]}; mmengine {m["mmengine"]}, mmpretrain '
        f'{m["mmpretrain"]}, Python {m["python"]} ({m["platform"]})']
    if s.get('preset'):
        lines.append(f'- preset: `{s["preset"]}` (flags given on the command'
                     f' line override it)')
    lines += [
        f'- data: `{s["data_root"]}`; {s["train_patches"]} training patches',
        f'- budget: {s["budget_epochs"]} epochs × {s["iters_per_epoch"]} '
        f'iterations × {s["batch_size"]} patches ({s["patients_per_batch"]}'
        f' patients × slides × patches) × {s["views"]} views = '
        f'{s["images_seen"]} images seen per trained method and seed; '
        f'ResNet-{s["depth"]}, {s["crop_size"]} px crops, {s["workers"]} '
        f'workers; schedule: warm-up + cosine of each config rescaled to '
        f'the budget',
        f'- seeds: {", ".join(str(x) for x in seeds)} ({len(seeds)} per '
        f'method; model init, augmentation and sampler; deterministic '
        f'algorithms where available); tables show mean ± std (sample std '
        f'over seeds) in percent',
        f'- kNN: BackboneEmbedder (backbone + global average pooling), '
        f'k = {s["k"]}' + (f' (requested {s["k_requested"]}, clipped to the '
                           f'bank)' if s['k'] != s['k_requested'] else '')
        + f', centre crop {s["crop_size"]} px']
    if s.get('eval_every'):
        lines.append(f'- learning curves: kNN every {s["eval_every"]} '
                     f'epoch(s) and at epoch 0 (`curves.png`, each run\'s '
                     f'`curve.jsonl`)')
    return lines


def _data_table(knn: dict) -> List[str]:
    lines = ['| level | queries | bank | classes | chance 1/C (%) | '
             'majority class of the queries (%) |',
             '|---|---|---|---|---|---|']
    for level in LEVELS:
        key = 'patches' if level == 'patch' else f'{level}s'
        chance = knn['chance'][level]
        lines.append(f'| {level} | {knn["query"][key]} | {knn["bank"][key]} '
                     f'| {knn["classes"]} | {100 * chance["uniform"]:.1f} | '
                     f'{100 * chance["majority"]:.1f} |')
    return lines


def render_markdown(report: dict) -> str:
    """``benchmark.md``'s text (call :func:`finalize` first).

    The main table has one row per method: config, successful / run seeds,
    images seen, training time, patch / slide / patient accuracy and mean
    class accuracy as ``mean ± std`` in percent (``≈`` marks a mean within
    the seed spread of ``random``'s), the effective rank of the evaluation
    embeddings, the levels where it beats ``random`` by more than the
    spread, and the status.
    """
    s = report['settings']
    lines = ['# Self-supervised benchmark: hierarchical kNN', '']
    lines += _settings_lines(report)
    knn = s.get('knn_data')
    if knn:
        lines += ['', '## kNN evaluation data and chance levels', '']
        lines += _data_table(knn)
    lines += ['', '## Results', '']
    header = ['method', 'config', 'seeds', 'images seen', 'train time (s)']
    header += [f'{lv} {key}' for key in TABLE_KEYS for lv in LEVELS]
    header += ['eff. rank', 'beats random', 'status']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for entry in report['methods']:
        summary = entry.get('summary') or {}
        runs = entry.get('runs') or []
        config = entry.get('config') or '(untrained backbone)'
        if entry.get('options'):
            config += ' + ' + ', '.join(f'{k}={v}'
                                        for k, v in entry['options'])
        row = [entry['method'], config,
               f'{len(summary.get("seeds") or [])}/{len(runs)}',
               f'{entry.get("images_seen") or 0:.0f}',
               f'{entry.get("train_time_s") or 0.0:.1f}']
        vs = entry.get('vs_random') or {}
        for key in TABLE_KEYS:
            for level in LEVELS:
                stat = (summary.get('metrics') or {}).get(level, {}).get(key)
                mark = (WITHIN_MARK if vs.get(level, {}).get(key) == 'within'
                        else '')
                row.append(format_pm(stat, mark=mark))
        row.append(format_pm((summary.get('diagnostics') or {}).get(
            DIAGNOSTIC_KEY), scale=1.0))
        row += [_beats(entry), _status(entry)]
        lines.append('| ' + ' | '.join(_cell(c) for c in row) + ' |')
    lines += ['', f'`{WITHIN_MARK}`: the mean is within the seed spread of '
              f'`random` (|mean − mean of random| ≤ max(std, std of '
              f'random)). *beats random*: levels where the mean is above '
              f'`random`\'s by more than that spread. Both need ≥ 2 '
              f'successful seeds for the method and for `random`. '
              f'*eff. rank*: effective rank (Roy & Vetterli 2007) of the '
              f'bank + query embeddings.']
    lines += _verdict(report)
    notes = [n for e in report['methods'] for n in e.get('notes', [])]
    notes += report.get('notes', [])
    if notes:
        lines += ['', 'Notes:', ''] + [f'- {_cell(n)}' for n in notes]
    lines += ['', '![kNN accuracy per method](benchmark.png)', '']
    if s.get('eval_every'):
        lines += ['![learning curves](curves.png)', '']
    return '\n'.join(lines)


def _verdict(report: dict) -> List[str]:
    entries = [e for e in report['methods']
               if e.get('vs_random') is not None]
    if not entries:
        return []
    judged = [e for e in entries if any(
        state is not None for lv in e['vs_random'].values()
        for state in lv.values())]
    if not judged:
        return ['', 'Beat `random` by more than the seed spread: not '
                'judged (fewer than 2 successful seeds).']
    lines = []
    for key in TABLE_KEYS:
        beat = [f'{e["method"]} ({", ".join(lv for lv in LEVELS if e["vs_random"][lv][key] == "above")})'  # noqa: E501
                for e in judged
                if any(e['vs_random'][lv][key] == 'above' for lv in LEVELS)]
        below = [f'{e["method"]} ({", ".join(lv for lv in LEVELS if e["vs_random"][lv][key] == "below")})'  # noqa: E501
                 for e in judged
                 if any(e['vs_random'][lv][key] == 'below' for lv in LEVELS)]
        lines.append(f'- {key}: beat `random` by more than the seed spread: '
                     f'{", ".join(beat) or "none"}'
                     + (f'; below it by more than the spread: '
                        f'{", ".join(below)}' if below else ''))
    return [''] + lines


# ---------------------------------------------------------------- figures
def plot_accuracy(report: dict, path: str) -> str:
    """``benchmark.png``: mean patch / slide / patient accuracy per method
    with the seed std as error bars; uniform chance dashed, majority-class
    rate dotted (per level)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    entries = report['methods']
    x = np.arange(len(entries))
    width = 0.8 / len(LEVELS)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(entries) + 2), 4))
    colors = {}
    for i, level in enumerate(LEVELS):
        stats = [((e.get('summary') or {}).get('metrics') or {}).get(
            level, {}).get('acc') or {} for e in entries]
        means = [s.get('mean') if s.get('mean') is not None else np.nan
                 for s in stats]
        stds = [s.get('std') or 0.0 for s in stats]
        bars = ax.bar(x + (i - 1) * width, means, width, yerr=stds,
                      capsize=2, label=level)
        colors[level] = bars.patches[0].get_facecolor() if bars.patches \
            else None
    for j, entry in enumerate(entries):
        if entry.get('metrics') is None:
            ax.text(x[j], 0.02, 'failed', ha='center', rotation=90)
    knn = report['settings'].get('knn_data')
    if knn:
        ax.axhline(knn['chance']['patch']['uniform'], color='grey',
                   linestyle='--', linewidth=1,
                   label=f'chance (1/{knn["classes"]})')
        for level in LEVELS:
            ax.axhline(knn['chance'][level]['majority'],
                       color=colors.get(level), linestyle=':', linewidth=1)
    ax.set_xticks(x, [e['method'] for e in entries], rotation=20,
                  ha='right')
    ax.set_ylim(0, 1)
    ax.set_ylabel('kNN accuracy (mean ± std over seeds)')
    s = report['settings']
    ax.set_title(f'{s["budget_epochs"]} epochs, {s["images_seen"]} images '
                 f'seen, ResNet-{s["depth"]}, k = {s["k"]}, '
                 f'{len(s.get("seeds", [0]))} seed(s); dotted: majority '
                 f'class', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_series(runs: Sequence[dict], getter) -> Dict[str, List[float]]:
    """Mean and std over seeds of one curve quantity, per epoch.

    Args:
        runs (Sequence[dict]): Runs with a ``curve`` (records of
            ``curve.jsonl``).
        getter (callable): ``record -> value or None``.

    Returns:
        dict: ``epochs``, ``mean``, ``std`` (0 with one seed), sorted by
        epoch; an epoch is kept when at least one seed has the value.

    Example:
        >>> runs = [dict(curve=[dict(epoch=0, v=1.0), dict(epoch=1, v=3.0)]),
        ...         dict(curve=[dict(epoch=0, v=3.0)])]
        >>> curve_series(runs, lambda r: r.get('v'))['mean']
        [2.0, 3.0]
    """
    per_epoch: Dict[int, List[float]] = {}
    for run in runs:
        for record in run.get('curve') or []:
            value = getter(record)
            if value is not None:
                per_epoch.setdefault(int(record['epoch']), []).append(
                    float(value))
    epochs = sorted(per_epoch)
    stats = [mean_std(per_epoch[e]) for e in epochs]
    return dict(epochs=epochs, mean=[s['mean'] for s in stats],
                std=[s['std'] or 0.0 for s in stats])


def plot_curves(report: dict, path: str) -> Optional[str]:
    """``curves.png``: per trained method (mean over seeds, band ± std),
    kNN accuracy per level, effective rank and normalised std of the
    evaluation embeddings against the epoch, then one panel of loss terms
    per method. Returns None (and draws nothing) without curves."""
    entries = [e for e in report['methods']
               if any(r.get('curve') for r in e.get('runs') or [])]
    if not entries:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    def knn_getter(level):
        return lambda r: (r.get('knn') or {}).get(level, {}).get('acc')

    def diag_getter(key):
        return lambda r: (r.get('diagnostics') or {}).get(key)

    panels = [(f'{level} kNN accuracy', knn_getter(level))
              for level in LEVELS]
    panels += [('effective rank', diag_getter('effective_rank')),
               ('normalised std (dashed: 1/√D)', diag_getter('std'))]
    ncols = 3
    nrows = math.ceil((len(panels) + len(entries)) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols,
                                                    3.2 * nrows),
                             squeeze=False)
    axes = axes.ravel()
    knn = report['settings'].get('knn_data')
    for ax, (title, getter) in zip(axes, panels):
        for entry in entries:
            series = curve_series(entry['runs'], getter)
            if not series['epochs']:
                continue
            mean, std = np.array(series['mean']), np.array(series['std'])
            line, = ax.plot(series['epochs'], mean, marker='.',
                            label=entry['method'])
            ax.fill_between(series['epochs'], mean - std, mean + std,
                            color=line.get_color(), alpha=0.2)
        if 'accuracy' in title:
            ax.set_ylim(0, 1)
            if knn:
                level = title.split()[0]
                ax.axhline(knn['chance'][level]['uniform'], color='grey',
                           linestyle='--', linewidth=1)
                ax.axhline(knn['chance'][level]['majority'], color='grey',
                           linestyle=':', linewidth=1)
        if title.startswith('normalised std'):
            refs = {(r.get('diagnostics') or {}).get('std_reference')
                    for e in entries for run in e['runs']
                    for r in run.get('curve') or []} - {None}
            for ref in refs:
                ax.axhline(ref, color='grey', linestyle='--', linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('epoch')
    axes[0].legend(fontsize=7)
    for ax, entry in zip(axes[len(panels):], entries):
        terms = sorted({k for run in entry['runs']
                        for r in run.get('curve') or []
                        for k in (r.get('losses') or {})})
        for term in terms:
            series = curve_series(
                entry['runs'],
                lambda r, t=term: (r.get('losses') or {}).get(t))
            ax.plot(series['epochs'], series['mean'], marker='.',
                    label=term, linewidth=2 if term == 'loss' else 1)
        ax.set_title(f'{entry["method"]}: losses (epoch means)', fontsize=9)
        ax.set_xlabel('epoch')
        if terms:
            ax.legend(fontsize=6)
    for ax in axes[len(panels) + len(entries):]:
        ax.axis('off')
    for ax in axes[:len(panels) + len(entries)]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
