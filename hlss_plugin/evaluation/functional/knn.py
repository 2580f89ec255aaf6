"""Weighted k-nearest-neighbour class votes with bounded memory.

The classic SSL kNN monitor (Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018,
https://arxiv.org/abs/1805.01978): embeddings are L2-normalised, each query
takes its ``k`` most cosine-similar bank embeddings, and neighbour ``j``
votes for its class with weight ``exp(sim_j / T)``.

Memory: queries are processed in chunks and, for each query chunk, the bank
in chunks, keeping a running top-``k`` that is merged with every new bank
chunk. Nothing of size ``Q × B`` is ever built; by default the chunk sizes
are chosen from a byte budget (:func:`knn_chunk_sizes`, 512 MiB), so the
memory used beyond the inputs and the ``(Q, C)`` output stays under the
budget at any bank size.

Exactness: the result does not depend on the chunk sizes, bit for bit
(tested on the CPU). A BLAS computes products of different shapes with
different summation orders, so similarities are only ever computed by
products of one fixed tile shape (:func:`knn_tiles`, zero-padded at the
edges; chunks smaller than a tile therefore waste work). The running
top-``k`` breaks ties between equal similarities by the lower bank index,
so the neighbour set is well defined, and votes are summed in bank-index
order. (On CUDA, ``scatter_add`` uses atomics, so the last bits of a score
may vary from run to run; the neighbours do not.)
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ...utils.arg_checks import check_int

#: Default memory budget of :func:`knn_scores` beyond its inputs and output.
DEFAULT_MAX_BYTES = 512 * 2**20
#: Largest matmul tile ``(queries, bank rows)`` per device type.
_TILES = {'cpu': (256, 1024), 'cuda': (1024, 4096)}
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
#: Float64 ``exp`` overflows above this exponent.
_MAX_EXP = 700.0

DeviceLike = Union[str, torch.device, None]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def knn_tiles(num_query: int, num_bank: int, dim: int,
              element_size: int = 4, device: DeviceLike = 'cpu',
              max_bytes: int = DEFAULT_MAX_BYTES) -> Tuple[int, int]:
    """The fixed matmul tile ``(tile_q, tile_b)`` of a kNN search.

    Every similarity is computed by a ``(tile_q, D) @ (D, tile_b)`` product
    (zero-padded at the edges), which makes the result independent of the
    chunk sizes. The tile depends only on the problem (``Q``, ``B``, ``D``),
    the device and the budget: the device's largest tile, clipped to ``Q``
    and ``B`` and halved until one tile pair fits in a quarter of the budget.

    Returns:
        tuple[int, int]: ``(tile_q, tile_b)``.
    """
    device = torch.device(device or 'cpu')
    tq, tb = _TILES['cuda' if device.type == 'cuda' else 'cpu']
    tq, tb = max(1, min(tq, num_query)), max(1, min(tb, num_bank))
    while (2 * (tq + tb) * dim + 2 * tq * tb) * element_size \
            > max_bytes // 4 and (tq > 1 or tb > 1):
        if tb >= tq:
            tb = max(1, tb // 2)
        else:
            tq = max(1, tq // 2)
    return tq, tb


def knn_memory_bytes(query_chunk: int, bank_chunk: int, dim: int, k: int,
                     num_query: int, num_bank: int,
                     element_size: int = 4,
                     device: DeviceLike = 'cpu',
                     max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Upper estimate of the bytes :func:`knn_scores` holds at once.

    Counts the padded, normalised query and bank chunks (and their copies
    when moved to ``device``), the similarity block, its selection mask and
    one tile, and the top-``k`` buffers of the merge and the votes. The
    inputs and the ``(Q, C)`` output are not counted.

    Args:
        query_chunk (int): Queries per chunk.
        bank_chunk (int): Bank rows per chunk.
        dim (int): Embedding size ``D``.
        k (int): Neighbours per query.
        num_query (int): ``Q``.
        num_bank (int): ``B``.
        element_size (int): Bytes per similarity (4 for float32).
        device: Where the computation runs.
        max_bytes (int): The budget (it sets the tile, see
            :func:`knn_tiles`).

    Returns:
        int: Bytes.
    """
    tq, tb = knn_tiles(num_query, num_bank, dim, element_size, device,
                       max_bytes)
    q, b, e = query_chunk, bank_chunk, element_size
    qp, bp = _round_up(q, tq), _round_up(b, tb)
    return (2 * qp * dim * e + 2 * bp * dim * e  # chunks: copy + normalise
            + q * b * (e + 2) + tq * tb * e      # similarities, masks, tile
            + q * k * (12 * (e + 8) + 32))       # top-k buffers and merge


