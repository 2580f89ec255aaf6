"""Hook that keeps mmengine checkpoints loadable with ``weights_only=True``."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from hlss_plugin.engine.plain_state import from_plain, to_plain


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Store checkpoints as plain values so that training can be resumed.

    Why it exists: since torch 2.6 ``torch.load`` defaults to
    ``weights_only=True``, and mmengine 0.10.7 calls it with that default.
    The checkpoints mmengine writes hold the message hub's ``HistoryBuffer``
    objects (and, in ``meta['dataset_meta']`` or the runtime info, possibly
    numpy arrays and numpy scalars). The weights-only loader refuses them, so
    ``resume=True`` and ``load_from`` fail on mmengine's own checkpoints.
    This hook never relaxes that loader (no allow-listed globals, no
    ``weights_only=False``, no patching): in ``before_save_checkpoint`` it
    rewrites those values as tagged dicts of tensors and Python values
    (:func:`~hlss_plugin.engine.plain_state.to_plain`), and in
    ``after_load_checkpoint`` it rebuilds them
    (:func:`~hlss_plugin.engine.plain_state.from_plain`) before the runner
    restores its message hub.

    Ordering: the priority is ``'LOWEST'``. ``before_save_checkpoint`` must
    run after every hook that adds to the checkpoint (e.g. ``EMAHook`` adds
    ``ema_state_dict``), otherwise values added later would escape the
    conversion and break loading. ``after_load_checkpoint`` then also runs
    last, which is harmless for mmengine and mmpretrain: the runner reads
    ``meta`` and ``message_hub`` only after all hooks ran, and the parts other
    hooks read (``state_dict``, ``ema_state_dict``, ``optimizer``) are plain
    already, so the conversion leaves them as the very same objects. A custom
    hook that itself stores numpy arrays in the checkpoint and reads them back
    in ``after_load_checkpoint`` sees the tagged dicts and should call
    ``from_plain`` on its entry (it is a no-op on untagged values).

    Checkpoints without tags -- weight-only files, checkpoints without
    ``message_hub``, or plain checkpoints written without this hook -- load
    unchanged. Checkpoints that mmengine wrote *without* this hook cannot be
    helped: ``torch.load`` refuses them before any hook runs; re-save such a
    trusted file once with this hook's ``to_plain``.

    The hook takes no arguments; set it up through ``custom_hooks``. A
    ``priority`` key in that config overrides ``'LOWEST'`` as for any hook.

    Example:
        >>> # In a config (with `custom_imports` importing `hlss_plugin`):
        >>> custom_hooks = [dict(type='PlainCheckpointHook')]
        >>> # Or directly:
        >>> import numpy as np
        >>> from mmengine.logging import HistoryBuffer
        >>> hook = PlainCheckpointHook()
        >>> ckpt = {'message_hub': {'log_scalars': {
        ...     'train/loss': HistoryBuffer([0.5], [1])}},
        ...     'meta': {'best': np.float64(0.9)}}
        >>> hook.before_save_checkpoint(None, ckpt)
        >>> ckpt['meta']['best']['__hlss_type__']
        'numpy.generic'
        >>> hook.after_load_checkpoint(None, ckpt)
        >>> type(ckpt['message_hub']['log_scalars']['train/loss']).__name__
        'HistoryBuffer'
    """

    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Replace non-plain values in ``checkpoint`` by tagged dicts.

        Args:
            runner (Runner): The runner saving the checkpoint (unused).
            checkpoint (dict): The checkpoint about to be written; updated in
                place, the objects it refers to are not modified.

        Raises:
            ValueError: If the checkpoint holds a value that can be neither
                stored plainly nor converted; the message names its path,
                e.g. ``checkpoint['message_hub']['runtime_info']['foo']``.
        """
        _replace_contents(checkpoint, to_plain(checkpoint, 'checkpoint'))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Rebuild the tagged values of a loaded ``checkpoint`` in place.

        Args:
            runner (Runner): The runner loading the checkpoint (unused).
            checkpoint (dict): The checkpoint as ``torch.load`` returned it.
        """
        _replace_contents(checkpoint, from_plain(checkpoint, 'checkpoint'))


def _replace_contents(checkpoint: dict, converted: dict) -> None:
    """Make the runner's ``checkpoint`` dict hold ``converted``'s entries."""
    if converted is not checkpoint:
        checkpoint.clear()
        checkpoint.update(converted)
