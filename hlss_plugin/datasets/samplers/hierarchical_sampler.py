"""Patient → slide → patch index sampler for hierarchical batches."""
import warnings
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

_UINT64 = (1 << 64) - 1


def _is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _positive_int(value, name: str) -> int:
    """Return ``value`` as ``int``; raise a ``ValueError`` naming ``name``."""
    if not _is_int(value) or value < 1:
        raise ValueError(f'HierarchicalSampler: `{name}` must be a positive '
                         f'integer, got {value!r}; set `{name}=1` or more in '
                         f'the sampler config.')
    return int(value)


def _draw(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """Draw ``k`` members of ``pool``, distinct where the pool allows.

    If the pool holds at least ``k`` members they are drawn without
    replacement; otherwise every member is taken once (in random order)
    followed by ``k - len(pool)`` uniform random repeats.

    Args:
        rng (np.random.Generator): Random source.
        pool (np.ndarray): ``(n,)`` candidates, ``n >= 1``.
        k (int): How many to draw.

    Returns:
        np.ndarray: ``(k,)`` drawn members.
    """
    if len(pool) >= k:
        return rng.choice(pool, size=k, replace=False)
    return np.concatenate([
        rng.permutation(pool),
        rng.choice(pool, size=k - len(pool), replace=True)
    ])


class _CyclingQueue:
    """Endless stream of a patient pool, reshuffled at every pass.

    On refill, members already taken for the batch being built are moved to
    the back of the fresh pass, so a batch repeats a patient only when the
    class has fewer patients than the batch needs.
    """

    def __init__(self, pool: np.ndarray, rng: np.random.Generator):
        self.pool = pool
        self.rng = rng
        self.pending: List[int] = []  # next item is at the end

    def pop(self, avoid: Sequence[int]) -> int:
        if not self.pending:
            order = self.rng.permutation(self.pool).tolist()
            avoid = set(avoid)
            order = ([p for p in order if p not in avoid] +
                     [p for p in order if p in avoid])
            self.pending = order[::-1]
        return self.pending.pop()


@DATA_SAMPLERS.register_module()
class HierarchicalSampler(Sampler):
    """Sample patients, then slides, then patches, in fixed-size chunks.

    The sampler yields single dataset indices (so it plugs into a plain
    ``DataLoader(batch_size=..., sampler=...)``) organised in consecutive
    chunks of ``batch_size = P * S * K`` indices, one chunk per batch. A chunk
    is patient-major::

        [p0/s0/k0 .. p0/s0/k(K-1), p0/s1/k0 .. p0/s(S-1)/k(K-1), p1/s0/k0, ...]

    i.e. the index at position ``(p * S + s) * K + k`` of a chunk is patch
    ``k`` of slide ``s`` of patient ``p``. The ``DataLoader`` batch size must
    therefore equal :attr:`batch_size` (see :meth:`check_batch_size`).

    Within a chunk the P patients are distinct (for ``class_balanced=True``,
    unless a class holds fewer patients on this rank than its share of the
    batch). A patient's S slides are distinct when it has at least S slides;
    otherwise all its slides are taken once, followed by uniform random
    repeats. The same rule draws K patches of each slide.

    Every epoch (see :meth:`set_epoch`) draws a new stream that depends only
    on ``(seed, epoch, rank)``:

    1. The patients are shuffled with a generator shared by all ranks and
       partitioned across ranks stratified by class: every rank receives
       ``floor`` or ``ceil`` of ``n_c / world_size`` patients of each class
       ``c`` and partition sizes differ by at most one. Ranks therefore see
       **disjoint** patients within an epoch.
    2. Every rank yields ``num_batches = num_patients // (P * world_size)``
       chunks (the same on all ranks) built only from its own partition:

       - ``class_balanced=False``: the partition is shuffled and its first
         ``num_batches * P`` patients are used once each; the rest wait for a
         later epoch's reshuffle.
       - ``class_balanced=True``: the ``num_batches * P`` patient slots are
         assigned to the classes held by the rank round-robin (in a shuffled
         class order), so every class gets the same number of slots over the
         epoch (within one) and every chunk holds a class mix whose counts
         differ by at most one. Each class fills its slots from a shuffled
         queue of the rank's patients of that class, reshuffled whenever it
         runs out (small classes are oversampled, large ones subsampled).
         A class with fewer patients than ``world_size`` is absent on some
         ranks; those ranks balance over the classes they hold.

    Patients without any slide with patches are never drawn (with a
    warning).

    Args:
        dataset: A dataset with ``get_hierarchy()`` returning a
            :class:`~hlss_plugin.datasets.hierarchy.Hierarchy` whose item
            indices are the dataset indices.
        patients_per_batch (int): P, patients per chunk on each rank.
        slides_per_patient (int): S, slides per patient.
        patches_per_slide (int): K, patches per slide.
        class_balanced (bool): Balance patient classes over the epoch and
            within every chunk (see above). Defaults to False.
        seed (int, optional): Seed shared by all ranks. ``None`` draws one
            with :func:`mmengine.dist.sync_random_seed`. Defaults to None.
        rank (int, optional): This process's rank. ``None`` uses
            :func:`mmengine.dist.get_dist_info`. Defaults to None.
        world_size (int, optional): Number of ranks. ``None`` uses
            :func:`mmengine.dist.get_dist_info`. Defaults to None.

    Raises:
        ValueError: If an argument is invalid, the dataset has no
            ``get_hierarchy``, or it has fewer than
            ``patients_per_batch * world_size`` usable patients.

    Example:
        >>> from hlss_plugin.datasets.hierarchy import Hierarchy
        >>> class Toy:
        ...     # 4 patients (labels 0, 0, 1, 1) x 2 slides x 3 patches
        ...     h = Hierarchy.from_items(
        ...         item_patient=[i // 6 for i in range(24)],
        ...         item_slide=[i // 3 for i in range(24)],
        ...         patient_labels=[0, 0, 1, 1],
        ...         patient_names=tuple('abcd'),
        ...         slide_names=tuple(f'{p}/{s}' for p in 'abcd'
        ...                           for s in (1, 2)))
        ...     def get_hierarchy(self):
        ...         return self.h
        ...     def __len__(self):
        ...         return 24
        >>> sampler = HierarchicalSampler(
        ...     Toy(), patients_per_batch=2, slides_per_patient=1,
        ...     patches_per_slide=2, class_balanced=True, seed=0,
        ...     rank=0, world_size=1)
        >>> sampler.batch_size, sampler.num_batches, len(sampler)
        (4, 2, 8)
        >>> # First chunk: 2 patches of one slide of a patient, then 2
        >>> # patches of one slide of another patient of the other class.
        >>> chunk, h = list(sampler)[:4], Toy.h
        >>> slides = h.item_slide[chunk]
        >>> bool(slides[0] == slides[1] and slides[2] == slides[3])
        True
        >>> sorted(h.patient_labels[h.slide_patient[slides[::2]]].tolist())
        [0, 1]
    """

    def __init__(self,
                 dataset,
                 patients_per_batch: int,
                 slides_per_patient: int,
                 patches_per_slide: int,
                 class_balanced: bool = False,
                 seed: Optional[int] = None,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        self.patients_per_batch = _positive_int(patients_per_batch,
                                                'patients_per_batch')
        self.slides_per_patient = _positive_int(slides_per_patient,
                                                'slides_per_patient')
        self.patches_per_slide = _positive_int(patches_per_slide,
                                               'patches_per_slide')
        self.class_balanced = bool(class_balanced)

        dist_rank, dist_world_size = get_dist_info()
        self.world_size = _positive_int(
            dist_world_size if world_size is None else world_size,
            'world_size')
        self.rank = dist_rank if rank is None else rank
        if not _is_int(self.rank) or not 0 <= self.rank < self.world_size:
            raise ValueError(f'HierarchicalSampler: `rank` must be an integer '
                             f'in [0, world_size={self.world_size}), got '
                             f'{self.rank!r}; leave `rank` and `world_size` '
                             f'unset to take them from mmengine.dist.')
        self.rank = int(self.rank)
        if seed is None:
            seed = sync_random_seed()
        if not _is_int(seed):
            raise ValueError(f'HierarchicalSampler: `seed` must be an integer '
                             f'or None, got {seed!r}.')
        self.seed = int(seed)
        self.epoch = 0

        get_hierarchy = getattr(dataset, 'get_hierarchy', None)
        if not callable(get_hierarchy):
            raise ValueError(
                f'HierarchicalSampler needs a dataset with a '
                f'`get_hierarchy()` method returning a '
                f'hlss_plugin.datasets.hierarchy.Hierarchy, '
                f'but {type(dataset).__name__} has none; use a hierarchical '
                f'dataset (e.g. OpenSRHDataset) or add `get_hierarchy()`.')
        self.dataset = dataset
        self.hierarchy = get_hierarchy()
        h = self.hierarchy
        if hasattr(dataset, '__len__') and len(dataset) != h.num_items:
            raise ValueError(
                f'HierarchicalSampler: {type(dataset).__name__} has '
                f'{len(dataset)} items but its hierarchy indexes '
                f'{h.num_items}; get_hierarchy() must describe exactly the '
                f'dataset items.')

        # Usable slides (with patches) of every patient; patients without
        # any are never drawn.
        self._slides: Dict[int, np.ndarray] = {}
        for p in range(h.num_patients):
            slides = np.asarray(h.slides_of(p), dtype=np.int64)
            slides = slides[np.array(
                [len(h.patches_of(s)) > 0 for s in slides], dtype=bool)]
            if len(slides):
                self._slides[p] = slides
        self._patients = np.array(sorted(self._slides), dtype=np.int64)
        if len(self._patients) < h.num_patients:
            warnings.warn(
                f'HierarchicalSampler: {h.num_patients - len(self._patients)}'
                f' of {h.num_patients} patients have no patches and are '
                f'never sampled.')
        self._labels = h.patient_labels[self._patients]
        self._classes = np.unique(self._labels)

        num_patients = len(self._patients)
        per_step = self.patients_per_batch * self.world_size
        self.num_batches = num_patients // per_step
        if self.num_batches == 0:
            fix = (f'lower `patients_per_batch` to at most '
                   f'{num_patients // self.world_size} or train on fewer GPUs'
                   if num_patients >= self.world_size else
                   f'train on at most {num_patients} GPUs')
            raise ValueError(
                f'HierarchicalSampler: the dataset has {num_patients} '
                f'patients with patches but every step needs '
                f'patients_per_batch x world_size = '
                f'{self.patients_per_batch} x {self.world_size} = {per_step} '
                f'distinct patients; {fix}.')
        if self.class_balanced and self.world_size > 1:
            small = [
                int(c) for c in self._classes
                if np.sum(self._labels == c) < self.world_size
            ]
            if small:
                warnings.warn(
                    f'HierarchicalSampler: classes {small} have fewer '
                    f'patients than world_size={self.world_size}, so some '
                    f'ranks never see them; class balance then holds only '
                    f'over the classes each rank holds.')

    # ----------------------------------------------------------------- API
    @property
    def batch_size(self) -> int:
        """int: Indices per chunk, ``P * S * K``; the DataLoader batch size."""
        return (self.patients_per_batch * self.slides_per_patient *
                self.patches_per_slide)

    def check_batch_size(self,
                         batch_size: int,
                         where: str = 'train_dataloader.batch_size') -> None:
        """Raise unless ``batch_size`` matches the sampler's chunk size.

        Args:
            batch_size (int): The DataLoader's batch size.
            where (str): Config key to name in the message.
                Defaults to ``'train_dataloader.batch_size'``.

        Raises:
            ValueError: If ``batch_size != self.batch_size``.
        """
        if batch_size != self.batch_size:
            raise ValueError(
                f'{where} is {batch_size} but HierarchicalSampler yields '
                f'chunks of patients_per_batch x slides_per_patient x '
                f'patches_per_slide indices; set {where} = '
                f'{self.patients_per_batch}*{self.slides_per_patient}*'
                f'{self.patches_per_slide} = {self.batch_size}.')

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose stream :meth:`__iter__` yields.

        Args:
            epoch (int): Epoch number (non-negative).
        """
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f'HierarchicalSampler.set_epoch: `epoch` must be '
                             f'a non-negative integer, got {epoch!r}.')
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """int: Indices per epoch on this rank: num_batches * batch_size."""
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's dataset indices for the current epoch."""
        return iter(self._epoch_indices().tolist())

    # ------------------------------------------------------------ internals
    def _entropy(self, *extra: int) -> List[int]:
        return [self.seed & _UINT64, self.epoch, *extra]

    def _rank_partition(self) -> np.ndarray:
        """This rank's patients for the epoch, ``(n_rank,)`` int64.

        The shuffle uses a generator shared by all ranks: patients of each
        class are shuffled and laid out class after class, then dealt to
        ranks round-robin from a random offset.
        """
        rng = np.random.default_rng(self._entropy(0))
        laid_out = np.concatenate([
            rng.permutation(self._patients[self._labels == c])
            for c in self._classes
        ])
        offset = int(rng.integers(self.world_size))
        owner = (np.arange(len(laid_out)) + offset) % self.world_size
        return laid_out[owner == self.rank]

    def _patient_slots(self, mine: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
        """Patients of this rank's ``num_batches * P`` slots, in order."""
        P = self.patients_per_batch
        n_slots = self.num_batches * P
        if not self.class_balanced:
            return rng.permutation(mine)[:n_slots]
        labels = self.hierarchy.patient_labels[mine]
        classes = rng.permutation(np.unique(labels))
        queues = [_CyclingQueue(mine[labels == c], rng) for c in classes]
        slot_class = np.arange(n_slots) % len(classes)
        slots = np.empty(n_slots, dtype=np.int64)
        for b in range(self.num_batches):
            taken: List[List[int]] = [[] for _ in classes]
            for j in range(b * P, (b + 1) * P):
                c = slot_class[j]
                slots[j] = queues[c].pop(taken[c])
                taken[c].append(int(slots[j]))
            # Keep each batch's patient order random, not class-periodic.
            slots[b * P:(b + 1) * P] = rng.permutation(slots[b * P:(b + 1) *
                                                             P])
        return slots

    def _epoch_indices(self) -> np.ndarray:
        """This rank's stream for the epoch, ``(len(self),)`` int64."""
        h = self.hierarchy
        rng = np.random.default_rng(self._entropy(1, self.rank))
        patients = self._patient_slots(self._rank_partition(), rng)
        out = np.empty(
            (len(patients), self.slides_per_patient, self.patches_per_slide),
            dtype=np.int64)
        for i, p in enumerate(patients):
            slides = _draw(rng, self._slides[int(p)], self.slides_per_patient)
            for j, s in enumerate(slides):
                out[i, j] = _draw(rng, np.asarray(h.patches_of(int(s))),
                                  self.patches_per_slide)
        return out.reshape(-1)
