"""How much a training config trains: iterations per epoch, batch, views."""
import copy
from typing import Dict

from mmengine.config import Config

__all__ = ['count_views', 'train_budget']


def count_views(cfg: Config) -> int:
    """Views per patch in the training pipeline (``MultiView``; 1 without).

    Args:
        cfg (Config): A training config.

    Returns:
        int: The summed ``num_views`` of the first ``MultiView`` step.

    Example:
        >>> count_views(Config(dict(train_dataloader=dict(dataset=dict(
        ...     pipeline=[dict(type='MultiView', num_views=[2, 4])])))))
        6
    """
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if isinstance(step, dict) and step.get('type') == 'MultiView':
            views = step.get('num_views', 1)
            return int(sum(views) if isinstance(views, (list, tuple))
                       else views)
    return 1


def train_budget(cfg: Config, seed: int) -> Dict[str, int]:
    """Iterations per epoch, batch size and views of ``cfg``'s training.

    Builds the training dataset (no pipeline) and its sampler as the Runner
    would on this process (with an initialised process group: this rank's
    share).

    Args:
        cfg (Config): A training config whose data exists.
        seed (int): The sampler's seed.

    Returns:
        dict: ``iters_per_epoch``, ``batch_size``, ``views`` and
        ``train_patches``.

    Example:
        >>> train_budget(Config.fromfile('configs/mmpretrain/hlss_srh.py'),
        ...              0)['views']  # doctest: +SKIP
        2
    """
    from mmpretrain.registry import DATA_SAMPLERS, DATASETS
    loader = cfg.train_dataloader
    dataset_cfg = copy.deepcopy(loader.dataset)
    dataset_cfg['pipeline'] = []
    dataset = DATASETS.build(dataset_cfg)
    sampler = DATA_SAMPLERS.build(copy.deepcopy(loader.sampler),
                                  default_args=dict(dataset=dataset,
                                                    seed=seed))
    iters = getattr(sampler, 'num_batches', None)
    if iters is None:
        iters = len(sampler) // loader.batch_size
    return dict(iters_per_epoch=int(iters), batch_size=int(loader.batch_size),
                views=count_views(cfg), train_patches=len(dataset))
