"""Batch sampler that turns each HierarchicalSampler chunk into one batch."""
from typing import Iterator, List, Optional

from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import BatchSampler

from .hierarchical_sampler import HierarchicalSampler, _is_int


@DATA_SAMPLERS.register_module()
class HierarchicalBatchSampler(BatchSampler):
    """Yield one :class:`HierarchicalSampler` chunk per batch on every rank.

    With ``batch_scope='global'`` the per-rank batch is
    ``(patients_per_batch / world_size) * S * K`` indices and so depends on
    the number of GPUs, which a DataLoader ``batch_size`` fixed in a config
    cannot follow. This batch sampler takes the batch size from the sampler
    instead, so one config runs on any number of GPUs. mmengine's
    ``Runner.build_dataloader`` builds it from::

        train_dataloader = dict(
            batch_size=P * S * K,  # as the sampler's batch_scope counts it
            sampler=dict(type='HierarchicalSampler', patients_per_batch=P,
                         slides_per_patient=S, patches_per_slide=K),
            batch_sampler=dict(type='HierarchicalBatchSampler'),
            ...)

    passing the built sampler and ``train_dataloader.batch_size``; the
    latter must be the sampler's
    :attr:`~HierarchicalSampler.config_batch_size` ``= P * S * K`` (the
    global batch under ``'global'``, the per-GPU batch under ``'per_gpu'``),
    so a config whose batch size disagrees with its sampler fails when the
    DataLoader is built, with or without ``HierarchicalBatchCheckHook``.

    Note that mmengine's ``auto_scale_lr`` takes
    ``world_size * train_dataloader.batch_size`` as the global batch, which
    is right under ``'per_gpu'`` only (``HierarchicalBatchCheckHook`` stops
    the other case).

    :meth:`set_epoch` is forwarded to the sampler; mmengine's loops and
    ``DistSamplerSeedHook`` call ``batch_sampler.sampler.set_epoch``.

    Args:
        sampler (HierarchicalSampler): The index sampler.
        batch_size (int, optional): ``train_dataloader.batch_size``, checked
            against ``sampler.config_batch_size``; ``None`` skips the check.
            Defaults to None.

    Raises:
        ValueError: If ``sampler`` is not a :class:`HierarchicalSampler` or
            ``batch_size`` is not ``sampler.config_batch_size``.

    Example:
        >>> from hlss_plugin.datasets.hierarchy import Hierarchy
        >>> class Toy:
        ...     # 8 patients x 1 slide x 2 patches
        ...     h = Hierarchy.from_items(
        ...         item_patient=[i // 2 for i in range(16)],
        ...         item_slide=[i // 2 for i in range(16)],
        ...         patient_labels=[0] * 8,
        ...         patient_names=tuple('abcdefgh'),
        ...         slide_names=tuple('abcdefgh'))
        ...     def get_hierarchy(self):
        ...         return self.h
        ...     def __len__(self):
        ...         return 16
        >>> # 4 patients per step over 2 GPUs: rank 1 gets 2 per batch.
        >>> sampler = HierarchicalSampler(
        ...     Toy(), patients_per_batch=4, slides_per_patient=1,
        ...     patches_per_slide=2, seed=0, rank=1, world_size=2)
        >>> batches = HierarchicalBatchSampler(sampler, batch_size=4 * 1 * 2)
        >>> batches.batch_size, len(batches), [len(b) for b in batches]
        (4, 2, [4, 4])
    """

    def __init__(self,
                 sampler: HierarchicalSampler,
                 batch_size: Optional[int] = None) -> None:
        if not isinstance(sampler, HierarchicalSampler):
            raise ValueError(
                f'HierarchicalBatchSampler batches the chunks of a '
                f'HierarchicalSampler, but train_dataloader.sampler is '
                f'{type(sampler).__name__}; set train_dataloader.sampler = '
                f"dict(type='HierarchicalSampler', ...) or leave out "
                f'train_dataloader.batch_sampler.')
        expected = sampler.config_batch_size
        if batch_size is not None and (not _is_int(batch_size)
                                       or batch_size != expected):
            scope = sampler.batch_scope
            what = ('the global batch, split over the GPUs by this batch '
                    'sampler' if scope == 'global' else 'the batch per GPU')
            raise ValueError(
                f'train_dataloader.batch_size is {batch_size!r} but '
                f'HierarchicalSampler yields chunks of patients_per_batch x '
                f'slides_per_patient x patches_per_slide indices '
                f"(batch_scope='{scope}': {what}); set "
                f'train_dataloader.batch_size = '
                f'{sampler.patients_per_batch}*{sampler.slides_per_patient}*'
                f'{sampler.patches_per_slide} = {expected}.')
        super().__init__(sampler, sampler.batch_size, drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        """Forward to :meth:`HierarchicalSampler.set_epoch`."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[List[int]]:
        """Yield this rank's batches of the current epoch."""
        indices = list(self.sampler)
        for start in range(0, len(indices), self.batch_size):
            yield indices[start:start + self.batch_size]

    def __len__(self) -> int:
        """int: Batches per epoch, ``sampler.num_batches`` on every rank."""
        return self.sampler.num_batches
