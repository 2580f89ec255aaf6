"""Benchmark the SRH data pipeline on one CPU thread.

Compares, on the same synthetic SRH TIFF patches ((2, 300, 300) uint16) and
the same number of views:

* reference: tifffile load + numpy third channel + ``num_views`` views of
  the published HLSS augmentation written with torchvision ``Compose`` /
  ``RandomApply`` (bicubic resize to 224, then its ops in order, each at
  0.5; :mod:`hlss_plugin.datasets.transforms.reference_pipeline`);
* ours: ``LoadSRHPatch`` + ``SRHThirdChannel`` +
  ``MultiView(SRHAugment(recipe=...))`` + ``PackInputs`` built through
  mmpretrain's registry; ``--recipe published`` (default) is the same
  recipe, ``--recipe default`` the plugin's crop-first recipe.

Prints a table and a final JSON line::

    {"views_per_s_reference": ..., "views_per_s_ours": ..., "speedup": ...,
     "recipe": ..., "rand_prob_ours": ..., "rand_prob_reference": ...,
     "threads": 1, "patches": N}

Usage (from the repository root)::

    python tools/benchmark_data.py            # 256 patches, 3 repeats
    python tools/benchmark_data.py --quick    # < 30 s
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

ALGORITHM_KEYS = ['patient', 'slide', 'patient_idx', 'slide_idx']


def synthetic_patches(count: int, size: int, seed: int):
    """``count`` (2, size, size) uint16 SRH arrays and their source name.

    Uses ``hlss_plugin.synthetic.render_srh_patch`` (realistic tissue) when
    it is importable, else uniform random intensities in 0..12000.
    """
    rng = np.random.default_rng(seed)
    try:
        from hlss_plugin.synthetic import (OPENSRH_CLASSES, as_dict,
                                           class_profile, render_srh_patch)
        return [render_srh_patch(
            as_dict(class_profile(OPENSRH_CLASSES[i % len(OPENSRH_CLASSES)])),
            rng, size) for i in range(count)], 'hlss_plugin.synthetic'
    except Exception:  # generator not available (yet): plain noise
        return [rng.integers(0, 12000, (2, size, size), dtype=np.uint16)
                for _ in range(count)], 'random uint16'


def write_patches(folder: str, n: int, size: int, seed: int):
    """Write ``n`` SRH TIFFs (a pool of up to 32 distinct images, reused).

    Returns:
        tuple: ``(paths, source)``.
    """
    import tifffile
    pool, source = synthetic_patches(min(n, 32), size, seed)
    paths = []
    for i in range(n):
        path = osp.join(folder, f'patch_{i:05d}.tif')
        tifffile.imwrite(path, pool[i % len(pool)])
        paths.append(path)
    return paths, source


def build_ours(num_views: int, rand_prob, size: int,
               recipe: str = 'published'):
    """Our per-sample view pipeline (``rand_prob=None``: the recipe's)."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    import mmpretrain.datasets.transforms  # noqa: F401 (registers)
    import hlss_plugin.datasets.transforms.loading  # noqa: F401
    import hlss_plugin.datasets.transforms.srh_augment  # noqa: F401
    import hlss_plugin.datasets.transforms.srh_third_channel  # noqa: F401
    init_default_scope('mmpretrain')
    return Compose([
        dict(type='LoadSRHPatch'),
        dict(type='SRHThirdChannel'),
        dict(type='MultiView', num_views=num_views,
             transforms=[[dict(type='SRHAugment', recipe=recipe,
                               rand_prob=rand_prob, crop_size=size)]]),
        dict(type='PackInputs', algorithm_keys=ALGORITHM_KEYS),
    ])


def time_reference(paths, num_views, rand_prob, size) -> float:
    """Seconds for the published torchvision recipe (``rand_prob=None``:
    0.5, the published value)."""
    from hlss_plugin.datasets.transforms.reference_pipeline import \
        ReferenceSRHPipeline
    pipe = ReferenceSRHPipeline(num_views,
                                0.5 if rand_prob is None else rand_prob,
                                size)
    start = time.perf_counter()
    for path in paths:
        views = pipe(path)
        assert views[0].shape[-2:] == (size, size)
    return time.perf_counter() - start


def time_ours(paths, num_views, rand_prob, size,
              recipe: str = 'published') -> float:
    """Seconds for our pipeline (``rand_prob=None``: the recipe's)."""
    pipe = build_ours(num_views, rand_prob, size, recipe)
    start = time.perf_counter()
    for i, path in enumerate(paths):
        out = pipe(dict(img_path=path, patient='P0', slide='P0/S0',
                        patient_idx=0, slide_idx=0, gt_label=0,
                        sample_idx=i))
        assert out['inputs'][0].shape[-2:] == (size, size)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--patches', type=int, default=None,
                        help='number of patches (default 256; 48 --quick)')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed passes, best kept (default 3; 2 --quick)')
    parser.add_argument('--views', type=int, default=2)
    parser.add_argument('--recipe', default='published',
                        choices=('published', 'default'),
                        help='SRHAugment recipe of ours (default published, '
                        'the recipe of the reference)')
    parser.add_argument('--rand-prob', type=float, default=None,
                        help='probability of each random op in both '
                        'pipelines (default: the recipe\'s, 0.5 published, '
                        '0.3 default; the reference uses 0.5)')
    parser.add_argument('--patch-size', type=int, default=300)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--seed', type=int, default=0)
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
    from hlss_plugin.datasets.transforms.srh_augment import RECIPES
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
