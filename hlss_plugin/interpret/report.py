"""The explanation as text: a console summary, a markdown report and
``explain.md`` / ``explain.json`` files (from
:func:`~hlss_plugin.interpret.explain_driver.explain`'s result)."""
import json
import os
import os.path as osp
from typing import List, Optional, Tuple


def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.3f}'


def _distinct(entry: dict, model: str) -> Tuple[int, int, Optional[float],
                                                bool]:
    """``(distinct sets, items, fraction, fraction >= 0.5)`` of one model
    at one level (from ``entry['distinct_top_k']``)."""
    count, items = entry['distinct_top_k'][model], len(entry['items'])
    fraction = count / items if items else None
    return count, items, fraction, fraction is not None and fraction >= 0.5


def distinct_text(entry: dict, model: str) -> str:
    """``'12/14 = 0.857 (>= half: yes)'`` for one model at one level.

    Example:
        >>> distinct_text({'items': [{}] * 4, 'distinct_top_k': {
        ...     'trained': 1, 'untrained': 3}}, 'trained')
        '1/4 = 0.250 (>= half: no)'
    """
    count, items, fraction, half = _distinct(entry, model)
    return (f'{count}/{items} = {_fmt(fraction)} (>= half: '
            f'{"yes" if half else "no"})')


def ranking_text(result: dict) -> str:
    """How the result's attributes were ranked, in one phrase.

    Example:
        >>> ranking_text({'ranking': 'relative', 'reference': {
        ...     'split': 'train', 'num_patches': 168}})
        "relative (z-score per attribute over 168 patches of split 'train')"
    """
    ranking = result.get('ranking', 'raw')
    reference = result.get('reference')
    if ranking == 'relative' and reference:
        return (f'relative (z-score per attribute over '
                f'{reference["num_patches"]} patches of split '
                f'{reference["split"]!r})')
    return f'{ranking} (similarity)' if ranking == 'raw' else ranking


def summary_lines(result: dict) -> List[str]:
    """The ranking, then per level: precision@k trained / untrained /
    chance (synthetic data) and the distinct top-k sets per item of the
    trained and the untrained model (sets / items = fraction, and whether
    at least half the items have a distinct set).

    Example:
        >>> print('\n'.join(summary_lines(explain(cfg, ckpt, top_k=3))))
        explained 42 patches of split 'val' (...), top-3, ranking relative ...
          patch: precision@3 trained 0.341, untrained 0.238, chance ...
    """
    k = result['top_k']
    lines = [f'explained {result["num_patches"]} patches of split '
             f'{result["split"]!r} ({result["data_root"]}), top-{k}, '
             f'ranking {ranking_text(result)}']
    for level, entry in result['levels'].items():
        p = entry['precision_at_k']
        distinct = (f'distinct top-{k} sets / items: trained '
                    f'{distinct_text(entry, "trained")}, untrained '
                    f'{distinct_text(entry, "untrained")}')
        if p is None:
            lines.append(f'  {level}: {len(entry["items"])} items, '
                         f'{distinct} (no ground truth: not synthetic data)')
        else:
            lines.append(
                f'  {level}: precision@{k} trained {_fmt(p["trained"])}, '
                f'untrained {_fmt(p["untrained"])}, chance '
                f'{_fmt(p["chance"])} ({p["items_with_ground_truth"]}/'
                f'{p["items"]} items with ground truth); {distinct}')
    return lines


def _examples(items: List[dict], n: int) -> List[dict]:
    """Up to ``n`` items, one per class first, in item order."""
    chosen, seen = [], set()
    for item in items:
        if item['class'] not in seen:
            seen.add(item['class'])
            chosen.append(item)
    for item in items:
        if len(chosen) >= n:
            break
        if item not in chosen:
            chosen.append(item)
    return chosen[:n]


