"""Hook that puts the model's 4-D weights in ``channels_last`` layout."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model to ``torch.channels_last`` before the run starts.

    Convolutions run fastest on tensor cores (and with oneDNN on CPUs) when
    activations and weights are NHWC. Use it together with a data
    preprocessor that emits channels-last inputs, e.g.
    ``SRHBatchAugmentPreprocessor(channels_last=True)``; conv outputs then
    stay channels-last through the network. Only 4-D parameters and buffers
    change layout (``Module.to(memory_format=...)``); values, names,
    checkpoints and optimizer references are unchanged.

    The runner builds (and, for DDP, wraps) the model before any hook runs,
    so under DDP the conversion happens after wrapping: DDP's gradient
    buckets follow the new layout from the second iteration on, when it
    rebuilds them (the first may warn that grad strides do not match).

    Args:
        enabled (bool): Convert (True) or leave the model alone (False), so a
            config can switch it with one value. Defaults to True.

    Example:
        >>> custom_hooks = [dict(type='ChannelsLastHook')]
    """

    priority = 'VERY_HIGH'

    def __init__(self, enabled: bool = True):
        if not isinstance(enabled, bool):
            raise ValueError(f'ChannelsLastHook: enabled must be True or '
                             f'False, got {enabled!r}.')
        self.enabled = enabled

    def before_run(self, runner) -> None:
        if not self.enabled:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        model.to(memory_format=torch.channels_last)
        runner.logger.info('ChannelsLastHook: model weights converted to '
                           'torch.channels_last.')
