"""Patch scores → slide / patient scores, and the classification metrics
reported at every level of the patient → slide → patch hierarchy.

Used by :class:`~hlss_plugin.evaluation.metrics.HierarchicalKNNMetric` on kNN
votes and usable as is on any per-patch class scores (e.g. the softmax of a
linear probe). All functions are plain torch on any device; the metrics are
returned as Python numbers.

Conventions:

* ``scores`` are **non-negative** ``(N, C)`` class scores (kNN votes,
  probabilities). Rankings use the score value; equal scores rank the lower
  class index first (as ``argmax`` does).
* Percentages: ``acc``, ``topK``, ``mca`` and ``map`` are in ``[0, 100]``;
  ``confusion`` holds counts (rows: true class, columns: predicted class).
* ``mca`` (mean class accuracy, i.e. balanced accuracy) and ``map`` (macro
  average precision) average over the classes **present in the labels**, so
  a class with no sample at a level neither helps nor hurts.
* ``aggregation`` (:data:`AGGREGATIONS`) says how a patch's scores become
  the probabilities that patch metrics rank and slides / patients sum
  (:func:`patch_probabilities`): ``'sum'`` L1-normalises them, and
  ``'published'`` applies a softmax to the L1-normalised scores, as the
  HiDisc / HLSS evaluation code does.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch

from ...utils.arg_checks import check_int

LEVELS = ('patch', 'slide', 'patient')
#: Legal values of ``aggregation`` (see :func:`patch_probabilities`).
AGGREGATIONS = ('sum', 'published')
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


# ----------------------------------------------------------------- checks
def _check_scores(scores: torch.Tensor, name: str = 'scores') -> None:
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 \
            or not scores.is_floating_point():
        raise ValueError(
            f'{name} must be a float tensor of shape (N, C), got '
            f'{type(scores).__name__} {tuple(getattr(scores, "shape", ()))} '
            f'{getattr(scores, "dtype", "")}.')
    if scores.numel() and not torch.isfinite(scores).all():
        raise ValueError(f'{name} contains NaN or Inf; check the embeddings '
                         f'or the model that produced them.')
    if scores.numel() and bool((scores < 0).any()):
        raise ValueError(f'{name} must be non-negative (kNN votes or '
                         f'probabilities); apply softmax to logits first.')


def _check_ids(ids: torch.Tensor, n: Optional[int], name: str) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype not in _INT_DTYPES \
            or ids.ndim != 1:
        raise ValueError(f'{name} must be a 1-D integer tensor, got '
                         f'{type(ids).__name__} '
                         f'{tuple(getattr(ids, "shape", ()))} '
                         f'{getattr(ids, "dtype", "")}.')
    if n is not None and ids.shape[0] != n:
        raise ValueError(f'{name} has {ids.shape[0]} entries but scores have '
                         f'{n} rows; pass one id per row.')


def _check_topk(topk: Sequence[int]) -> Tuple[int, ...]:
    topk = tuple(topk)
    if not topk or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                       for k in topk):
        raise ValueError(f'topk must be a non-empty sequence of ints >= 1, '
                         f'e.g. (1, 2, 3); got {topk!r}.')
    return topk


def check_aggregation(aggregation: str) -> str:
    """Return ``aggregation`` if it is one of :data:`AGGREGATIONS`.

    Raises:
        ValueError: Naming the legal values otherwise.
    """
    if not isinstance(aggregation, str) or aggregation not in AGGREGATIONS:
        raise ValueError(f'aggregation must be one of {AGGREGATIONS}, got '
                         f'{aggregation!r}.')
    return aggregation


def topk_key(k: int) -> str:
    """Metric name of top-``k`` accuracy: ``'acc'`` for 1, else ``'topK'``."""
    return 'acc' if k == 1 else f'top{k}'


def metric_keys(topk: Sequence[int] = (1, 2, 3)) -> Tuple[str, ...]:
    """Scalar keys of :func:`classification_metrics`, in report order.

    Example:
        >>> metric_keys((1, 2, 3))
        ('acc', 'top2', 'top3', 'mca', 'map')
    """
    keys = ['acc'] + [topk_key(k) for k in _check_topk(topk) if k != 1]
    return tuple(dict.fromkeys(keys)) + ('mca', 'map')


# -------------------------------------------------------------- aggregation
def patch_probabilities(scores: torch.Tensor,
                        aggregation: str = 'sum') -> torch.Tensor:
    """Per-patch class probabilities from non-negative patch scores.

    * ``'sum'``: ``p = s / sum(s)`` (L1 normalisation; an all-zero row stays
      zero). Summing ``p`` over a slide is a vote with equal weight per
      patch.
    * ``'published'``: ``softmax(s / sum(s))``, as in the kNN evaluation of
      HiDisc (Jiang et al., CVPR 2023, https://arxiv.org/abs/2303.01605;
      code https://github.com/MLNeurosurg/hidisc,
      ``hidisc/train/eval_knn.py``) and HLSS (Watawana et al., 2024,
      https://arxiv.org/abs/2403.14616; code
      https://github.com/Hasindri/HLSS, ``hlss/eval_knn_hlss.py``): the kNN
      votes are L1-normalised, then a softmax is taken over these values in
      ``[0, 1]``. It is much flatter than the L1 scores (at most
      ``e / (e + C - 1)`` for a one-class patch), so a confident patch
      weighs less against many hesitant ones than under ``'sum'``, and
      slide / patient predictions can differ (see the example). Row-wise
      order is unchanged, so patch ``acc``, ``topK`` and ``mca`` are the
      same in both modes; patch ``map`` is not.

    Args:
        scores (Tensor): ``(N, C)`` non-negative patch scores (kNN votes).
        aggregation (str): One of :data:`AGGREGATIONS`. Defaults to
            ``'sum'``.

    Returns:
        Tensor: ``(N, C)`` rows summing to 1 (or 0 for an all-zero row under
        ``'sum'``), the dtype of ``scores``.

    Example:
        >>> s = torch.tensor([[0., 0., 1.], [4., 5., 0.], [4., 5., 0.]])
        >>> patch_probabilities(s, 'sum').sum(0)  # slide votes for class 1
        tensor([0.8889, 1.1111, 1.0000])
        >>> patch_probabilities(s, 'published').sum(0)  # ... for class 2
        tensor([0.9369, 1.0221, 1.0410])
    """
    check_aggregation(aggregation)
    _check_scores(scores)
    probs = torch.nn.functional.normalize(scores, p=1, dim=1)
    if aggregation == 'published':
        probs = torch.softmax(probs, dim=1)
    return probs


def aggregate_scores(scores: torch.Tensor,
                     groups: torch.Tensor,
                     aggregation: str = 'sum'
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Slide / patient scores from patch scores.

    Each patch's scores become probabilities (:func:`patch_probabilities`:
    L1-normalised for ``'sum'``, softmax of the L1-normalised scores for
    ``'published'``), which are summed over the patches of its group; the
    sums are L1-normalised again (a group of patches votes with equal
    weight per patch; the published code also L1-normalises the sums).

    Args:
        scores (Tensor): ``(N, C)`` non-negative patch scores.
        groups (Tensor): ``(N,)`` integer group id of every patch (slide or
            patient id); ids need not be contiguous.
        aggregation (str): One of :data:`AGGREGATIONS`. Defaults to
            ``'sum'``.

    Returns:
        tuple[Tensor, Tensor]: ``(G, C)`` group scores (rows sum to 1, or 0
        for a group whose patches all scored 0) and the ``(G,)`` group ids,
        sorted ascending, row ``g`` belonging to ``ids[g]``.

    Example:
        >>> s = torch.tensor([[3., 1.], [0., 2.], [1., 1.]])
        >>> agg, ids = aggregate_scores(s, torch.tensor([7, 7, 2]))
        >>> ids, agg
        (tensor([2, 7]), tensor([[0.5000, 0.5000],
                [0.3750, 0.6250]]))
    """
    per_patch = patch_probabilities(scores, aggregation)
    _check_ids(groups, scores.shape[0], 'groups')
    ids, inverse = torch.unique(groups, sorted=True, return_inverse=True)
    summed = scores.new_zeros((ids.shape[0], scores.shape[1]))
    summed.index_add_(0, inverse.to(scores.device), per_patch)
    return torch.nn.functional.normalize(summed, p=1, dim=1), ids


def group_labels(labels: torch.Tensor, groups: torch.Tensor,
                 level: str = 'group') -> Tuple[torch.Tensor, torch.Tensor]:
    """The label of every group, checking that no group mixes labels.

    Args:
        labels (Tensor): ``(N,)`` integer patch labels.
        groups (Tensor): ``(N,)`` integer group ids.
        level (str): Name used in the error (``'slide'``, ``'patient'``).

    Returns:
        tuple[Tensor, Tensor]: ``(G,)`` labels and ``(G,)`` sorted group ids
        (the same order as :func:`aggregate_scores`).

    Raises:
        ValueError: If the patches of a group carry different labels.
    """
    _check_ids(labels, None, 'labels')
    _check_ids(groups, labels.shape[0], f'{level} ids')
    ids, inverse = torch.unique(groups, sorted=True, return_inverse=True)
    labels = labels.to(torch.int64)
    lo = torch.full((ids.shape[0], ), torch.iinfo(torch.int64).max,
                    dtype=torch.int64, device=labels.device)
    hi = torch.full_like(lo, torch.iinfo(torch.int64).min)
    lo.scatter_reduce_(0, inverse, labels, reduce='amin')
    hi.scatter_reduce_(0, inverse, labels, reduce='amax')
    mixed = (lo != hi).nonzero().flatten()
    if mixed.numel():
        g = int(mixed[0])
        found = sorted(set(labels[inverse == g].tolist()))
        raise ValueError(
            f'{level} {int(ids[g])} mixes labels {found} '
            f'({mixed.numel()} {level}(s) affected); every patch of a '
            f'{level} must have its patient\'s class. Check the dataset '
            f'metadata, or that the {level} ids are unique across patients.')
    return lo, ids


# ------------------------------------------------------------------ metrics
def _ranks(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """0-based rank of the true class per row (ties: lower index first)."""
    true = scores.gather(1, labels.view(-1, 1))
    cols = torch.arange(scores.shape[1], device=scores.device).view(1, -1)
    ahead = (scores > true) | ((scores == true) & (cols < labels.view(-1, 1)))
    return ahead.sum(1)


def average_precision(target: torch.Tensor, score: torch.Tensor) -> float:
    """Average precision of one class, ``sum_n (R_n - R_{n-1}) P_n``.

    The step-wise (non-interpolated) definition of scikit-learn's
    ``average_precision_score``: thresholds are the distinct score values
    (equal scores enter together).

    Args:
        target (Tensor): ``(N,)`` bool, True for positives (at least one).
        score (Tensor): ``(N,)`` scores, higher = more likely positive.

    Returns:
        float: AP in ``[0, 1]``.

    Example:
        >>> average_precision(torch.tensor([True, False, True]),
        ...                   torch.tensor([0.9, 0.8, 0.1]))
        0.8333333333333333
    """
    order = torch.argsort(score, descending=True, stable=True)
    s = score[order]
    hit = target[order].to(torch.float64)
    last = torch.cat([(s[1:] != s[:-1]).nonzero().flatten(),
                      torch.tensor([s.shape[0] - 1], device=s.device)])
    tps = hit.cumsum(0)[last]
    precision = tps / (last + 1).to(torch.float64)
    recall = tps / tps[-1]
    step = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((step * precision).sum())


def classification_metrics(scores: torch.Tensor,
                           labels: torch.Tensor,
                           num_classes: int,
                           topk: Sequence[int] = (1, 2, 3)) -> Dict:
    """Accuracy, top-k accuracy, mean class accuracy, mAP and confusion.

    Args:
        scores (Tensor): ``(N, C)`` non-negative class scores, ``N >= 1``.
        labels (Tensor): ``(N,)`` integer true classes in ``[0, C)``.
        num_classes (int): ``C``.
        topk (Sequence[int]): Top-k accuracies to report; ``1`` is ``acc``
            (always reported), others ``topK``. ``k >= C`` gives 100.
            Defaults to ``(1, 2, 3)``.

    Returns:
        dict: ``acc``, ``top2``, ``top3`` (per ``topk``), ``mca`` (mean of
        the per-class recall over classes present in ``labels``), ``map``
        (mean over those classes of the average precision of their score
        column), all in percent, and ``confusion`` (``C × C`` list of int,
        rows true, columns predicted = ``argmax``).

    Example:
        >>> m = classification_metrics(torch.tensor([[.9, .1], [.6, .4]]),
        ...                            torch.tensor([0, 1]), 2)
        >>> m['acc'], m['mca'], m['top2'], m['confusion']
        (50.0, 50.0, 100.0, [[1, 0], [1, 0]])
    """
    _check_scores(scores)
    _check_ids(labels, scores.shape[0], 'labels')
    check_int('num_classes', num_classes, minimum=1)
    if scores.shape[1] != num_classes:
        raise ValueError(f'scores have {scores.shape[1]} columns but '
                         f'num_classes={num_classes}.')
    if scores.shape[0] == 0:
        raise ValueError('classification_metrics needs at least one sample; '
                         'got 0 rows.')
    labels = labels.to(device=scores.device, dtype=torch.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f'labels must lie in [0, {num_classes}); got '
                         f'values from {int(labels.min())} to '
                         f'{int(labels.max())}.')
    topk = _check_topk(topk)

    ranks = _ranks(scores, labels)
    out = {'acc': 100.0 * float((ranks == 0).double().mean())}
    for k in topk:
        out[topk_key(k)] = 100.0 * float((ranks < k).double().mean())

    pred = scores.argmax(1)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64,
                            device=scores.device)
    confusion.index_add_(0, labels * num_classes + pred,
                         torch.ones_like(labels))
    confusion = confusion.view(num_classes, num_classes)
    present = (confusion.sum(1) > 0).nonzero().flatten().tolist()
    recall = confusion.diagonal().double() / confusion.sum(1).clamp_min(1)
    out['mca'] = 100.0 * float(recall[present].mean())
    out['map'] = 100.0 * sum(
        average_precision(labels == c, scores[:, c]) for c in present
    ) / len(present)
    out['confusion'] = confusion.tolist()
    return out


def hierarchical_metrics(scores: torch.Tensor,
                         labels: torch.Tensor,
                         slide_ids: torch.Tensor,
                         patient_ids: torch.Tensor,
                         num_classes: int,
                         topk: Sequence[int] = (1, 2, 3),
                         levels: Sequence[str] = LEVELS,
                         aggregation: str = 'sum'
                         ) -> Dict[str, Dict]:
    """:func:`classification_metrics` at the patch, slide and patient level.

    Patch-level scores are :func:`patch_probabilities` (this only affects
    ``map``, which ranks samples by a class's score; the published code
    reports the same softmax probabilities at patch level); slide and
    patient scores come from :func:`aggregate_scores` with the same
    ``aggregation``, and a group's label is the label of its patches.

    Args:
        scores (Tensor): ``(N, C)`` non-negative patch scores.
        labels (Tensor): ``(N,)`` integer patch labels.
        slide_ids (Tensor): ``(N,)`` integer slide id of every patch.
        patient_ids (Tensor): ``(N,)`` integer patient id of every patch.
        num_classes (int): ``C``.
        topk (Sequence[int]): See :func:`classification_metrics`.
        levels (Sequence[str]): Levels to compute, a subset of
            ``('patch', 'slide', 'patient')``.
        aggregation (str): One of :data:`AGGREGATIONS`, see
            :func:`patch_probabilities`. Defaults to ``'sum'``.

    Returns:
        dict: ``{level: classification_metrics(...)}`` for every level.

    Raises:
        ValueError: If a slide or patient mixes labels, or on malformed input.

    Example:
        >>> s = torch.tensor([[.8, .2], [.4, .6], [.1, .9]])
        >>> m = hierarchical_metrics(s, torch.tensor([0, 0, 1]),
        ...     torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), 2)
        >>> m['patch']['acc'], m['slide']['acc']
        (66.66666666666666, 100.0)
    """
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown or not levels:
        raise ValueError(f'levels must be a non-empty subset of {LEVELS}, '
                         f'got {tuple(levels)!r}.')
    check_aggregation(aggregation)
    _check_scores(scores)
    n = scores.shape[0]
    _check_ids(labels, n, 'labels')
    _check_ids(slide_ids, n, 'slide_ids')
    _check_ids(patient_ids, n, 'patient_ids')
    results = {}
    for level in levels:
        if level == 'patch':
            level_scores = patch_probabilities(scores, aggregation)
            level_labels = labels
        else:
            ids = slide_ids if level == 'slide' else patient_ids
            level_scores, _ = aggregate_scores(scores, ids, aggregation)
            level_labels, _ = group_labels(labels, ids, level)
        results[level] = classification_metrics(level_scores, level_labels,
                                                num_classes, topk)
    return results