def markdown_lines(result: dict, examples: int = 4,
                   heading: str = '#') -> List[str]:
    """The explanation as markdown: the ranking, a table per level
    (precision@k trained / untrained / chance on synthetic data; distinct
    top-k sets / items of both models) and example items per level
    (``heading`` is the top heading's prefix, e.g. ``'##'`` to nest it in
    another report).

    Example:
        >>> markdown_lines(result, examples=2, heading='##')[0]
        '## Attribute explanations'
    """
    k = result['top_k']
    sub = heading + '#'
    relative = result.get('ranking', 'raw') == 'relative'
    lines = [f'{heading} Attribute explanations', '',
             f'- checkpoint `{result["checkpoint"]}`; split '
             f'`{result["split"]}` of `{result["data_root"]}`: '
             f'{result["num_patches"]} patches, center crop '
             f'{result["view_size"]}',
             '- patch: its patch-head similarities; slide / patient: mean '
             'over its patches of the slide- / patient-head similarities '
             '(named attributes only)',
             f'- ranking: {ranking_text(result)}' + (
                 '; each model\'s attribute similarity minus its mean over '
                 'the reference patches, divided by its standard deviation '
                 'there, so the offset shared by every image does not rank'
                 if relative else ''),
             f'- distinct top-{k} sets: number of different top-{k} '
             f'attribute sets / number of items (1 / items: the same '
             f'attributes for every item); ">= half": at least half the '
             f'items have a distinct set']
    if result['synthetic']:
        lines += [
            f'- ground truth: text attributes mapped from generator '
            f'attributes whose z-score over the split\'s items of the level '
            f'is > {result["threshold"]} (or < -{result["threshold"]} for '
            f'"low" entries); precision@{k} = mean |top-{k} ∩ truth| / {k} '
            f'over items with a non-empty truth; untrained = same config, '
            f'random init, same text-initialised heads; chance = random '
            f'ranking']
    precision_head = (f'precision@{k} trained | untrained | chance | items '
                      f'with truth | ' if result['synthetic'] else '')
    lines += ['', f'| level | {precision_head}distinct top-{k} sets trained '
              f'| distinct top-{k} sets untrained |',
              '|---' * (7 if result['synthetic'] else 3) + '|']
    for level, entry in result['levels'].items():
        p = entry['precision_at_k']
        cells = [] if p is None else [
            _fmt(p['trained']), _fmt(p['untrained']), _fmt(p['chance']),
            f'{p["items_with_ground_truth"]}/{p["items"]}']
        cells += [distinct_text(entry, 'trained'),
                  distinct_text(entry, 'untrained')]
        lines.append(f'| {level} | ' + ' | '.join(cells) + ' |')
    scores = 'z-score; similarity' if relative else 'similarity'
    for level, entry in result['levels'].items():
        lines += ['', f'{sub} {level} ({len(entry["items"])} items, '
                  f'{len(entry["attributes"])} attributes)', '',
                  f'| id | class | top-{k} ({scores}) | ground truth |',
                  '|---|---|---|---|']
        for item in _examples(entry['items'], examples):
            similarity = item.get('similarity',
                                  [s for _, s in item['top_k']])
            top = ', '.join(
                f'{n} ({z:+.2f}; {s:.2f})' if relative else f'{n} ({s:.2f})'
                for (n, z), s in zip(item['top_k'], similarity))
            gt = item['ground_truth']
            gt = '—' if gt is None else (', '.join(gt) or '(none)')
            lines.append(f'| {item["id"]} | {item["class"]} | {top} | '
                         f'{gt} |')
    return lines


def write_report(result: dict, out_dir: str,
                 examples: int = 4) -> Tuple[str, str]:
    """Write ``out_dir/explain.md`` and ``out_dir/explain.json``.

    Args:
        result (dict): :func:`~hlss_plugin.interpret.explain_driver.explain`'s
            result.
        out_dir (str): Output folder (created if missing).
        examples (int): Example items per level in the markdown. Defaults
            to 4.

    Returns:
        tuple[str, str]: The markdown and JSON paths.

    Example:
        >>> write_report(result, 'work_dirs/explain')
        ('work_dirs/explain/explain.md', 'work_dirs/explain/explain.json')
    """
    os.makedirs(out_dir, exist_ok=True)
    md_path = osp.join(out_dir, 'explain.md')
    json_path = osp.join(out_dir, 'explain.json')
    with open(md_path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(markdown_lines(result, examples)) + '\n')
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    return md_path, json_path