def knn_chunk_sizes(num_query: int, num_bank: int, dim: int, k: int,
                    max_bytes: int = DEFAULT_MAX_BYTES,
                    element_size: int = 4,
                    device: DeviceLike = 'cpu') -> Tuple[int, int]:
    """Chunk sizes whose :func:`knn_memory_bytes` fits in ``max_bytes``.

    The bank chunk is up to four matmul tiles (using at most half the
    budget); the query chunk is then as large as the rest allows (a multiple
    of the tile when it is at least one tile).

    Args:
        num_query (int): ``Q``.
        num_bank (int): ``B``.
        dim (int): ``D``.
        k (int): Neighbours per query.
        max_bytes (int): Budget in bytes. Defaults to 512 MiB.
        element_size (int): Bytes per similarity (4 for float32).
        device: Where the computation runs.

    Returns:
        tuple[int, int]: ``(query_chunk, bank_chunk)``, each >= 1.

    Example:
        >>> knn_chunk_sizes(10000, 50000, 2048, 200)
        (6144, 4096)
    """
    tq, tb = knn_tiles(num_query, num_bank, dim, element_size, device,
                       max_bytes)

    def cost(q, b):
        return knn_memory_bytes(q, b, dim, k, num_query, num_bank,
                                element_size, device, max_bytes)

    bank_chunk = min(num_bank, 4 * tb)
    while bank_chunk > tb and cost(1, bank_chunk) > max_bytes // 2:
        bank_chunk = max(tb, (bank_chunk // 2) // tb * tb)
    if cost(1, bank_chunk) > max_bytes:
        return 1, bank_chunk  # D too large for the budget: smallest step
    lo, hi = 1, max(1, num_query)
    while lo < hi:  # largest query chunk that fits
        mid = (lo + hi + 1) // 2
        if cost(mid, bank_chunk) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return (lo if lo < tq else lo // tq * tq), bank_chunk


def _check_inputs(query, bank, bank_labels, num_classes, k, temperature):
    for name, t in (('query', query), ('bank', bank)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 \
                or not t.is_floating_point():
            raise ValueError(
                f'knn_scores: {name} must be a float tensor (N, D), got '
                f'{type(t).__name__} {tuple(getattr(t, "shape", ()))} '
                f'{getattr(t, "dtype", "")}.')
    if query.shape[1] != bank.shape[1]:
        raise ValueError(f'knn_scores: query embeddings have D='
                         f'{query.shape[1]} but the bank has D='
                         f'{bank.shape[1]}; embed both with the same model.')
    if not isinstance(bank_labels, torch.Tensor) or bank_labels.ndim != 1 \
            or bank_labels.dtype not in _INT_DTYPES \
            or bank_labels.shape[0] != bank.shape[0]:
        raise ValueError(
            f'knn_scores: bank_labels must be a 1-D integer tensor with one '
            f'label per bank row ({bank.shape[0]}), got '
            f'{tuple(getattr(bank_labels, "shape", ()))} '
            f'{getattr(bank_labels, "dtype", "")}.')
    check_int('num_classes', num_classes, minimum=1, owner='knn_scores')
    check_int('k', k, minimum=1, owner='knn_scores')
    if not isinstance(temperature, (int, float)) or isinstance(
            temperature, bool) or not temperature > 1.0 / _MAX_EXP \
            or not math.isfinite(temperature):
        raise ValueError(f'knn_scores: temperature must be a finite number '
                         f'> {1.0 / _MAX_EXP:.5f} (exp(1 / T) must fit in '
                         f'float64), got {temperature!r}.')
    if bank.shape[0] == 0:
        raise ValueError('knn_scores: the bank is empty; it needs at least '
                         'k labelled embeddings.')
    if k > bank.shape[0]:
        raise ValueError(
            f'knn_scores: k={k} is larger than the bank ({bank.shape[0]} '
            f'embeddings); lower k to at most {bank.shape[0]} or use a '
            f'larger bank split.')
    if bank_labels.numel() and (int(bank_labels.min()) < 0 or
                                int(bank_labels.max()) >= num_classes):
        raise ValueError(f'knn_scores: bank_labels must lie in [0, '
                         f'{num_classes}); got values from '
                         f'{int(bank_labels.min())} to '
                         f'{int(bank_labels.max())}.')


def _check_chunk(value, name: str) -> None:
    # None: chosen from the memory budget
    check_int(name, value, minimum=1, allow_none=True, owner='knn_scores')


def _normalised_padded(rows: torch.Tensor, rows_padded: int, device,
                       dtype, name: str, start: int) -> torch.Tensor:
    """``rows`` moved to ``device``/``dtype``, L2-normalised, zero-padded."""
    rows = rows.to(device=device, dtype=dtype)
    if not torch.isfinite(rows).all():
        bad = int((~torch.isfinite(rows)).any(1).nonzero()[0]) + start
        raise ValueError(f'knn_scores: {name} row {bad} contains NaN or Inf; '
                         f'check the model outputs.')
    out = rows.new_zeros((rows_padded, rows.shape[1]))
    out[:rows.shape[0]] = F.normalize(rows, dim=1)
    return out


def _similarities(qn: torch.Tensor, bn: torch.Tensor, rows: int, cols: int,
                  tq: int, tb: int) -> torch.Tensor:
    """``(qn @ bn.T)[:rows, :cols]``, computed in ``(tq, D) @ (D, tb)`` tiles
    only (``qn`` and ``bn`` are zero-padded to whole tiles)."""
    sims = qn.new_empty((rows, cols))
    for i in range(0, rows, tq):
        a = qn[i:i + tq]
        for j in range(0, cols, tb):
            tile = a @ bn[j:j + tb].T
            sims[i:i + tq, j:j + tb] = tile[:rows - i, :cols - j]
    return sims


def _exact_topk_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` largest entries per row of ``values`` (``m > k``
    columns); among equal values the lower columns win."""
    kth = values.topk(k, dim=1, sorted=False).values.amin(1, keepdim=True)
    take = values >= kth
    rows = (take.sum(1) > k).nonzero().flatten()
    if rows.numel():  # ties at the k-th value: keep the lowest columns
        v, t = values[rows], kth[rows]
        above, tied = v > t, v == t
        need = k - above.sum(1, keepdim=True)
        take[rows] = above | (tied & (tied.cumsum(1) <= need))
    return take


def _select(values: torch.Tensor, ids: Optional[torch.Tensor], start: int,
            k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each row (ties: lower column), kept in column order.

    Returns the values and their ids: ``ids[row, col]``, or ``start + col``
    when ``ids`` is None.
    """
    q, m = values.shape
    if m <= k:
        cols = torch.arange(m, device=values.device).expand(q, m)
    else:
        cols = _exact_topk_mask(values, k).nonzero()[:, 1].view(q, k)
    picked = values.gather(1, cols)
    if ids is None:
        return picked, cols + start
    return picked, ids.gather(1, cols)


def _merge_topk(top_v: torch.Tensor, top_i: torch.Tensor,
                sims: torch.Tensor, start: int,
                k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``k`` largest of the running top and a new bank chunk.

    The chunk's own top ``k`` is taken first (its columns are bank indices
    ``start + col``), then merged with the running top. Candidates stay in
    ascending bank index (the running top's indices are all below
    ``start``), and among equal similarities the lower index wins, so the
    result does not depend on the chunking.
    """
    chunk_v, chunk_i = _select(sims, None, start, k)
    return _select(torch.cat([top_v, chunk_v], 1),
                   torch.cat([top_i, chunk_i], 1), 0, k)


def knn_scores(query: torch.Tensor,
               bank: torch.Tensor,
               bank_labels: torch.Tensor,
               num_classes: int,
               k: int = 200,
               temperature: float = 0.07,
               query_chunk: Optional[int] = None,
               bank_chunk: Optional[int] = None,
               device: DeviceLike = None,
               max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
    """Weighted kNN class votes of every query against a labelled bank.

    ``score[q, c] = sum over the k bank embeddings b most cosine-similar to
    q with label c of exp(cos(q, b) / temperature)``. Ties in similarity
    are broken by the lower bank index.

    Args:
        query (Tensor): ``(Q, D)`` query embeddings (any float dtype).
        bank (Tensor): ``(B, D)`` bank embeddings.
        bank_labels (Tensor): ``(B,)`` integer labels in ``[0, C)``.
        num_classes (int): ``C``.
        k (int): Neighbours per query, ``1 <= k <= B``. Defaults to 200.
        temperature (float): ``T`` of the vote weights. Defaults to 0.07.
        query_chunk (int, optional): Queries per chunk; None chooses it from
            ``max_bytes`` (:func:`knn_chunk_sizes`).
        bank_chunk (int, optional): Bank rows per chunk; None chooses it
            from ``max_bytes``.
        device (str | torch.device, optional): Where to compute; defaults to
            ``query.device``. Chunks are moved there as needed, so the bank
            may stay on the CPU while the work runs on the GPU.
        max_bytes (int): Memory budget for the automatic chunk sizes (and
            the matmul tile, :func:`knn_tiles`). Defaults to 512 MiB.

    Returns:
        Tensor: ``(Q, C)`` float64 scores on ``device`` (float64 because
        ``exp(sim / T)`` spans many orders of magnitude for small ``T``).

    Raises:
        ValueError: For an empty bank, ``k`` larger than the bank, labels out
            of range, mismatched shapes or non-finite embeddings.

    Example:
        >>> bank = torch.tensor([[1., 0.], [0., 1.], [1., 1.]])
        >>> labels = torch.tensor([0, 1, 1])
        >>> s = knn_scores(torch.tensor([[2., 0.]]), bank, labels, 2, k=2,
        ...                temperature=1.0)
        >>> torch.allclose(s, torch.tensor([[math.e, math.exp(2 ** -0.5)]],
        ...                                dtype=torch.float64))
        True
    """
    _check_inputs(query, bank, bank_labels, num_classes, k, temperature)
    _check_chunk(query_chunk, 'query_chunk')
    _check_chunk(bank_chunk, 'bank_chunk')
    device = torch.device(device) if device is not None else query.device
    dtype = (torch.float64 if query.dtype == bank.dtype == torch.float64
             else torch.float32)
    num_query, dim = query.shape
    num_bank = bank.shape[0]
    scores = torch.zeros((num_query, num_classes), dtype=torch.float64,
                         device=device)
    if num_query == 0:
        return scores
    auto_q, auto_b = knn_chunk_sizes(num_query, num_bank, dim, k, max_bytes,
                                     torch.finfo(dtype).bits // 8, device)
    query_chunk = min(query_chunk or auto_q, num_query)
    bank_chunk = min(bank_chunk or auto_b, num_bank)
    tq, tb = knn_tiles(num_query, num_bank, dim,
                       torch.finfo(dtype).bits // 8, device, max_bytes)
    labels = bank_labels.to(device=device, dtype=torch.int64)

    for qs in range(0, num_query, query_chunk):
        rows = query[qs:qs + query_chunk]
        q = rows.shape[0]
        qn = _normalised_padded(rows, _round_up(q, tq), device, dtype,
                                'query', qs)
        top_v = qn.new_empty((q, 0))
        top_i = torch.empty((q, 0), dtype=torch.int64, device=device)
        for bs in range(0, num_bank, bank_chunk):
            chunk = bank[bs:bs + bank_chunk]
            bn = _normalised_padded(chunk, _round_up(chunk.shape[0], tb),
                                    device, dtype, 'bank', bs)
            sims = _similarities(qn, bn, q, chunk.shape[0], tq, tb)
            del bn
            top_v, top_i = _merge_topk(top_v, top_i, sims, bs, k)
            del sims
        weights = torch.exp(top_v.to(torch.float64) / temperature)
        scores[qs:qs + q].scatter_add_(1, labels[top_i], weights)
    return scores
