"""CLIP's modified ResNet (the RN50 image tower) as an MMPretrain backbone."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.arg_checks import check_int
from ...utils.checkpoint import (read_state_dict, state_dict_diff,
                                 strip_prefix)

__all__ = ['CLIPResNet']

#: How to obtain the converted weights; quoted by every missing-file error.
CONVERT_HINT = ('Convert an OpenAI / open_clip CLIP ResNet checkpoint once '
                'with `python tools/model_converters/convert_clip_rn50.py '
                'RN50.pt {folder}` '
                '(writes {folder}/visual.pth and {folder}/text/), then point '
                'the config at that folder: configs/mmpretrain/'
                'hlss_clip_rn50_srh.py reads it from the environment '
                'variable HLSS_CLIP_DIR.')

_EXPANSION = 4


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride,
                     padding=kernel // 2, bias=False)


def _pool(stride: int) -> nn.Module:
    return nn.AvgPool2d(stride) if stride > 1 else nn.Identity()


class _Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (average pool when strided) -> 1x1, with a residual.

    Strided blocks downsample by a 2x2 average pool instead of a strided
    convolution (anti-aliasing); the shortcut pools, then projects.
    """

    def __init__(self, in_ch: int, planes: int, stride: int, norm_cfg: dict):
        super().__init__()
        out_ch = planes * _EXPANSION
        self.conv1 = _conv(in_ch, planes, 1)
        self.norm1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = _conv(planes, planes, 3)
        self.norm2 = build_norm_layer(norm_cfg, planes)[1]
        self.pool = _pool(stride)
        self.conv3 = _conv(planes, out_ch, 1)
        self.norm3 = build_norm_layer(norm_cfg, out_ch)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(OrderedDict([
                ('pool', _pool(stride)),
                ('conv', _conv(in_ch, out_ch, 1)),
                ('norm', build_norm_layer(norm_cfg, out_ch)[1]),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(self.pool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class _AttentionPool(nn.Module):
    """Multi-head attention of the mean token over all positions.

    The query is the spatial mean of the feature map; keys and values are
    the mean and every position, each with a learned positional embedding.
    The embedding is learned for a ``grid x grid`` map; other map sizes use
    a bicubic interpolation of its spatial part (the mean token's entry is
    kept), so any input resolution works.
    """

    def __init__(self, grid: int, channels: int, heads: int, out_dim: int):
        super().__init__()
        self.grid = grid
        self.heads = heads
        self.pos_embed = nn.Parameter(
            torch.randn(grid * grid + 1, channels) / channels**0.5)
        self.q_proj = nn.Linear(channels, channels)
        self.k_proj = nn.Linear(channels, channels)
        self.v_proj = nn.Linear(channels, channels)
        self.out_proj = nn.Linear(channels, out_dim)

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """``(1 + height * width, C)`` embedding for a map of that size."""
        if (height, width) == (self.grid, self.grid):
            return self.pos_embed
        first, spatial = self.pos_embed[:1], self.pos_embed[1:]
        spatial = spatial.reshape(1, self.grid, self.grid, -1)
        spatial = F.interpolate(spatial.permute(0, 3, 1, 2),
                                size=(height, width), mode='bicubic',
                                align_corners=False)
        spatial = spatial.flatten(2).transpose(1, 2)[0]
        return torch.cat([first, spatial], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, HW, C)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        tokens = tokens + self.position_embedding(h, w).to(tokens.dtype)

        def split(t: torch.Tensor) -> torch.Tensor:  # (N, L, C) -> heads
            return t.reshape(n, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.q_proj(tokens[:, :1])), split(self.k_proj(tokens)),
            split(self.v_proj(tokens)))  # (N, heads, 1, C / heads)
        return self.out_proj(out.reshape(n, c))


def _is_local(path: str) -> bool:
    return '://' not in str(path)


@MODELS.register_module()
class CLIPResNet(BaseModule):
    """CLIP's modified ResNet image tower (RN50, RN101, RN50x4, ...).

    Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision", ICML 2021 (https://arxiv.org/abs/2103.00020);
    the tower HLSS starts from (Watawana et al., MICCAI 2024). Differences
    from a torchvision ResNet: a stem of three 3x3 convolutions followed by
    a 2x2 average pool; bottlenecks that downsample with an average pool
    (before the last 1x1 convolution, and before the shortcut's projection)
    instead of strided convolutions; and an attention pool instead of
    global average pooling, projecting to ``output_dim``.

    Weights converted from OpenAI / open_clip checkpoints by
    ``tools/model_converters/convert_clip_rn50.py`` load with
    ``init_cfg=dict(type='Pretrained', checkpoint='DIR/visual.pth')``.
    Before loading, the checkpoint's keys and shapes are compared with the
    model and any difference is an error (mmengine alone would only warn),
    so a checkpoint of another size never loads half-way. A local
    checkpoint that does not exist is an error at construction.

    Input resolution: any size of at least 32 px works; maps of another
    size than ``image_size // 32`` use a bicubically interpolated
    positional embedding in the attention pool (the embedding parameter is
    unchanged). At ``image_size`` the output equals CLIP's.

    Args:
        layers (Sequence[int]): Bottleneck blocks per stage, e.g. (3, 4, 6,
            3) for RN50, (3, 4, 23, 3) for RN101, (4, 6, 10, 6) for RN50x4.
            Defaults to (3, 4, 6, 3).
        width (int): Stem output channels (= planes of the first stage);
            stage ``i`` outputs ``width * 4 * 2**i`` channels. Defaults to 64.
        heads (int): Attention-pool heads; CLIP uses ``width * 32 // 64``.
            Defaults to 32.
        output_dim (int): Size of the pooled embedding. Defaults to 1024.
        image_size (int): Resolution the positional embedding is learned
            for (a multiple of 32). Defaults to 224.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages (0-based, negatives allowed)
            whose feature maps ``(N, width * 4 * 2**i, H / 2**(i + 2),
            W / 2**(i + 2))`` are returned before the pooled embedding.
            Defaults to () (only the pooled embedding).
        with_attnpool (bool): Append the attention-pooled embedding
            ``(N, output_dim)`` as the last output; False drops the pool
            (no parameters). Defaults to True.
        frozen_stages (int): -1 freezes nothing; 0 the stem; ``k`` the stem
            and stages 1..k; ``len(layers) + 1`` also the attention pool.
            Frozen parts stay in eval mode. Defaults to -1.
        norm_eval (bool): Keep every BatchNorm in eval mode (running
            statistics frozen) during training. Defaults to False.
        norm_cfg (dict): Norm layer config (``dict(type='SyncBN')`` for
            synchronised statistics). Defaults to ``dict(type='BN')``.
        zero_init_residual (bool): Start every block's last norm at zero
            weight (as CLIP does) when no pretrained weights are loaded.
            Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config, e.g.
            ``dict(type='Pretrained', checkpoint='DIR/visual.pth')``.

    Example:
        >>> model = CLIPResNet(layers=(1, 1, 1, 1), width=16, heads=2,
        ...                    output_dim=32, out_indices=(3, ))
        >>> feat, emb = model(torch.rand(2, 3, 224, 224))
        >>> feat.shape, emb.shape
        (torch.Size([2, 512, 7, 7]), torch.Size([2, 32]))
    """

    def __init__(self,
                 layers: Sequence[int] = (3, 4, 6, 3),
                 width: int = 64,
                 heads: int = 32,
                 output_dim: int = 1024,
                 image_size: int = 224,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (),
                 with_attnpool: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 zero_init_residual: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        layers = tuple(layers)
        self._check_args(layers, width, heads, output_dim, image_size)
        num_stages = len(layers)
        self.out_indices = self._normalise_indices(out_indices, num_stages)
        if not self.out_indices and not with_attnpool:
            raise ValueError('CLIPResNet: nothing to output; set '
                             'with_attnpool=True or give out_indices, e.g. '
                             f'out_indices=({num_stages - 1}, ).')
        if not -1 <= frozen_stages <= num_stages + 1:
            raise ValueError(f'CLIPResNet: frozen_stages must be in [-1, '
                             f'{num_stages + 1}] (-1: none, 0: stem, k: stem '
                             f'+ stages 1..k, {num_stages + 1}: also the '
                             f'attention pool), got {frozen_stages}.')
        self._check_checkpoint_exists()
        self.layers = layers
        self.width = width
        self.heads = heads
        self.output_dim = output_dim
        self.image_size = image_size
        self.with_attnpool = with_attnpool
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)

        half = width // 2
        self.stem = nn.Sequential(OrderedDict([
            ('conv1', _conv(in_channels, half, 3, stride=2)),
            ('norm1', build_norm_layer(norm_cfg, half)[1]),
            ('relu1', nn.ReLU(inplace=True)),
            ('conv2', _conv(half, half, 3)),
            ('norm2', build_norm_layer(norm_cfg, half)[1]),
            ('relu2', nn.ReLU(inplace=True)),
            ('conv3', _conv(half, width, 3)),
            ('norm3', build_norm_layer(norm_cfg, width)[1]),
            ('relu3', nn.ReLU(inplace=True)),
            ('pool', nn.AvgPool2d(2)),
        ]))
        in_ch = width
        self.stage_names = []
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stage = [_Bottleneck(in_ch, planes, 1 if i == 0 else 2, norm_cfg)]
            in_ch = planes * _EXPANSION
            stage += [
                _Bottleneck(in_ch, planes, 1, norm_cfg)
                for _ in range(blocks - 1)
            ]
            self.add_module(f'layer{i + 1}', nn.Sequential(*stage))
            self.stage_names.append(f'layer{i + 1}')
        self.feat_dim = in_ch
        self.attnpool = _AttentionPool(image_size // 32, in_ch, heads,
                                       output_dim) if with_attnpool else None
        self._reset_parameters()
        self._freeze_stages()

    # ------------------------------------------------------------ arguments
    @staticmethod
    def _check_args(layers, width, heads, output_dim, image_size) -> None:
        if not layers or any(
                not isinstance(b, int) or b < 1 for b in layers):
            raise ValueError(f'CLIPResNet: layers must be positive block '
                             f'counts per stage, e.g. (3, 4, 6, 3); got '
                             f'{layers}.')
        for name, value in (('width', width), ('heads', heads),
                            ('output_dim', output_dim)):
            check_int(name, value, minimum=1, owner='CLIPResNet')
        if width % 2:
            raise ValueError(f'CLIPResNet: width must be even (the stem '
                             f'starts with width // 2 channels), got {width}.')
        channels = width * _EXPANSION * 2**(len(layers) - 1)
        if channels % heads:
            raise ValueError(f'CLIPResNet: the attention pool\'s {channels} '
                             f'channels are not divisible by heads={heads}; '
                             f'CLIP uses heads = width * 32 // 64.')
        if not isinstance(image_size, int) or image_size < 32 or \
                image_size % 32:
            raise ValueError(f'CLIPResNet: image_size must be a multiple of '
                             f'32 (>= 32), got {image_size!r}.')

    @staticmethod
    def _normalise_indices(out_indices: Sequence[int],
                           num_stages: int) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        result = []
        for index in out_indices:
            if not isinstance(index, int) or not \
                    -num_stages <= index < num_stages:
                raise ValueError(f'CLIPResNet: out_indices must be stage '
                                 f'indices in [{-num_stages}, {num_stages}), '
                                 f'got {tuple(out_indices)}.')
            result.append(index % num_stages)
        return tuple(sorted(set(result)))

    def _pretrained_cfg(self) -> Optional[dict]:
        cfgs = self.init_cfg if isinstance(self.init_cfg,
                                           (list, tuple)) else [self.init_cfg]
        for cfg in cfgs:
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
                return cfg
        return None

    def _check_checkpoint_exists(self) -> None:
        cfg = self._pretrained_cfg()
        if cfg is None:
            return
        path = cfg.get('checkpoint')
        if not isinstance(path, str) or not path:
            raise ValueError('CLIPResNet: init_cfg of type Pretrained needs '
                             'checkpoint=PATH (e.g. DIR/visual.pth).')
        if _is_local(path) and not osp.isfile(path):
            folder = osp.dirname(path) or '.'
            raise FileNotFoundError(
                f'CLIPResNet: pretrained checkpoint {path!r} does not exist. '
                + CONVERT_HINT.format(folder=folder))

    # ------------------------------------------------------ initialisation
    def _reset_parameters(self) -> None:
        if self.attnpool is not None:
            std = self.attnpool.q_proj.in_features**-0.5
            for proj in (self.attnpool.q_proj, self.attnpool.k_proj,
                         self.attnpool.v_proj, self.attnpool.out_proj):
                nn.init.normal_(proj.weight, std=std)
        if self.zero_init_residual:
            for name in self.stage_names:
                for block in getattr(self, name):
                    nn.init.zeros_(block.norm3.weight)

    def init_weights(self) -> None:
        """Initialise; with a ``Pretrained`` init_cfg, check the checkpoint
        against the model first (error on any missing, unexpected or
        differently shaped key), then let mmengine load it."""
        cfg = self._pretrained_cfg()
        if cfg is not None and not self._is_init:
            self._check_pretrained(cfg)
        super().init_weights()

    def _check_pretrained(self, cfg: dict) -> None:
        path, prefix = cfg['checkpoint'], cfg.get('prefix')
        if _is_local(path) and not osp.isfile(path):
            raise FileNotFoundError(
                f'CLIPResNet: pretrained checkpoint {path!r} does not exist. '
                + CONVERT_HINT.format(folder=osp.dirname(path) or '.'))
        if _is_local(path):  # weights-only, as every reader of ours
            state = read_state_dict(path, owner='CLIPResNet')
        else:  # a URL: mmengine downloads it
            ckpt = CheckpointLoader.load_checkpoint(
                path, map_location=cfg.get('map_location', 'cpu'))
            state = ckpt.get('state_dict', ckpt) if isinstance(
                ckpt, dict) else None
            if not isinstance(state, dict):
                raise ValueError(
                    f'CLIPResNet: {path!r} holds no state dict.')
        if prefix:  # as mmengine: the prefix applies to the raw keys
            prefix = prefix if prefix.endswith('.') else prefix + '.'
            state = strip_prefix(state, prefix)
        else:  # as mmengine's default revise_keys
            state = {(k[7:] if k.startswith('module.') else k): v
                     for k, v in state.items()}
        problems = self.compare_state_dict(state)
        if problems:
            raise ValueError(
                f'CLIPResNet: checkpoint {path!r} does not fit this model '
                f'(layers={self.layers}, width={self.width}, output_dim='
                f'{self.output_dim}, image_size={self.image_size}, '
                f'with_attnpool={self.with_attnpool}): '
                + '; '.join(problems) + '. If it was converted from another '
                'CLIP ResNet, copy the arguments from visual_config.json '
                'next to it (written by '
                'tools/model_converters/convert_clip_rn50.py).')

    def compare_state_dict(self, state: Dict[str, torch.Tensor]) -> List[str]:
        """Differences between ``state`` and this model's state dict.

        Args:
            state (dict[str, Tensor]): A state dict with this model's key
                names (no prefix).

        Returns:
            list[str]: Human-readable problems (missing, unexpected and
            differently shaped keys, at most 5 named each); empty when
            ``state`` fits exactly.
        """
        missing, unexpected, shape_diff = state_dict_diff(
            self.state_dict(), state, optional_extra_state=False)

        def named(keys):
            more = f' and {len(keys) - 5} more' if len(keys) > 5 else ''
            return ', '.join(keys[:5]) + more

        problems = []
        if missing:
            problems.append(f'missing keys {named(missing)}')
        if unexpected:
            problems.append(f'unexpected keys {named(unexpected)}')
        if shape_diff:
            problems.append('shape (checkpoint vs model) of ' + named(
                [f'{k} {got} vs {want}' for k, got, want in shape_diff]))
        return problems

    # -------------------------------------------------------------- running
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = [self.stem]
        modules += [getattr(self, name)
                    for name in self.stage_names[:self.frozen_stages]]
        if self.frozen_stages > len(self.layers) and self.attnpool is not None:
            modules.append(self.attnpool)
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'CLIPResNet':
        """Switch mode, keeping frozen stages (and, with ``norm_eval``,
        every BatchNorm) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Run the tower.

        Args:
            x (Tensor): Images ``(N, C, H, W)``, normalised with CLIP's
                mean/std for pretrained weights.

        Returns:
            tuple[Tensor]: The feature maps of ``out_indices`` (in stage
            order), then, with ``with_attnpool``, the pooled embedding
            ``(N, output_dim)``.
        """
        if x.shape[-1] < 32 or x.shape[-2] < 32:
            raise ValueError(f'CLIPResNet: inputs must be at least 32x32 px '
                             f'(32x downsampling), got {tuple(x.shape)}.')
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        if self.attnpool is not None:
            outs.append(self.attnpool(x))
        return tuple(outs)

    def extra_repr(self) -> str:
        return (f'layers={self.layers}, width={self.width}, heads='
                f'{self.heads}, output_dim={self.output_dim}, image_size='
                f'{self.image_size}, out_indices={self.out_indices}')
