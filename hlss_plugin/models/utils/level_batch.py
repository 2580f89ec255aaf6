"""Checks shared by the hierarchical algorithms (HLSS, HiDisc, wrapper)."""
from typing import Dict, List, Sequence

import torch
from mmpretrain.structures import DataSample

from .hierarchy_ids import hierarchy_ids


def views_and_level_ids(owner: str, inputs, data_samples: List[DataSample],
                        id_keys: Dict[str, str],
                        levels: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Check that ``inputs`` holds >= 2 views; return each level's ids.

    Args:
        owner (str): Model name used in error messages.
        inputs (list[Tensor]): ``V`` views, each ``(N, C, H, W)``.
        data_samples (list[DataSample]): ``N`` samples with the id fields.
        id_keys (dict): ``{level: data-sample field}``.
        levels (Sequence[str]): Levels whose ids are needed.

    Returns:
        dict[str, Tensor]: ``{level: (N,) int64}`` on the views' device.

    Raises:
        ValueError: If ``inputs`` is not a list of at least 2 views, or an
            id field is missing (from :func:`hierarchy_ids`).

    Example:
        >>> s = [DataSample(metainfo=dict(sample_idx=i)) for i in range(2)]
        >>> views_and_level_ids('HLSS', [torch.zeros(2, 3, 8, 8)] * 2, s,
        ...                     dict(patch='sample_idx'), ['patch'])
        {'patch': tensor([0, 1])}
    """
    if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
        raise ValueError(f'{owner} needs >= 2 views per patch: use '
                         f'MultiView(num_views=2, ...) in the pipeline '
                         f'(inputs should be a list of V tensors).')
    return hierarchy_ids(data_samples, {lv: id_keys[lv] for lv in levels},
                         device=inputs[0].device)


def check_finite_loss(owner: str, level: str, term: str,
                      value: torch.Tensor) -> torch.Tensor:
    """Return ``value``; raise when it is NaN or infinite.

    Raises:
        FloatingPointError: Naming the model, level and term, with what to
            try.

    Example:
        >>> check_finite_loss('HLSS', 'slide', 'hvc', torch.tensor(1.5))
        tensor(1.5000)
    """
    if not torch.isfinite(value).all():
        raise FloatingPointError(
            f'{owner}: the {level}-level {term} loss is {value}. Lower the '
            f'learning rate, check the inputs for NaN/Inf, or use fp32.')
    return value
