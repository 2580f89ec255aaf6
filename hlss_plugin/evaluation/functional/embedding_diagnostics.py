"""Collapse diagnostics of a set of embeddings (plain torch).

Two numbers that fall when a self-supervised encoder collapses (maps
every image to the same point, or to a low-dimensional subspace):

* :func:`normalized_std`: the mean over dimensions of the per-dimension
  standard deviation of the L2-normalised embeddings (Chen & He, "Exploring
  Simple Siamese Representation Learning", CVPR 2021,
  https://arxiv.org/abs/2011.10566, Sec. 4.1). 0 for a complete collapse;
  about ``1 / sqrt(D)`` for zero-mean isotropic embeddings of size ``D``.
* :func:`effective_rank`: ``exp`` of the Shannon entropy of the singular
  values normalised to sum to 1 (Roy & Vetterli, "The effective rank: a
  measure of effective dimensionality", EUSIPCO 2007). 1 for a complete
  collapse, ``r`` for ``r`` equal non-zero singular values, at most
  ``min(N, D)``; computed on the raw (uncentred) embeddings as in RankMe
  (Garrido et al., ICML 2023, https://arxiv.org/abs/2210.02885), or
  centred with ``center=True``.

:func:`embedding_diagnostics` returns both (and the centred rank) as one
dict, what ``KNNCurveHook`` and ``tools/benchmarks/benchmark.py`` record.
"""
import math
from typing import Dict

import torch

__all__ = ['normalized_std', 'effective_rank', 'embedding_diagnostics']


def _check_feats(feats, owner: str) -> torch.Tensor:
    if not isinstance(feats, torch.Tensor):
        feats = torch.as_tensor(feats)
    if feats.dim() != 2 or feats.shape[0] < 1 or feats.shape[1] < 1:
        raise ValueError(f'{owner}: embeddings must be a 2-D (N, D) tensor '
                         f'with N, D >= 1, got shape {tuple(feats.shape)}; '
                         f'stack one row per sample.')
    feats = feats.detach().to('cpu', torch.float64)
    if not torch.isfinite(feats).all():
        raise ValueError(f'{owner}: the embeddings contain NaN or inf; the '
                         f'model diverged (check the losses and the learning '
                         f'rate).')
    return feats


def normalized_std(feats: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean per-dimension std of the L2-normalised embeddings.

    Each row is divided by its L2 norm (rows of norm < ``eps`` stay 0); the
    population standard deviation (``ddof=0``) of every dimension over the
    rows is averaged over the ``D`` dimensions.

    Args:
        feats (Tensor): ``(N, D)`` embeddings.
        eps (float): Smallest norm that is divided by. Defaults to 1e-12.

    Returns:
        float: In ``[0, 1]``; 0 when every row points the same way,
        about ``1 / sqrt(D)`` for zero-mean isotropic Gaussian rows.

    Raises:
        ValueError: For a tensor that is not ``(N, D)`` or not finite.

    Example:
        >>> round(normalized_std(torch.ones(5, 4)), 6)
        0.0
        >>> x = torch.randn(20000, 64)
        >>> abs(normalized_std(x) - 64 ** -0.5) < 0.005
        True
    """
    x = _check_feats(feats, 'normalized_std')
    norms = x.norm(dim=1, keepdim=True)
    x = torch.where(norms > eps, x / norms.clamp_min(eps),
                    torch.zeros_like(x))
    return float(x.std(dim=0, unbiased=False).mean())


def effective_rank(feats: torch.Tensor, center: bool = False) -> float:
    """Effective rank of the ``(N, D)`` embedding matrix (Roy & Vetterli).

    ``p_i = s_i / sum_j s_j`` over the singular values ``s`` of the matrix
    (of ``feats - mean`` with ``center=True``), and the result is
    ``exp(-sum_i p_i log p_i)`` (terms with ``p_i = 0`` count 0). The
    singular values come from the eigenvalues of the smaller Gram matrix in
    float64, so ``N`` may be large; eigenvalues below
    ``max(N, D) * eps * ||feats||_F^2`` (float64 ``eps``: the Gram route's
    round-off) count as 0, i.e. singular values below about ``1e-7`` of
    the matrix norm, whose share of the entropy is negligible.

    Args:
        feats (Tensor): ``(N, D)`` embeddings.
        center (bool): Subtract the mean row first. Post-ReLU features
            (ResNet global average pooling) share a large mean direction
            that the uncentred rank counts as one dimension of its own.
            Defaults to False (RankMe's convention: a collapse to one point
            gives 1).

    Returns:
        float: In ``[1, min(N, D)]``; 0.0 when nothing is left above the
        round-off (an all-zero matrix, or a collapse to one point with
        ``center=True``).

    Raises:
        ValueError: For a tensor that is not ``(N, D)`` or not finite.

    Example:
        >>> round(effective_rank(torch.ones(10, 8)), 6)  # one direction
        1.0
        >>> round(effective_rank(torch.eye(6)[:, :4].T), 6)  # s = 1,1,1,1
        4.0
    """
    x = _check_feats(feats, 'effective_rank')
    # round-off scale: the squared norm of the matrix as given
    tol = (max(x.shape) * torch.finfo(torch.float64).eps
           * float((x * x).sum()))
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    eig = torch.linalg.eigvalsh(gram)
    s = eig[eig > tol].sqrt()
    if s.numel() == 0:
        return 0.0
    p = s / s.sum()
    return float(math.exp(float(-(p * p.log()).sum())))


def embedding_diagnostics(feats: torch.Tensor) -> Dict[str, float]:
    """Collapse diagnostics of ``(N, D)`` embeddings in one dict.

    Args:
        feats (Tensor): ``(N, D)`` embeddings.

    Returns:
        dict: ``std`` (:func:`normalized_std`), ``std_reference``
        (``1 / sqrt(D)``, the value of isotropic embeddings),
        ``effective_rank`` (:func:`effective_rank`, uncentred),
        ``effective_rank_centered`` (``center=True``), ``dim`` (``D``) and
        ``samples`` (``N``).

    Raises:
        ValueError: For a tensor that is not ``(N, D)`` or not finite.

    Example:
        >>> d = embedding_diagnostics(torch.eye(3))
        >>> round(d['effective_rank'], 6), d['dim'], d['samples']
        (3.0, 3, 3)
    """
    x = _check_feats(feats, 'embedding_diagnostics')
    return dict(std=normalized_std(x),
                std_reference=1.0 / math.sqrt(x.shape[1]),
                effective_rank=effective_rank(x),
                effective_rank_centered=effective_rank(x, center=True),
                dim=int(x.shape[1]), samples=int(x.shape[0]))
