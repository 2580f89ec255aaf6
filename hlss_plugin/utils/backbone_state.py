"""Find a backbone inside any of our training checkpoints and load it
strictly (shared by ``BackboneEmbedder`` and the ``HLSSPretrained``
initializer)."""
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .checkpoint import listing as _listing
from .checkpoint import read_state_dict, state_dict_diff, strip_prefix

#: Where our training checkpoints keep the backbone, tried in this order when
#: no prefix is given: every algorithm (HLSS, HiDisc, MMPretrain's SimCLR,
#: MoCo v3, BYOL, ...) has it under ``backbone.``, ``HLSSAuxWrapper`` under
#: ``algorithm.backbone.``; ``module.`` is what a DDP-wrapped save adds.
BACKBONE_PREFIXES = ('backbone.', 'algorithm.backbone.', 'module.backbone.',
                     'module.algorithm.backbone.')
_LIST_LIMIT = 8


def listing(items: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    """``'a, b, c ... (N in all)'``: at most ``limit`` items, for messages
    (:func:`~hlss_plugin.utils.checkpoint.listing`, 8 by default)."""
    return _listing(items, limit)


def found_prefixes(keys: Sequence[str]) -> List[str]:
    """Key prefixes worth suggesting: first components, and everything up
    to a ``backbone.`` component (e.g. ``student.backbone.``).

    Example:
        >>> found_prefixes(['student.backbone.conv1.weight', 'neck.fc.w'])
        ['neck.', 'student.', 'student.backbone.']
    """
    found = set()
    for key in keys:
        parts = key.split('.')
        if len(parts) > 1:
            found.add(parts[0] + '.')
        if 'backbone' in parts[:-1]:
            cut = parts.index('backbone') + 1
            found.add('.'.join(parts[:cut]) + '.')
    return sorted(found)


def select_prefix(state: Dict[str, torch.Tensor],
                  prefix: Optional[str] = None,
                  source: str = 'the checkpoint',
                  owner: str = 'BackboneEmbedder',
                  allow_bare: bool = False) -> str:
    """Find the key prefix under which ``state`` holds the backbone.

    Args:
        state (dict[str, Tensor]): A state dict.
        prefix (str, optional): None to try :data:`BACKBONE_PREFIXES` in
            order, or an explicit prefix used as given (``''``: the whole
            dict is the backbone). Defaults to None.
        source (str): Name of the checkpoint, for messages.
        owner (str): Name put before messages (the caller).
        allow_bare (bool): With ``prefix=None``, fall back to ``''`` (a
            plain backbone state dict, e.g. ``visual.pth`` of
            ``tools/model_converters/convert_clip_rn50.py``) when no known
            prefix matches, leaving the strict key check to decide.
            Defaults to False (no match is an error).

    Returns:
        str: The prefix to strip.

    Raises:
        ValueError: When no (or, when detecting, more than one differing)
            backbone is found; the message lists the prefixes present.

    Example:
        >>> select_prefix({'algorithm.backbone.conv1.weight': torch.ones(1),
        ...                'algorithm.neck.fc.weight': torch.ones(1)})
        'algorithm.backbone.'
    """
    keys = list(state)
    if prefix is not None:
        if any(k.startswith(prefix) for k in keys):
            return prefix
        raise ValueError(
            f'{owner}: {source} has no key starting with '
            f'prefix={prefix!r}; prefixes found: '
            f'{listing(found_prefixes(keys))}. Pass one of them as prefix, '
            f'or leave prefix at its default to detect it.')
    matches = [p for p in BACKBONE_PREFIXES
               if any(k.startswith(p) for k in keys)]
    if not matches:
        if allow_bare:
            return ''
        raise ValueError(
            f'{owner}: {source} has no backbone under '
            f'{", ".join(repr(p) for p in BACKBONE_PREFIXES)}; prefixes '
            f'found: {listing(found_prefixes(keys))}. Pass the right one '
            f'explicitly, e.g. prefix="student.backbone." (prefix="" for a '
            f'bare backbone state dict).')
    first = strip_prefix(state, matches[0])
    for other in matches[1:]:
        weights = strip_prefix(state, other)
        if set(weights) != set(first) or any(
                not torch.equal(weights[k], first[k]) for k in first):
            raise ValueError(
                f'{owner}: {source} holds different backbones '
                f'under {matches}; pass the one to use explicitly, e.g. '
                f'prefix={matches[0]!r}.')
    return matches[0]


def load_backbone_state(module: nn.Module,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        owner: str = 'BackboneEmbedder',
                        allow_bare: bool = False) -> str:
    """Load the backbone weights of ``checkpoint`` into ``module`` strictly.

    The file is read with ``torch.load(weights_only=True)``
    (:func:`~hlss_plugin.utils.checkpoint.read_state_dict`), the prefix is
    found by :func:`select_prefix`, and every key and shape must match
    ``module.state_dict()`` before anything is copied.

    Args:
        module (nn.Module): The backbone to fill.
        checkpoint (str): Checkpoint path (mmengine's
            ``{'state_dict': ...}`` or a plain ``{name: tensor}`` file).
        prefix (str, optional): See :func:`select_prefix`.
        owner (str): Name put before messages (the caller).
        allow_bare (bool): See :func:`select_prefix`.

    Returns:
        str: The prefix the weights were found under (``''``: plain).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If the file is not weights-only readable, holds no
            backbone, or its keys or shapes do not match ``module``; the
            message names the file, the prefixes tried and examples of the
            differing keys.

    Example:
        >>> backbone = MODELS.build(dict(type='ResNet', depth=18))
        >>> load_backbone_state(backbone, 'work_dirs/simclr/epoch_10.pth')
        'backbone.'
    """
    state = read_state_dict(checkpoint, owner=owner)
    used = select_prefix(state, prefix, source=f'checkpoint {checkpoint}',
                         owner=owner, allow_bare=allow_bare)
    weights = strip_prefix(state, used)
    missing, unexpected, shape_diff = state_dict_diff(
        module.state_dict(), weights, optional_extra_state=False)
    shapes = [f'{k} (checkpoint {got}, model {want})'
              for k, got, want in shape_diff]
    if missing or unexpected or shapes:
        parts = [f'{name}: {listing(keys)}' for name, keys in (
            ('missing keys', missing), ('unexpected keys', unexpected),
            ('shape mismatch', shapes)) if keys]
        known = ', '.join(repr(p) for p in BACKBONE_PREFIXES)
        if prefix is not None:
            tried = f'prefix {used!r} as given'
        elif used:
            tried = f'prefix {used!r} detected among {known}'
        else:
            tried = (f'none of {known} matched, so the whole file was tried '
                     f'as a plain backbone state dict')
        found = listing([repr(p) for p in found_prefixes(list(state))])
        raise ValueError(
            f'{owner}: the backbone under {used!r} in {checkpoint} does not '
            f'match {type(module).__name__} ({"; ".join(parts)}); {tried}; '
            f'prefixes found in the file: {found or "none"}. Give the '
            f'backbone config the checkpoint was trained with (e.g. the same '
            f'ResNet depth), or pass the backbone\'s prefix explicitly '
            f'(prefix=...).')
    module.load_state_dict(weights, strict=True)
    return used
