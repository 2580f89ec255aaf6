"""``init_cfg=dict(type='HLSSPretrained', ...)``: a backbone from any of our
training checkpoints, its key prefix detected."""
from typing import Optional

from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmpretrain.registry import WEIGHT_INITIALIZERS
from torch import nn

from ...utils.backbone_state import BACKBONE_PREFIXES, load_backbone_state


@WEIGHT_INITIALIZERS.register_module(name='HLSSPretrained')
class HLSSPretrainedInit:
    """Initialise a backbone from a training checkpoint, finding its prefix.

    mmengine's ``Pretrained`` needs the key prefix of the backbone
    (``backbone.`` for HLSS, HiDisc and MMPretrain's algorithms,
    ``algorithm.backbone.`` for ``HLSSAuxWrapper``) and loads non-strictly,
    so a wrong prefix or architecture only warns. This initializer reads the
    checkpoint with ``torch.load(weights_only=True)``, detects the prefix
    among :data:`~hlss_plugin.utils.backbone_state.BACKBONE_PREFIXES`
    (``backbone.``, ``algorithm.backbone.`` and their DDP ``module.``
    variants), falls back to a plain backbone state dict (e.g. ``visual.pth``
    of ``tools/model_converters/convert_clip_rn50.py``), loads strictly and
    logs the prefix it used. The same logic as ``BackboneEmbedder``.

    Like mmengine's ``Pretrained``, which runs after everything else, the
    loaded weights are final: the module's submodules are marked
    initialised, and a ResNet's ``zero_init_residual`` is switched off (as
    MMPretrain's ResNet does for ``Pretrained``). Backbones that re-draw
    their own parameters at the end of ``init_weights`` unless the type is
    ``'Pretrained'`` (e.g. VisionTransformer's ``pos_embed``) are not
    covered; use mmengine's ``Pretrained`` there. In an ``init_cfg`` list,
    put this entry last.

    Args:
        checkpoint (str): Path of the checkpoint: mmengine's
            ``{'state_dict': {name: tensor}, ...}`` or a plain
            ``{name: tensor}`` file.
        prefix (str, optional): Key prefix of the backbone, used as given
            (must end with ``'.'``; ``''``: the whole dict is the backbone).
            Defaults to None: detect it.

    Attributes:
        used_prefix (str | None): The prefix the last call loaded from
            (``''``: a plain state dict); None before any call.

    Raises:
        ValueError: On an invalid argument; when called, if the checkpoint
            holds no backbone that matches the module (the message names the
            file, the prefixes tried and missing / unexpected keys).
        FileNotFoundError: When called, if ``checkpoint`` does not exist.

    Example:
        >>> backbone = MODELS.build(dict(
        ...     type='ResNet', depth=18, init_cfg=dict(
        ...         type='HLSSPretrained',
        ...         checkpoint='work_dirs/simclr_hlss_srh/epoch_200.pth')))
        >>> backbone.init_weights()  # logs: ... prefix 'algorithm.backbone.'
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None):
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError(
                f'HLSSPretrained: checkpoint must be the path of a training '
                f'checkpoint (e.g. work_dirs/<config>/epoch_N.pth), got '
                f'{checkpoint!r}.')
        if prefix is not None and (not isinstance(prefix, str) or (
                prefix and not prefix.endswith('.'))):
            raise ValueError(
                f'HLSSPretrained: prefix must be None (detect among '
                f'{", ".join(repr(p) for p in BACKBONE_PREFIXES)} or a plain '
                f'state dict), \'\' (plain state dict) or a key prefix '
                f'ending with \'.\' such as \'algorithm.backbone.\', got '
                f'{prefix!r}.')
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.used_prefix: Optional[str] = None

    def __call__(self, module: nn.Module) -> None:
        """Load the backbone of :attr:`checkpoint` into ``module``.

        Args:
            module (nn.Module): The backbone (the module whose ``init_cfg``
                names this initializer).
        """
        used = load_backbone_state(module, self.checkpoint, self.prefix,
                                   owner='HLSSPretrained', allow_bare=True)
        self.used_prefix = used
        for sub in module.modules():  # loaded weights are final
            if sub is not module and hasattr(sub, 'init_weights'):
                sub.is_init = True
        if getattr(module, 'zero_init_residual', False):
            module.zero_init_residual = False
        how = (f'prefix {used!r}' if used else 'no prefix (plain state dict)')
        if self.prefix is None:
            how += ', detected'
        print_log(f'HLSSPretrained: loaded {type(module).__name__} from '
                  f'{self.checkpoint} ({how})', logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return (f'{self.__class__.__name__}: load from {self.checkpoint} '
                f'(prefix {self.used_prefix!r})')
