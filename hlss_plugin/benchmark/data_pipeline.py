"""The two per-sample SRH view pipelines that the data benchmarks time.

``tools/benchmarks/benchmark_data.py`` compares them on one CPU thread and
``tools/benchmarks/benchmark_throughput.py`` reports them beside the batched
path:

* reference: tifffile load + numpy third channel + the published HLSS
  augmentation written with torchvision
  (:class:`~hlss_plugin.augmentation.reference_pipeline.ReferenceSRHPipeline`);
* ours: ``LoadSRHPatch`` + ``SRHThirdChannel`` +
  ``MultiView(SRHAugment(recipe=...))`` + ``PackInputs`` built through
  mmpretrain's registry.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:  # doctest: +SKIP
    ...     paths, _ = write_patches(folder, 4, 300, seed=0)
    ...     seconds = time_ours(paths, 2, None, 224)
"""
import os.path as osp
import time

import numpy as np

__all__ = ['ALGORITHM_KEYS', 'build_ours', 'synthetic_patches',
           'time_ours', 'time_reference', 'write_patches']

#: The hierarchy fields packed with every patch (as in training).
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
    import hlss_plugin.augmentation.srh_augment  # noqa: F401
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
    from hlss_plugin.augmentation.reference_pipeline import \
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
