"""Hook that makes every rank hold the buffers the checkpoint stores."""
from typing import Dict, List, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from hlss_plugin.utils.dist import is_distributed

#: Buffers of these modules hold statistics of the data a rank saw.
_STAT_NAMES = ('running_mean', 'running_var')


def split_buffers(model: nn.Module
                  ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Split ``model``'s buffers into running statistics and the rest.

    Args:
        model (nn.Module): The (unwrapped) model.

    Returns:
        tuple[list[Tensor], list[Tensor]]: ``(stats, others)``: the
        floating-point ``running_mean`` / ``running_var`` of every
        normalisation layer (``_NormBase``: BatchNorm, InstanceNorm with
        running stats, ...), and every other buffer (``num_batches_tracked``,
        queues, constants), each buffer once.

    Example:
        >>> stats, others = split_buffers(nn.BatchNorm1d(4))
        >>> len(stats), len(others)
        (2, 1)
    """
    stats, others, seen = [], [], set()
    for module in model.modules():
        is_norm = isinstance(module, nn.modules.batchnorm._NormBase)
        for name, buf in module.named_buffers(recurse=False):
            if buf is None or id(buf) in seen:
                continue
            seen.add(id(buf))
            if (is_norm and name in _STAT_NAMES
                    and buf.dtype.is_floating_point):
                stats.append(buf)
            else:
                others.append(buf)
    return stats, others


def _by_kind(tensors: List[torch.Tensor]
             ) -> Dict[Tuple[torch.dtype, torch.device], List[torch.Tensor]]:
    groups: Dict[Tuple[torch.dtype, torch.device], List[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    return groups


def sync_buffers(model: nn.Module) -> None:
    """Make ``model``'s buffers identical on every rank (in place).

    Running statistics (see :func:`split_buffers`) become their mean over
    the ranks (each rank normalised different batches, so each holds an
    estimate from its own data); every other buffer is copied from rank 0,
    whose values the checkpoint stores. One collective per dtype and device.
    Without an initialised process group (or with one rank) nothing happens.

    Args:
        model (nn.Module): The model, DDP-wrapped or not.
    """
    if not is_distributed():
        return
    module = model.module if is_model_wrapper(model) else model
    stats, others = split_buffers(module)
    size = torch_dist.get_world_size()
    for tensors, mean in ((stats, True), (others, False)):
        for group in _by_kind(tensors).values():
            flat = _flatten_dense_tensors([t.detach() for t in group])
            if mean:
                torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
                flat.div_(size)
            else:
                torch_dist.broadcast(flat, src=0)
            for t, synced in zip(group, _unflatten_dense_tensors(flat,
                                                                 group)):
                t.copy_(synced)


@HOOKS.register_module()
class EvalBufferSyncHook(Hook):
    """Under DDP, validate and save the same weights *and buffers*.

    DDP averages gradients, so parameters stay identical on every rank, but
    buffers are each rank's own: with plain BatchNorm (CPU/gloo runs cannot
    use SyncBN, and ``model_wrapper_cfg.broadcast_buffers`` is False in
    ``tools/train.py``) every rank ends an epoch with running statistics of
    its own batches. The checkpoint holds rank 0's, while validation runs
    every rank's share of the data with that rank's statistics: the logged
    validation metrics were then those of no saved model (and differed from
    ``tools/test.py`` on the saved checkpoint).

    This hook synchronises the buffers (:func:`sync_buffers`: the running
    mean / variance of normalisation layers averaged over the ranks, every
    other buffer copied from rank 0) right after the training step(s) that
    a checkpoint or a validation can follow:

    * epoch-based loops (``EpochBasedTrainLoop``): in ``after_train_epoch``,
      which runs before ``CheckpointHook.after_train_epoch`` (this hook's
      priority ``'NORMAL'`` is above ``CheckpointHook``'s ``'VERY_LOW'``)
      and before the loop starts validation;
    * iteration-based loops (``IterBasedTrainLoop``, and any loop that is
      not an ``EpochBasedTrainLoop``): in every
      ``after_train_iter``, likewise before ``CheckpointHook`` saves and
      before validation. (mmengine's ``SyncBuffersHook`` syncs before
      validation there, *after* the checkpoint of that iteration was
      written.) One small collective per iteration; it does not change
      training, which normalises with batch statistics, and because the
      running-average update is linear, averaging every iteration gives
      the same statistics as averaging once at the end.

    Without a process group (or with one rank) it does nothing.
    ``default_hooks.sync_buffers`` in ``_base_/default_runtime.py`` sets it
    up for every config; ``default_hooks.sync_buffers.enabled=False`` turns
    it off (mmengine refuses None for a default hook it does not know).

    Args:
        enabled (bool): Synchronise. Defaults to True.

    Example:
        >>> default_hooks = dict(sync_buffers=dict(type='EvalBufferSyncHook'))
    """

    priority = 'NORMAL'

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    @staticmethod
    def _iteration_based(runner) -> bool:
        # anything but an epoch-based loop (iteration-based, custom) syncs
        # every iteration, which is always safe
        return not isinstance(getattr(runner, 'train_loop', None),
                              EpochBasedTrainLoop)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Sync after every iteration of an iteration-based loop."""
        if self.enabled and self._iteration_based(runner):
            sync_buffers(runner.model)

    def after_train_epoch(self, runner) -> None:
        """Sync at the end of every epoch of an epoch-based loop."""
        if self.enabled and not self._iteration_based(runner):
            sync_buffers(runner.model)
