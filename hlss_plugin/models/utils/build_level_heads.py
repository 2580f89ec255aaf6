"""Build HLSS's text-initialised level heads from a ``heads`` config."""
from typing import Dict, Optional, Tuple

import torch
from mmpretrain.registry import MODELS

from ...text import load_attributes

DEFAULT_ID_KEYS = dict(patch='sample_idx', slide='slide_idx',
                       patient='patient_idx')


def resolve_id_keys(levels, id_keys: Optional[Dict[str, str]] = None,
                    owner: str = 'HLSS') -> Dict[str, str]:
    """Data-sample field of each level: :data:`DEFAULT_ID_KEYS` + overrides.

    Args:
        levels (Iterable[str]): The levels that need an id.
        id_keys (dict, optional): ``{level: field}`` overriding or extending
            the defaults.
        owner (str): Model name used in error messages.

    Returns:
        dict[str, str]: ``{level: field}`` for every known level.

    Raises:
        ValueError: If a level has no field.

    Example:
        >>> resolve_id_keys(['slide'], dict(slide='slide_id'))['slide']
        'slide_id'
    """
    keys = dict(DEFAULT_ID_KEYS)
    keys.update(id_keys or {})
    unknown = [lv for lv in levels if lv not in keys]
    if unknown:
        raise ValueError(f'{owner}: no id key for level(s) {unknown}; add '
                         f'them to id_keys (known: {keys}).')
    return keys


def build_level_heads(heads: Dict[str, dict], text_tower: dict,
                      in_channels: int,
                      owner: str = 'HLSS') -> torch.nn.ModuleDict:
    """One :class:`HierarchicalTextAlignedHead` per level, text-initialised.

    The frozen text tower is built once, embeds each level's attributes and
    is dropped: only the embeddings (buffers of the heads) remain, so the
    tower is never trained, moved or checkpointed.

    Args:
        heads (dict): ``{level: head config}`` in level order; each config
            is a head config (``type`` defaults to
            ``'HierarchicalTextAlignedHead'``) plus ``attributes`` (``'srh'``,
            ``'he'`` or a JSON path) whose ``level`` entry initialises it.
            The configs are not modified.
        text_tower (dict): Text tower config, e.g.
            ``dict(type='HFSentenceTextTower')``.
        in_channels (int): Visual feature size ``C`` fed to the heads.
        owner (str): Model name used in error messages.

    Returns:
        torch.nn.ModuleDict: ``{level: head}`` in the order of ``heads``.

    Raises:
        ValueError: If ``heads`` is empty, a level has no ``attributes`` or
            its attribute source lacks the level.

    Example:
        >>> heads = build_level_heads(
        ...     dict(patch=dict(attributes='srh')),
        ...     dict(type='HFSentenceTextTower'), in_channels=512)
        >>> len(heads['patch'].attribute_names) > 0
        True
    """
    if not heads:
        raise ValueError(f'{owner} needs at least one level in heads, e.g. '
                         f'heads=dict(patch=dict(attributes="srh")).')
    tower = MODELS.build(text_tower)
    built = torch.nn.ModuleDict()
    for level, cfg in heads.items():
        cfg = dict(cfg)
        source = cfg.pop('attributes', None)
        if source is None:
            raise ValueError(f'{owner} heads["{level}"] needs "attributes" '
                             f'(\'srh\', \'he\' or a JSON file path).')
        attributes = load_attributes(source)
        if level not in attributes:
            raise ValueError(f'{owner} heads["{level}"]: attribute source '
                             f'{source!r} has no level {level!r} (it has '
                             f'{sorted(attributes)}).')
        text = tower.embed_attributes(attributes[level])
        cfg.setdefault('type', 'HierarchicalTextAlignedHead')
        built[level] = MODELS.build(cfg, default_args=dict(
            text_embeddings=text, in_channels=in_channels,
            attribute_names=list(attributes[level]), level=level))
    return built


def level_heads_and_ids(heads: Dict[str, dict], text_tower: dict,
                        in_channels: int,
                        id_keys: Optional[Dict[str, str]] = None,
                        owner: str = 'HLSS'
                        ) -> Tuple[torch.nn.ModuleDict, Dict[str, str]]:
    """:func:`build_level_heads` after checking every level has an id key.

    Args:
        heads, text_tower, in_channels, owner: See :func:`build_level_heads`.
        id_keys (dict, optional): See :func:`resolve_id_keys`.

    Returns:
        tuple[ModuleDict, dict]: The heads and the resolved id keys.

    Example:
        >>> heads, keys = level_heads_and_ids(
        ...     dict(slide=dict(attributes='srh')),
        ...     dict(type='HFSentenceTextTower'), 512)
        >>> keys['slide']
        'slide_idx'
    """
    keys = resolve_id_keys(heads, id_keys, owner)
    return build_level_heads(heads, text_tower, in_channels, owner), keys
