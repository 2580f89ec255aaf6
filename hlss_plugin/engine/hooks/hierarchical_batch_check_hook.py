"""Hook that checks the train DataLoader batch size against its sampler."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class HierarchicalBatchCheckHook(Hook):
    """Fail before the first iteration if batches split sampler chunks.

    :class:`~hlss_plugin.datasets.samplers.HierarchicalSampler` yields
    indices in chunks of ``P_rank * S * K`` (patients x slides x patches on
    this rank) that must each become exactly one batch; a DataLoader batch
    size that differs silently mixes patients of different chunks into a
    batch and breaks the hierarchy the losses rely on. In ``before_train``
    this hook finds the train sampler
    (``runner.train_dataloader.batch_sampler.sampler`` or
    ``runner.train_dataloader.sampler``) and, if it has a
    ``check_batch_size(batch_size, where=...)`` method, calls it with the
    batch size of this rank's DataLoader (``DataLoader.batch_size``, or its
    batch sampler's ``batch_size``), which raises a ``ValueError`` that names
    the config keys to set. Samplers without that method are left alone, so
    the hook is harmless in any config and with any runner whose
    ``train_dataloader`` is a :class:`torch.utils.data.DataLoader`.

    Under DDP with the sampler's ``batch_scope='global'`` the per-rank chunk
    is ``(patients_per_batch / world_size) * S * K``, which only
    :class:`~hlss_plugin.datasets.samplers.HierarchicalBatchSampler`
    (``train_dataloader.batch_sampler=dict(type='HierarchicalBatchSampler')``)
    follows; with a plain ``train_dataloader.batch_size`` the check fails and
    says so. That batch sampler checks ``train_dataloader.batch_size``
    against the sampler itself when the DataLoader is built.

    It also stops a run that enables mmengine's ``auto_scale_lr`` with
    ``batch_scope='global'`` on several GPUs: mmengine takes
    ``world_size * train_dataloader.batch_size`` as the global batch, but
    there ``train_dataloader.batch_size`` already is the global batch, so
    the learning rate would be scaled ``world_size`` times too much.

    The hook takes no arguments; its priority is ``'VERY_HIGH'`` so that it
    fails before other hooks spend time in ``before_train``.

    Example:
        >>> # In a config (with `custom_imports` importing `hlss_plugin`):
        >>> custom_hooks = [dict(type='PlainCheckpointHook'),
        ...                 dict(type='HierarchicalBatchCheckHook')]
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        """Check ``runner.train_dataloader``'s batch size.

        Args:
            runner (Runner): The runner about to train.

        Raises:
            ValueError: From the sampler's ``check_batch_size`` if the batch
                size is not the sampler's chunk size on this rank; if the
                sampler has ``check_batch_size`` but the DataLoader has no
                batch size to check (e.g. a custom batch sampler without
                ``batch_size``); or if ``auto_scale_lr`` is enabled with
                ``batch_scope='global'`` on several GPUs.
        """
        loader = runner.train_dataloader
        batch_sampler = getattr(loader, 'batch_sampler', None)
        candidates = (getattr(batch_sampler, 'sampler', None),
                      getattr(loader, 'sampler', None))
        sampler = next((s for s in candidates
                        if callable(getattr(s, 'check_batch_size', None))),
                       None)
        if sampler is None:
            return
        batch_size = getattr(loader, 'batch_size', None)
        if batch_size is None:
            batch_size = getattr(batch_sampler, 'batch_size', None)
        if batch_size is None:
            raise ValueError(
                f'HierarchicalBatchCheckHook: the train DataLoader uses '
                f'{type(sampler).__name__}, whose chunks must each be one '
                f'batch, but neither the DataLoader nor its batch sampler '
                f'({type(batch_sampler).__name__}) has a `batch_size`; set '
                f"train_dataloader.batch_sampler = dict(type="
                f"'HierarchicalBatchSampler'), which batches the chunks.")
        sampler.check_batch_size(
            batch_size, where='train_dataloader.batch_size')
        self._check_auto_scale_lr(runner, sampler)

    @staticmethod
    def _check_auto_scale_lr(runner, sampler) -> None:
        auto_scale_lr = getattr(runner, 'auto_scale_lr', None) or {}
        world_size = getattr(sampler, 'world_size', 1)
        if (auto_scale_lr.get('enable', False)
                and getattr(sampler, 'batch_scope', None) == 'global'
                and world_size > 1):
            raise ValueError(
                f"HierarchicalBatchCheckHook: auto_scale_lr.enable=True "
                f'scales the learning rate by world_size x '
                f'train_dataloader.batch_size / auto_scale_lr.base_batch_size'
                f', but with train_dataloader.sampler.batch_scope='
                f"'global' train_dataloader.batch_size is already the global "
                f'batch, so the rate would be {world_size} times too large; '
                f'set auto_scale_lr.enable=False (the global batch does not '
                f'change with the number of GPUs) or set '
                f"train_dataloader.sampler.batch_scope='per_gpu'.")
