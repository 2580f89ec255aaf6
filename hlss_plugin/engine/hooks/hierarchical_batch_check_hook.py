"""Hook that checks the train DataLoader batch size against its sampler."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class HierarchicalBatchCheckHook(Hook):
    """Fail before the first iteration if the batch size splits chunks.

    :class:`~hlss_plugin.datasets.samplers.HierarchicalSampler` yields
    indices in chunks of ``P * S * K`` (patients x slides x patches) that
    must each become exactly one batch; a DataLoader ``batch_size`` that
    differs silently mixes patients of different chunks into a batch and
    breaks the hierarchy the losses rely on. In ``before_train`` this hook
    finds the train sampler (``runner.train_dataloader.batch_sampler.sampler``
    or ``runner.train_dataloader.sampler``) and, if it has a
    ``check_batch_size(batch_size, where=...)`` method, calls it with the
    DataLoader's batch size, which raises a ``ValueError`` that says which
    value to set. Samplers without that method are left alone, so the hook
    is harmless in any config and with any runner whose ``train_dataloader``
    is a :class:`torch.utils.data.DataLoader`.

    Under DDP both numbers are per process (mmengine's ``batch_size`` is the
    per-GPU batch size and the sampler's ``P`` counts patients per rank).

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
                size is not the sampler's chunk size, or if the sampler has
                ``check_batch_size`` but the DataLoader has no batch size to
                check (e.g. a custom batch sampler without ``batch_size``).
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
            chunk = getattr(sampler, 'batch_size', "the sampler's chunk size")
            raise ValueError(
                f'HierarchicalBatchCheckHook: the train DataLoader uses '
                f'{type(sampler).__name__}, whose chunks must each be one '
                f'batch, but neither the DataLoader nor its batch sampler '
                f'({type(batch_sampler).__name__}) has a `batch_size`; set '
                f'train_dataloader.batch_size = {chunk} and '
                f'leave out the custom batch_sampler.')
        sampler.check_batch_size(
            batch_size, where='train_dataloader.batch_size')
