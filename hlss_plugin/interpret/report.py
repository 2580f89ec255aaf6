"""The explanation as text: a console summary, a markdown report and
``explain.md`` / ``explain.json`` files (from
:func:`~hlss_plugin.interpret.explain_driver.explain`'s result)."""
import json
import os
import os.path as osp
from typing import List, Optional, Tuple


def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.3f}'


def summary_lines(result: dict) -> List[str]:
    """One line per level: precision@k trained / untrained / chance and the
    number of distinct top-k sets (trained / untrained).

    Example:
        >>> print('\n'.join(summary_lines(explain(cfg, ckpt, top_k=3))))
        explained 42 patches of split 'val' (...), top-3
          patch: precision@3 trained 0.341, untrained 0.238, chance ...
    """
    k = result['top_k']
    lines = [f'explained {result["num_patches"]} patches of split '
             f'{result["split"]!r} ({result["data_root"]}), top-{k}']
    for level, entry in result['levels'].items():
        p = entry['precision_at_k']
        distinct = (f'distinct top-{k} sets '
                    f'{entry["distinct_top_k"]["trained"]} trained / '
                    f'{entry["distinct_top_k"]["untrained"]} untrained')
        if p is None:
            lines.append(f'  {level}: {len(entry["items"])} items, '
                         f'{distinct} (no ground truth: not synthetic data)')
        else:
            lines.append(
                f'  {level}: precision@{k} trained {_fmt(p["trained"])}, '
                f'untrained {_fmt(p["untrained"])}, chance '
                f'{_fmt(p["chance"])} ({p["items_with_ground_truth"]}/'
                f'{p["items"]} items with ground truth; {distinct})')
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
    """The explanation as markdown: precision table and example items per
    level (``heading`` is the top heading's prefix, e.g. ``'##'`` to nest
    it in another report).

    Example:
        >>> markdown_lines(result, examples=2, heading='##')[0]
        '## Attribute explanations'
    """
    k = result['top_k']
    sub = heading + '#'
    lines = [f'{heading} Attribute explanations', '',
             f'- checkpoint `{result["checkpoint"]}`; split '
             f'`{result["split"]}` of `{result["data_root"]}`: '
             f'{result["num_patches"]} patches, center crop '
             f'{result["view_size"]}',
             '- patch: its patch-head similarities; slide / patient: mean '
             'over its patches of the slide- / patient-head similarities '
             '(named attributes only)']
    if result['synthetic']:
        lines += [
            f'- ground truth: text attributes mapped from generator '
            f'attributes whose z-score over the split\'s items of the level '
            f'is > {result["threshold"]} (or < -{result["threshold"]} for '
            f'"low" entries); precision@{k} = mean |top-{k} ∩ truth| / {k} '
            f'over items with a non-empty truth; untrained = same config, '
            f'random init, same text-initialised heads; chance = random '
            f'ranking', '',
            f'| level | precision@{k} trained | untrained | chance | items '
            f'with truth | distinct top-{k} sets (trained / untrained) |',
            '|---|---|---|---|---|---|']
        for level, entry in result['levels'].items():
            p = entry['precision_at_k']
            lines.append(f'| {level} | {_fmt(p["trained"])} | '
                         f'{_fmt(p["untrained"])} | {_fmt(p["chance"])} | '
                         f'{p["items_with_ground_truth"]}/{p["items"]} | '
                         f'{entry["distinct_top_k"]["trained"]} / '
                         f'{entry["distinct_top_k"]["untrained"]} |')
    for level, entry in result['levels'].items():
        lines += ['', f'{sub} {level} ({len(entry["items"])} items, '
                  f'{len(entry["attributes"])} attributes)', '',
                  f'| id | class | top-{k} (similarity) | ground truth |',
                  '|---|---|---|---|']
        for item in _examples(entry['items'], examples):
            top = ', '.join(f'{n} ({s:.2f})' for n, s in item['top_k'])
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
