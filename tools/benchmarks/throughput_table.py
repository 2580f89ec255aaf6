"""One Markdown table from several ``benchmark_throughput.py`` JSON results.

``tools/benchmarks/gpu_throughput_check.sh`` runs the throughput benchmark a few times
(augmentation ``gather`` / ``dense``, with and without ``torch.compile``)
and writes one JSON file per run (``--json-out``); this tool turns them into
the table recorded in ``docs/performance.md``: one row per run with the
figures the GPU targets are judged on, and the targets as ``yes`` / ``no``
(``-`` where the target does not apply, e.g. on a CPU).

Usage::

    python tools/benchmarks/throughput_table.py work_dirs/throughput/*.json

Example:
    >>> row = dict(run='gather', device='cuda:0', device_name='H100',
    ...            precision='bf16', augment_mode='gather', compile=False,
    ...            step_img_per_s_backbone=3800.0,
    ...            step_img_per_s_hlss=3300.0, hlss_vs_backbone=0.868,
    ...            train_img_per_s_end_to_end=3100.0,
    ...            augment_views_per_s_device=90000.0,
    ...            peak_mem_ratio_hlss_vs_backbone=1.05,
    ...            cpu_speedup_ours_vs_reference=50.0,
    ...            targets=dict(hlss_ge_85pct_backbone=True,
    ...                         end_to_end_ge_4500=False,
    ...                         peak_mem_le_1_1x_backbone=True,
    ...                         cpu_speedup_ge_3=True))
    >>> print(markdown_table([row]).splitlines()[2])
    | gather | cuda:0 (H100) | bf16 | gather | no | 3800.0 | 3300.0 | 0.868 (yes) | 3100.0 (no) | 1.05 (yes) | 90000.0 | 50.0 (yes) |
"""
import argparse
import json
import os.path as osp
import sys

#: (column title, result key, target key or None)
COLUMNS = (
    ('backbone img/s', 'step_img_per_s_backbone', None),
    ('HLSS step img/s', 'step_img_per_s_hlss', None),
    ('HLSS / backbone (≥ 0.85)', 'hlss_vs_backbone',
     'hlss_ge_85pct_backbone'),
    ('end to end img/s (≥ 4,500)', 'train_img_per_s_end_to_end',
     'end_to_end_ge_4500'),
    ('peak mem HLSS / backbone (≤ 1.1)', 'peak_mem_ratio_hlss_vs_backbone',
     'peak_mem_le_1_1x_backbone'),
    ('augmentation views/s', 'augment_views_per_s_device', None),
    ('CPU worker speed-up (≥ 3)', 'cpu_speedup_ours_vs_reference',
     'cpu_speedup_ge_3'),
)
REQUIRED = ('device', 'precision', 'augment_mode', 'compile', 'targets')


def _verdict(value) -> str:
    return {True: 'yes', False: 'no', None: '-'}[value]


def load_result(path: str) -> dict:
    """Read one JSON result; the run is named after the file.

    Raises:
        ValueError: The file is not a JSON object written by
            ``benchmark_throughput.py --json-out``.
    """
    try:
        with open(path) as f:
            res = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read a JSON result ({err}); pass '
                         f'files written by benchmark_throughput.py '
                         f'--json-out.') from err
    missing = [k for k in REQUIRED + tuple(c[1] for c in COLUMNS)
               if not isinstance(res, dict) or k not in res]
    if missing:
        raise ValueError(f'{path}: not a benchmark_throughput.py result '
                         f'(missing keys {missing}); pass files written by '
                         f'its --json-out.')
    res.setdefault('run', osp.splitext(osp.basename(path))[0])
    return res


def markdown_table(results) -> str:
    """Rows of ``results`` (dicts as ``load_result`` returns) as Markdown.

    Returns:
        str: Header, separator and one row per result.
    """
    head = ['run', 'device', 'precision', 'augment', 'compile']
    head += [c[0] for c in COLUMNS]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for res in results:
        name = res.get('device_name')
        device = f'{res["device"]} ({name})' if name else res['device']
        cells = [res['run'], device, res['precision'], res['augment_mode'],
                 'yes' if res['compile'] else 'no']
        for _, key, target in COLUMNS:
            value = res[key]
            cell = '-' if value is None else str(value)
            if target is not None:
                cell += f' ({_verdict(res["targets"].get(target))})'
            cells.append(cell)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results', nargs='+',
                        help='JSON files from benchmark_throughput.py '
                        '--json-out')
    args = parser.parse_args(argv)
    try:
        results = [load_result(p) for p in args.results]
    except ValueError as err:
        print(f'throughput_table: {err}', file=sys.stderr)
        return 2
    print(markdown_table(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
