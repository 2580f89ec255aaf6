"""Scoring of attribute similarities: center crop, per-group means, top-k
lists, how many items get a distinct top-k set, precision@k and its chance
level.

Plain functions on tensors and lists, used by
:class:`~hlss_plugin.interpret.attribute_explainer.AttributeExplainer` and
:func:`~hlss_plugin.interpret.explain_driver.explain`.
"""
from typing import (Any, Collection, Dict, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch

from ..datasets.transforms.center_crop_tensor import center_crop_box
from ..datasets.transforms.size_pair import size_pair


def center_crop(img: torch.Tensor, size: Union[int, Sequence[int]]
                ) -> torch.Tensor:
    """Central ``size`` window of the last two dimensions, by the rule of
    the evaluation pipeline's
    :class:`~hlss_plugin.datasets.transforms.CenterCropTensor`
    (:func:`~hlss_plugin.datasets.transforms.center_crop_box`), so an
    explained patch is the patch the kNN evaluation sees, to the pixel.

    The offsets are ``round((H - h) / 2)`` and ``round((W - w) / 2)``
    (Python's round, half to even), as in
    ``torchvision.transforms.functional.center_crop``.

    Args:
        img (Tensor): ``(..., H, W)``.
        size (int | tuple[int, int]): Output ``h`` (= ``w`` for an int) or
            ``(h, w)``; must not exceed ``(H, W)``.

    Returns:
        Tensor: ``(..., h, w)``, a view of ``img``.

    Raises:
        ValueError: If ``size`` is not an int or ``(h, w)`` pair of ints
            >= 1, or the image is smaller than ``size``.

    Example:
        >>> center_crop(torch.arange(16.).reshape(4, 4), 2)
        tensor([[ 5.,  6.],
                [ 9., 10.]])
    """
    h, w = size_pair(size, 'center_crop')
    height, width = img.shape[-2:]
    if h > height or w > width:
        raise ValueError(f'center_crop: a {height}x{width} image is smaller '
                         f'than the {h}x{w} crop; use a smaller view size.')
    top, left, h, w = center_crop_box(height, width, (h, w))
    return img[..., top:top + h, left:left + w]


def aggregate_by_group(scores: torch.Tensor, groups: Sequence
                       ) -> Tuple[list, torch.Tensor]:
    """Mean of ``scores`` rows per group, groups in first-seen order.

    Args:
        scores (Tensor): ``(N, A)``.
        groups (Sequence): ``N`` hashable group keys (slide or patient ids).

    Returns:
        tuple[list, Tensor]: The ``G`` distinct keys and their ``(G, A)``
        mean scores.

    Example:
        >>> keys, means = aggregate_by_group(torch.tensor([[1., 0.],
        ...     [3., 2.], [5., 5.]]), ['a', 'a', 'b'])
        >>> keys, means.tolist()
        (['a', 'b'], [[2.0, 1.0], [5.0, 5.0]])
    """
    if scores.dim() != 2 or scores.shape[0] != len(groups):
        raise ValueError(f'aggregate_by_group: expected scores (N, A) with '
                         f'N = {len(groups)} groups entries, got '
                         f'{tuple(scores.shape)}.')
    index: Dict[Any, int] = {}
    codes = torch.tensor([index.setdefault(g, len(index)) for g in groups],
                         dtype=torch.long)
    sums = torch.zeros(len(index), scores.shape[1], dtype=scores.dtype)
    sums.index_add_(0, codes, scores)
    counts = torch.bincount(codes, minlength=len(index)).to(scores.dtype)
    return list(index), sums / counts[:, None]


def top_k_attributes(scores: torch.Tensor, names: Sequence[str],
                     k: int) -> List[List[Tuple[str, float]]]:
    """The ``k`` highest-scoring attributes of every row.

    Ties keep the attribute order (stable sort).

    Args:
        scores (Tensor): ``(G, A)`` similarities.
        names (Sequence[str]): The ``A`` attribute names.
        k (int): ``1 <= k <= A``.

    Returns:
        list[list[tuple[str, float]]]: Per row, ``k`` ``(name, score)``
        pairs, best first.

    Example:
        >>> top_k_attributes(torch.tensor([[0.1, 0.7, 0.3]]), 'abc', 2)
        [[('b', 0.7...), ('c', 0.3...)]]
    """
    if scores.dim() != 2 or scores.shape[1] != len(names):
        raise ValueError(f'top_k_attributes: scores {tuple(scores.shape)} do '
                         f'not match {len(names)} attribute names.')
    if not 1 <= k <= len(names):
        raise ValueError(f'top_k_attributes: k={k} must be in [1, '
                         f'{len(names)}].')
    values = scores.detach().cpu().double().numpy()
    order = np.argsort(-values, axis=1, kind='stable')[:, :k]
    return [[(names[a], float(row[a])) for a in ranks]
            for row, ranks in zip(values, order)]


def precision_at_k(top: Sequence[Sequence[str]],
                   truth: Sequence[Optional[Collection[str]]],
                   k: int) -> Tuple[Optional[float], int]:
    """Mean of ``|top-k ∩ truth| / k`` over items with a non-empty truth.

    Args:
        top (Sequence[Sequence[str]]): Per item, its ranked attribute names
            (only the first ``k`` count).
        truth (Sequence[Collection[str] | None]): Per item, the ground-truth
            names; items whose set is empty or None are left out.
        k (int): Cut-off, >= 1.

    Returns:
        tuple[float | None, int]: Precision@k (None when no item counts)
        and the number of items that counted.

    Example:
        >>> precision_at_k([['a', 'b'], ['c', 'd'], ['e', 'f']],
        ...                [{'a', 'x'}, {'c', 'd'}, set()], k=2)
        (0.75, 2)
    """
    if len(top) != len(truth):
        raise ValueError(f'precision_at_k: {len(top)} ranked lists for '
                         f'{len(truth)} ground-truth sets.')
    if k < 1:
        raise ValueError(f'precision_at_k: k must be >= 1, got {k}.')
    hits = [len(set(t[:k]) & set(g)) / k for t, g in zip(top, truth) if g]
    return (float(np.mean(hits)) if hits else None), len(hits)


def chance_precision(truth: Sequence[Optional[Collection[str]]],
                     names: Sequence[str]) -> Optional[float]:
    """Expected precision@k of a uniformly random ranking (any ``k``):
    mean over items with a non-empty truth of ``|truth| / A``.

    Args:
        truth (Sequence[Collection[str] | None]): Per item, the ground-truth
            names; empty or None items are left out, names outside
            ``names`` do not count.
        names (Sequence[str]): The ``A`` attribute names of the level.

    Returns:
        float | None: The chance level, None when no item has a truth.

    Example:
        >>> chance_precision([{'a'}, {'a', 'b'}, set()], 'abcd')
        0.375
    """
    rates = [len(set(g) & set(names)) / len(names) for g in truth if g]
    return float(np.mean(rates)) if rates else None


def distinct_top_k(tops: Mapping[str, Sequence[Sequence[str]]]) -> dict:
    """How item-specific each model's top-k lists are.

    Args:
        tops (Mapping[str, Sequence[Sequence[str]]]): Per model name, the
            top-k names of every item (the same items for every model).

    Returns:
        dict: Per model name the number of distinct top-k *sets*; ``items``
        (the number of items); ``fraction`` (per model, distinct sets /
        items; ``1 / items`` means the ranking ignores the image) and
        ``at_least_half`` (per model, fraction >= 0.5).

    Raises:
        ValueError: Models with different numbers of items.

    Example:
        >>> d = distinct_top_k({'trained': [['a', 'b'], ['b', 'a'],
        ...                                 ['c', 'a']]})
        >>> d['trained'], d['items'], d['at_least_half']['trained']
        (2, 3, True)
    """
    sizes = {len(lists) for lists in tops.values()}
    if len(sizes) > 1:
        sizes_by_model = {name: len(v) for name, v in tops.items()}
        raise ValueError(f'distinct_top_k: the models rank different '
                         f'numbers of items ({sizes_by_model}).')
    num = sizes.pop() if sizes else 0
    counts = {name: len({frozenset(t) for t in lists})
              for name, lists in tops.items()}
    fraction = {name: c / num if num else None for name, c in counts.items()}
    return dict(counts, items=num, fraction=fraction,
                at_least_half={name: f is not None and f >= 0.5
                               for name, f in fraction.items()})
