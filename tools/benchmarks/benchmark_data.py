"""Benchmark the SRH data pipeline on one CPU thread.

Compares, on the same synthetic SRH TIFF patches ((2, 300, 300) uint16) and
the same number of views:

* reference: tifffile load + numpy third channel + ``num_views`` views of
  the published HLSS augmentation written with torchvision ``Compose`` /
  ``RandomApply`` (bicubic resize to 224, then its ops in order, each at
  0.5; :mod:`hlss_plugin.augmentation.reference_pipeline`);
* ours: ``LoadSRHPatch`` + ``SRHThirdChannel`` +
  ``MultiView(SRHAugment(recipe=...))`` + ``PackInputs`` built through
  mmpretrain's registry; ``--recipe published`` (default) is the same
  recipe, ``--recipe default`` the plugin's crop-first recipe.

Prints a table and a final JSON line::

    {"views_per_s_reference": ..., "views_per_s_ours": ..., "speedup": ...,
     "recipe": ..., "rand_prob_ours": ..., "rand_prob_reference": ...,
     "threads": 1, "patches": N}

Usage (from the repository root)::

    python tools/benchmarks/benchmark_data.py          # 256 patches, 3 repeats
    python tools/benchmarks/benchmark_data.py --quick  # < 30 s
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

import torch  # noqa: E402

from hlss_plugin.benchmark.data_pipeline import (  # noqa: E402
    time_ours, time_reference, write_patches)
from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)


def main(argv=None) -> dict:
    """Time both pipelines; print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--patches', type=positive_int, default=None,
                        help='number of patches (default 256; 48 --quick)')
    parser.add_argument('--repeats', type=positive_int, default=None,
                        help='timed passes, best kept (default 3; 2 --quick)')
    parser.add_argument('--views', type=positive_int, default=2,
                        help='views per patch in both pipelines (default 2)')
    parser.add_argument('--recipe', default='published',
                        choices=('published', 'default'),
                        help='SRHAugment recipe of ours (default published, '
                        'the recipe of the reference)')
    parser.add_argument('--rand-prob', type=float, default=None,
                        help='probability of each random op in both '
                        'pipelines (default: the recipe\'s, 0.5 published, '
                        '0.3 default; the reference uses 0.5)')
    parser.add_argument('--patch-size', type=positive_int, default=300,
                        help='side of the synthetic (2, P, P) uint16 TIFF '
                        'patches in px (default 300, as OpenSRH)')
    parser.add_argument('--size', type=positive_int, default=224,
                        help='side of each output view in px (default 224)')
    parser.add_argument('--seed', type=non_negative_int, default=0,
                        help='seed of the synthetic patches and of torch '
                        '(default 0)')
    parser.add_argument('--quick', action='store_true',
                        help='small run that finishes in under 30 s')
    args = parser.parse_args(argv)
    n = args.patches or (48 if args.quick else 256)
    repeats = args.repeats or (2 if args.quick else 3)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix='hlss_bench_') as folder:
        paths, source = write_patches(folder, n, args.patch_size, args.seed)
        # warm-up: imports, registry, first-call allocations
        time_reference(paths[:4], args.views, args.rand_prob, args.size)
        time_ours(paths[:4], args.views, args.rand_prob, args.size,
                  args.recipe)
        ref_t, our_t = [], []
        for _ in range(repeats):  # interleaved to share machine noise
            ref_t.append(time_reference(paths, args.views, args.rand_prob,
                                        args.size))
            our_t.append(time_ours(paths, args.views, args.rand_prob,
                                   args.size, args.recipe))
    from hlss_plugin.augmentation.recipes import RECIPES
    p_ours = (RECIPES[args.recipe]['rand_prob'] if args.rand_prob is None
              else args.rand_prob)
    p_ref = 0.5 if args.rand_prob is None else args.rand_prob
    views = n * args.views
    ref_vps, our_vps = views / min(ref_t), views / min(our_t)
    result = dict(views_per_s_reference=round(ref_vps, 1),
                  views_per_s_ours=round(our_vps, 1),
                  speedup=round(our_vps / ref_vps, 2), recipe=args.recipe,
                  rand_prob_ours=p_ours, rand_prob_reference=p_ref,
                  threads=1, patches=n)
    print(f'{"pipeline":<12}{"best s":>9}{"views/s":>10}  '
          f'({n} patches x {args.views} views, {repeats} repeats, '
          f'{args.patch_size}px -> {args.size}px, 1 thread)')
    print(f'patches from: {source}')
    print(f'{"reference":<12}{min(ref_t):>9.3f}{ref_vps:>10.1f}  '
          f'published recipe, torchvision, p={p_ref:g}')
    print(f'{"ours":<12}{min(our_t):>9.3f}{our_vps:>10.1f}  '
          f'SRHAugment(recipe={args.recipe!r}), p={p_ours:g}')
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
