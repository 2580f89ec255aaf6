"""Item-specific attribute rankings: similarities relative to a reference
bank.

A head's raw similarities to its named attributes carry a large offset per
attribute that is common to every image (some text embeddings sit close to
the whole image-embedding cloud), so ranking raw similarities gives nearly
the same top-k to every patch, slide and patient. The ``'relative'``
ranking removes it: each attribute's similarity is standardised with the
mean and standard deviation of that attribute over a reference bank of
patches (the training split), i.e. a z-score per attribute,

.. math::

    r_{ia} = \\frac{s_{ia} - \\mu_a}{\\max(\\sigma_a, \\epsilon)}, \\qquad
    \\mu_a = \\frac{1}{M}\\sum_{m=1}^{M} b_{ma}, \\qquad
    \\sigma_a = \\sqrt{\\frac{1}{M}\\sum_{m=1}^{M} (b_{ma} - \\mu_a)^2},

where ``s`` (``(N, A)``) are the query patches' similarities and ``b``
(``(M, A)``) those of the bank's patches to the same head (population
standard deviation, :data:`EPS` guards attributes that do not vary). The
statistics come from the bank only, never from the items being explained,
so one patch alone can be explained. A slide or patient scores the mean of
its patches' ``r`` (= the z-score of its mean similarity). ``'raw'`` keeps
the similarities ``s`` as they are.
"""
from typing import Optional, Tuple

import numpy as np
import torch

#: Rankings understood by :func:`rank_scores` (first: the default).
RANKINGS = ('relative', 'raw')
#: Lower bound of the reference standard deviation in :func:`rank_scores`.
EPS = 1e-6

Stats = Tuple[torch.Tensor, torch.Tensor]


def check_ranking(ranking: str) -> str:
    """``ranking`` if it is one of :data:`RANKINGS`.

    Raises:
        ValueError: Any other value (names the legal ones).

    Example:
        >>> check_ranking('raw')
        'raw'
    """
    if ranking not in RANKINGS:
        raise ValueError(f'ranking must be one of {RANKINGS}, got '
                         f'{ranking!r}.')
    return ranking


def reference_statistics(bank: torch.Tensor) -> Stats:
    """Per-attribute mean and population standard deviation of a bank.

    Args:
        bank (Tensor): ``(M, A)`` similarities of ``M >= 2`` reference
            patches to the ``A`` attributes of one head.

    Returns:
        tuple[Tensor, Tensor]: ``(mean, std)``, each ``(A,)`` float64.

    Raises:
        ValueError: If ``bank`` is not 2-D or has fewer than 2 rows.

    Example:
        >>> mean, std = reference_statistics(torch.tensor([[1., 0.],
        ...                                                [3., 0.]]))
        >>> mean.tolist(), std.tolist()
        ([2.0, 0.0], [1.0, 0.0])
    """
    if bank.dim() != 2 or bank.shape[0] < 2:
        raise ValueError(f'reference_statistics: expected a bank of '
                         f'similarities (M, A) with M >= 2 patches, got '
                         f'{tuple(bank.shape)}.')
    bank = bank.detach().cpu().double()
    return bank.mean(0), bank.std(0, unbiased=False)


def rank_scores(scores: torch.Tensor, ranking: str = 'relative',
                stats: Optional[Stats] = None) -> torch.Tensor:
    """The values an attribute ranking sorts by.

    Args:
        scores (Tensor): ``(N, A)`` similarities of query patches (or of
            items whose rows are patch means).
        ranking (str): ``'relative'`` (z-score per attribute against
            ``stats``, see the module docstring) or ``'raw'`` (``scores``
            unchanged). Defaults to ``'relative'``.
        stats (tuple[Tensor, Tensor], optional): ``(mean, std)`` of the
            reference bank (:func:`reference_statistics`); required for
            ``'relative'``, ignored for ``'raw'``.

    Returns:
        Tensor: ``(N, A)`` float64 ranking scores.

    Raises:
        ValueError: Unknown ranking, missing statistics, or statistics of
            another number of attributes.

    Example:
        >>> bank = torch.tensor([[1., 0.], [3., 2.]])  # mean 2, 1; std 1, 1
        >>> rank_scores(torch.tensor([[2., 3.]]), 'relative',
        ...             reference_statistics(bank)).tolist()
        [[0.0, 2.0]]
    """
    check_ranking(ranking)
    scores = scores.detach().cpu().double()
    if ranking == 'raw':
        return scores
    if stats is None:
        raise ValueError('rank_scores: ranking="relative" needs the '
                         'reference statistics (reference_statistics(bank));'
                         ' or use ranking="raw".')
    mean, std = (torch.as_tensor(np.asarray(t), dtype=torch.float64)
                 for t in stats)
    if scores.dim() != 2 or mean.shape != (scores.shape[1], ) \
            or std.shape != mean.shape:
        raise ValueError(f'rank_scores: scores {tuple(scores.shape)} do not '
                         f'match reference statistics of shape '
                         f'{tuple(mean.shape)} / {tuple(std.shape)}.')
    return (scores - mean) / std.clamp_min(EPS)
