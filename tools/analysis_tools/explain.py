#!/usr/bin/env python
"""Explain an HLSS checkpoint with the attributes its heads are tied to.

Run from the repository root::

    python tools/analysis_tools/explain.py CONFIG CHECKPOINT
        [--data-root DIR] [--split val] [--cfg-options KEY=VALUE ...]
        [--top-k 5] [--out DIR] [--max-patches N] [--batch-size 32]
        [--view-size PX] [--ranking {relative,raw}] [--reference-split train]
        [--max-reference-patches 1024]

For every patch, slide and patient of the split: the top-k named attributes
of the level's text-aligned head (slide / patient: mean over their patches),
ranked by default relative to a reference bank (each attribute's similarity
as a z-score over the ``--reference-split`` patches, so the offset every
image shares does not give all items the same attributes; ``--ranking raw``
ranks raw similarities). Per level it reports how many items get a distinct
top-k set (distinct sets / items, and whether that is at least half) and,
on synthetic data (``meta/synthetic_attributes.json`` in the data root),
precision@k against the generator's ground truth for the checkpoint, for an
untrained model of the same config and for chance. Writes
``OUT/explain.md`` and ``OUT/explain.json`` (OUT defaults to
``<checkpoint folder>/explain``) and prints a summary. Works for configs
that augment per sample (``hlss_srh_tiny.py``, ``hlss_srh.py``) and for
``hlss_srh_fast.py`` (raw ``uint16`` patches; the model's
``SRHBatchAugmentPreprocessor`` converts and normalises them, as at
evaluation). The logic lives in :mod:`hlss_plugin.interpret`
(:func:`~hlss_plugin.interpret.explain_driver.explain`).
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

from mmengine.config import Config, DictAction  # noqa: E402

from hlss_plugin.utils.arg_checks import positive_int  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Top-k attributes of patches, slides and patients from '
        'an HLSS checkpoint (precision@k on synthetic data).')
    parser.add_argument('config', help='HLSS config file')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('--data-root', metavar='DIR',
                        help='replace the dataset\'s data_root by DIR')
    parser.add_argument('--split', default='val',
                        help='split name of the split file (default: val)')
    parser.add_argument('--top-k', type=positive_int, default=5,
                        help='attributes per item (default: 5)')
    parser.add_argument('--out', metavar='DIR',
                        help='output folder (default: <checkpoint '
                        'folder>/explain)')
    parser.add_argument('--max-patches', type=positive_int, metavar='N',
                        help='use at most N patches, evenly spaced over the '
                        'split')
    parser.add_argument('--batch-size', type=positive_int, default=32,
                        help='patches per forward pass (default: 32)')
    parser.add_argument('--view-size', type=positive_int, metavar='PX',
                        help='center-crop size (default: the config\'s '
                        'training view size)')
    parser.add_argument('--ranking', choices=('relative', 'raw'),
                        default='relative',
                        help='relative: rank attributes by their z-score '
                        'over the reference split\'s patches; raw: by raw '
                        'similarity (default: relative)')
    parser.add_argument('--reference-split', default='train', metavar='SPLIT',
                        help='split of the relative ranking\'s reference '
                        'bank (default: train)')
    parser.add_argument('--max-reference-patches', type=positive_int,
                        default=1024, metavar='N',
                        help='reference patches, evenly spaced over the '
                        'reference split (default: 1024)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings (KEY=VALUE as in tools/train.py; '
        'the data comes from train_dataloader.dataset); applied before '
        '--data-root')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the explanation and write the report; returns the result."""
    args = parse_args(argv)
    from hlss_plugin.interpret import (ExplainError, explain, summary_lines,
                                       write_report)
    cfg = args.config
    if args.cfg_options is not None:
        if not osp.isfile(args.config):
            sys.exit(f'tools/analysis_tools/explain.py: error: config file '
                     f'{args.config!r} not found.')
        cfg = Config.fromfile(args.config)
        cfg.merge_from_dict(args.cfg_options)
    try:
        result = explain(cfg, args.checkpoint,
                         data_root=args.data_root, split=args.split,
                         top_k=args.top_k, max_patches=args.max_patches,
                         batch_size=args.batch_size,
                         view_size=args.view_size, ranking=args.ranking,
                         reference_split=args.reference_split,
                         max_reference_patches=args.max_reference_patches)
    except ExplainError as err:
        sys.exit(f'tools/analysis_tools/explain.py: error: {err}')
    out = args.out or osp.join(osp.dirname(osp.abspath(args.checkpoint)),
                               'explain')
    md_path, json_path = write_report(result, out)
    print('\n'.join(summary_lines(result)))
    print(f'[explain] wrote {md_path} and {json_path}')
    return result


if __name__ == '__main__':
    main()
