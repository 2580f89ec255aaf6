"""One hierarchy level's text-initialised projection head and its losses."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...utils.arg_checks import check_int


@MODELS.register_module()
class HierarchicalTextAlignedHead(BaseModule):
    """Projection head of one HLSS level whose rows are attribute embeddings.

    ``features (N, C)`` → *bridge* → L2-normalised ``z (N, D)`` in the text
    tower's space → *attribute projection* ``s = W z`` with ``W (A', D)``.
    The first ``A`` rows of ``W`` are the level's attribute text embeddings
    (unit norm, bias 0), so at initialisation ``s[:, a]`` is the cosine
    similarity to attribute ``a``; extra rows (``num_outputs > A``) start
    random. ``W`` is trainable unless ``trainable=False``.

    The bridge is the identity when the visual and text towers share a space
    (``C == D``, e.g. CLIP RN50: the published HLSS head is exactly
    ``Linear(1024 -> 128)`` with text rows on the normalised image
    embedding). Otherwise (e.g. ResNet-50 + MiniLM) a single ``Linear(C, D)``
    maps the image into the text space, so the text rows keep their meaning
    as directions of that space. ``bridge_hidden`` builds an MLP
    (Linear-BN-ReLU-Linear) instead; a randomly initialised MLP scrambles
    the text space (at initialisation a text embedding fed through it picks
    its own row about as often as chance), so no shipped config uses it.

    Losses (built from config; either may be ``None``):

    - ``hvc_loss`` (HVC, e.g. :class:`HierarchicalSupConLoss`) on the view
      embeddings ``s`` with the level's group ids.
    - ``ha_loss`` (HA, :class:`HierarchicalAlignmentLoss`) between ``z`` and
      the **fixed** attribute text embeddings (the ``text_embeddings``
      buffer): each view is pulled towards the text embedding of its nearest
      attribute, a target no trainable weight can move.

    Args:
        text_embeddings (Tensor): ``(A, D)`` attribute embeddings (rows are
            re-normalised). Kept as a buffer, so checkpoints carry the
            level's attribute space without the text model.
        in_channels (int): Visual feature size ``C``.
        attribute_names (Sequence[str], optional): Names of the ``A``
            attributes, for explanations.
        num_outputs (int, optional): Output size ``A' >= A``. Defaults to
            ``A``.
        trainable (bool): Whether ``W`` is trained. Defaults to True.
        center_text (bool): Subtract the mean of the level's ``A``
            attribute embeddings before normalising them (rows and HA
            target alike). Sentence encoders put all attributes of a domain
            in a narrow cone (MiniLM, SRH patch level: mean pairwise cosine
            0.46, effective rank 15 of 128), so the head's outputs share one
            dominant direction; centring keeps what distinguishes the
            attributes. Defaults to False (as published; at the CPU
            benchmark preset centring lowered slide / patient kNN accuracy
            by 3-5 points, see docs/benchmark.md).
        bridge_hidden (int, optional): Hidden size of an MLP bridge
            (Linear-BN-ReLU-Linear); ``None`` (default) uses no bridge when
            ``C == D`` and a single Linear otherwise.
        hvc_loss (dict, optional): HVC loss config.
        ha_loss (dict, optional): HA loss config.
        level (str): Level name, used in loss names and errors.
        init_cfg (dict, optional): Init config of the bridge.

    Example:
        >>> text = F.normalize(torch.randn(5, 16), dim=1)
        >>> head = HierarchicalTextAlignedHead(text, in_channels=32,
        ...     hvc_loss=dict(type='HierarchicalSupConLoss'), ha_loss=None)
        >>> losses = head.loss(torch.randn(4, 2, 32), torch.tensor([0, 0, 1, 1]))
        >>> sorted(losses)
        ['hvc']
    """

    def __init__(self,
                 text_embeddings: torch.Tensor,
                 in_channels: int,
                 attribute_names=None,
                 num_outputs: Optional[int] = None,
                 trainable: bool = True,
                 center_text: bool = False,
                 bridge_hidden: Optional[int] = None,
                 hvc_loss: Optional[dict] = dict(
                     type='HierarchicalSupConLoss', temperature=0.07),
                 ha_loss: Optional[dict] = dict(
                     type='HierarchicalAlignmentLoss'),
                 level: str = 'patch',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        text = torch.as_tensor(text_embeddings, dtype=torch.float32)
        if text.dim() != 2 or text.shape[0] < 1:
            raise ValueError(f'{level} head: text_embeddings must be (A, D) '
                             f'with A >= 1 attributes, got '
                             f'{tuple(text.shape)}. Check the level\'s '
                             f'attribute file.')
        num_attr, dim = text.shape
        num_outputs = num_attr if num_outputs is None else int(num_outputs)
        if num_outputs < num_attr:
            raise ValueError(f'{level} head: num_outputs={num_outputs} is '
                             f'smaller than the {num_attr} attributes; use '
                             f'>= {num_attr} or None.')
        check_int('in_channels', in_channels, minimum=1,
                  owner=f'{level} head')
        if attribute_names is not None and len(attribute_names) != num_attr:
            raise ValueError(f'{level} head: {len(attribute_names)} '
                             f'attribute_names for {num_attr} embeddings.')
        self.level = level
        self.attribute_names = list(attribute_names or [])
        self.num_attributes = num_attr
        text = F.normalize(text, dim=1)
        if center_text:
            if num_attr < 2:
                raise ValueError(f'{level} head: center_text=True needs at '
                                 f'least 2 attributes, got {num_attr}.')
            text = F.normalize(text - text.mean(dim=0, keepdim=True), dim=1)
        self.center_text = bool(center_text)
        self.register_buffer('text_embeddings', text)

        if bridge_hidden:
            self.bridge = nn.Sequential(
                nn.Linear(in_channels, bridge_hidden, bias=False),
                nn.BatchNorm1d(bridge_hidden), nn.ReLU(inplace=True),
                nn.Linear(bridge_hidden, dim))
        elif in_channels != dim:
            self.bridge = nn.Linear(in_channels, dim)
        else:
            self.bridge = nn.Identity()

        self.attribute_proj = nn.Linear(dim, num_outputs)
        with torch.no_grad():
            weight = torch.randn(num_outputs, dim)
            weight[:num_attr] = self.text_embeddings
            self.attribute_proj.weight.copy_(F.normalize(weight, dim=1))
            self.attribute_proj.bias.zero_()
        self.attribute_proj.requires_grad_(trainable)
        self.trainable = trainable
        self.hvc_loss = MODELS.build(hvc_loss) if hvc_loss else None
        self.ha_loss = MODELS.build(ha_loss) if ha_loss else None
        if self.hvc_loss is None and self.ha_loss is None:
            raise ValueError(f'{level} head: both hvc_loss and ha_loss are '
                             f'None; give at least one loss.')

    def init_weights(self):
        """Initialise the bridge only; the text rows must survive."""
        proj = {k: v.clone() for k, v in
                self.attribute_proj.state_dict().items()}
        super().init_weights()
        self.attribute_proj.load_state_dict(proj)

    def forward(self, feats: torch.Tensor) -> Tuple[torch.Tensor,
                                                    torch.Tensor]:
        """Project visual features.

        Args:
            feats (Tensor): ``(N, C)``.

        Returns:
            tuple[Tensor, Tensor]: ``z`` ``(N, D)`` (unit norm, text space)
            and ``s`` ``(N, A')`` (attribute similarities).
        """
        z = F.normalize(self.bridge(feats), dim=1)
        return z, self.attribute_proj(z)

    def loss(self, feats: torch.Tensor,
             ids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """HVC and HA losses of this level.

        Args:
            feats (Tensor): ``(N, V, C)`` features of ``V`` views per patch.
            ids (Tensor): ``(N,)`` int64 group id of each patch at this level
                (patch / slide / patient id).

        Returns:
            dict[str, Tensor]: ``'hvc'`` and/or ``'ha'`` scalar losses.
        """
        if feats.dim() != 3:
            raise ValueError(f'{self.level} head: expected features (N, V, '
                             f'C), got {tuple(feats.shape)}.')
        n, v, c = feats.shape
        z, s = self(feats.reshape(n * v, c))
        losses = {}
        if self.hvc_loss is not None:
            losses['hvc'] = self.hvc_loss(s.reshape(n, v, -1), ids)
        if self.ha_loss is not None:
            losses['ha'] = self.ha_loss(z.reshape(n, v, -1),
                                        self.text_embeddings)
        return losses
