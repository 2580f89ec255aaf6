"""Patient → slide → patch index sampler for hierarchical batches."""
import math
import warnings
from collections import deque
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

_UINT64 = (1 << 64) - 1
BATCH_SCOPES = ('global', 'per_gpu')
CLASS_BALANCE_MODES = ('resample', 'replicate')


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


def _balance_mode(class_balanced) -> Union[bool, str]:
    """Normalise ``class_balanced`` to ``False``, 'resample' or 'replicate'."""
    if isinstance(class_balanced, (bool, np.bool_)):
        return 'resample' if class_balanced else False
    if isinstance(class_balanced, str) and \
            class_balanced in CLASS_BALANCE_MODES:
        return class_balanced
    raise ValueError(
        f'HierarchicalSampler: `class_balanced` must be False, True (= '
        f"'resample'), 'resample' or 'replicate', got {class_balanced!r}.")


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

    On refill, members already taken for the step being built are moved to
    the back of the fresh pass, so a step repeats a patient only when it
    takes more members than the pool holds (which the caller prevents).
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

    The sampler yields single dataset indices organised in consecutive chunks
    of :attr:`batch_size` ``= P_rank * S * K`` indices, one chunk per batch
    and training step on this rank. A chunk is patient-major::

        [p0/s0/k0 .. p0/s0/k(K-1), p0/s1/k0 .. p0/s(S-1)/k(K-1), p1/s0/k0, ...]

    i.e. the index at position ``(p * S + s) * K + k`` of a chunk is patch
    ``k`` of slide ``s`` of patient ``p``.

    **Batch scope.** A training *step* takes ``patients_per_step`` distinct
    patients over all ranks; each of the ``world_size`` ranks takes a
    contiguous block of ``patients_per_rank`` of them:

    - ``batch_scope='global'`` (default): ``patients_per_batch`` is the
      number of patients of a step over all GPUs, as in a single-GPU run;
      each rank draws ``patients_per_batch / world_size`` of them (a
      ``ValueError`` if this does not divide). The steps of an epoch, their
      patients and the slides and patches drawn for them do not depend on
      ``world_size``: rank ``r``'s chunk of a step is block ``r`` of the
      single-process chunk, so with losses that gather over ranks a run on
      N GPUs computes the single-GPU loss.
    - ``batch_scope='per_gpu'``: ``patients_per_batch`` patients on every
      rank, so a step takes ``patients_per_batch * world_size`` (a larger
      global batch on more GPUs; a ``ValueError`` if the dataset holds fewer
      patients).

    The DataLoader batch is one rank's chunk, ``patients_per_rank * S * K``,
    which under ``'global'`` depends on the number of GPUs: build the
    DataLoader with :class:`HierarchicalBatchSampler`
    (``train_dataloader.batch_sampler=dict(type='HierarchicalBatchSampler')``
    with ``train_dataloader.batch_size`` = :attr:`config_batch_size`), or,
    on one GPU or under ``'per_gpu'``, with ``batch_size`` =
    :attr:`batch_size` (see :meth:`check_batch_size`).

    **Epoch.** Every epoch (see :meth:`set_epoch`) draws a new plan that
    depends only on ``(seed, epoch)`` and is the same on all ranks; slide and
    patch draws depend on ``(seed, epoch, step, position in the step)``.
    Let ``G = patients_per_step`` and ``M`` the patient slots of one pass
    over the training set (below). An epoch has :attr:`num_batches` steps,
    the same on every rank: ``M // G`` under ``'global'`` (slots that do not
    fill a step wait for a later epoch's reshuffle) and ``ceil(M / G)``
    under ``'per_gpu'`` (the last step is topped up with patients of the
    next pass: drawn with replacement across steps). A patient is never
    drawn twice in one step.

    **Class balance** (``class_balanced``), with ``n`` usable patients and
    ``n_c`` of class ``c``:

    - ``False``: ``M = n``; a pass takes every patient once in random order
      (under ``'global'`` each patient is used at most once per epoch).
    - ``True`` or ``'resample'``: ``M = n`` slots dealt to the classes
      round-robin (in a class order shuffled every epoch), so every class
      gets the same number of slots over the epoch (within one) and every
      step a class mix whose counts differ by at most one; each class fills
      its slots from a shuffled queue of its patients, reshuffled whenever
      it runs out. Small classes are oversampled, large ones subsampled;
      the epoch is as long as without balancing.
    - ``'replicate'``: the published HLSS / HiDisc
      ``balance_study_per_class: true`` (``replicate_balance_instances``):
      every class is replicated to the largest class size ``max_c``, so
      ``M = C * max_c`` slots (``C`` classes) in uniformly random order;
      every patient of the largest class is used once per pass and a
      patient of class ``c`` ``floor`` or ``ceil`` of ``max_c / n_c`` times
      (which ones get the extra use is redrawn every epoch, where the
      published code fixes it once). The epoch is longer than without
      balancing.

    In both balanced modes a class with fewer patients than its share of a
    step (about ``G / C``) cannot fill it without repeating a patient; its
    surplus slots then pass to the following classes (with a warning).

    A patient's S slides are distinct when it has at least S slides;
    otherwise all its slides are taken once, followed by uniform random
    repeats. The same rule draws K patches of each slide. Patients without
    any slide with patches are never drawn (with a warning).

    Args:
        dataset: A dataset with ``get_hierarchy()`` returning a
            :class:`~hlss_plugin.datasets.hierarchy.Hierarchy` whose item
            indices are the dataset indices.
        patients_per_batch (int): P, patients per step over all GPUs
            (``batch_scope='global'``) or per GPU (``'per_gpu'``).
        slides_per_patient (int): S, slides per patient.
        patches_per_slide (int): K, patches per slide.
        batch_scope (str): ``'global'`` or ``'per_gpu'``, see above.
            Defaults to ``'global'``.
        class_balanced (bool | str): ``False``, ``True`` / ``'resample'``
            or ``'replicate'``, see above. Defaults to False.
        seed (int, optional): Seed shared by all ranks. ``None`` draws one
            with :func:`mmengine.dist.sync_random_seed`. Defaults to None.
        rank (int, optional): This process's rank. ``None`` uses
            :func:`mmengine.dist.get_dist_info`. Defaults to None.
        world_size (int, optional): Number of ranks. ``None`` uses
            :func:`mmengine.dist.get_dist_info`. Defaults to None.

    Raises:
        ValueError: If an argument is invalid, the dataset has no
            ``get_hierarchy``, ``patients_per_batch`` is not divisible by
            ``world_size`` under ``'global'``, or the dataset has fewer
            usable patients than a step needs.

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
        >>> # Rank 1 of 2 draws the second patient of every global step.
        >>> half = HierarchicalSampler(
        ...     Toy(), patients_per_batch=2, slides_per_patient=1,
        ...     patches_per_slide=2, class_balanced=True, seed=0,
        ...     rank=1, world_size=2)
        >>> half.batch_size, half.num_batches, list(half)[:2] == chunk[2:]
        (2, 2, True)
    """

    def __init__(self,
                 dataset,
                 patients_per_batch: int,
                 slides_per_patient: int,
                 patches_per_slide: int,
                 batch_scope: str = 'global',
                 class_balanced: Union[bool, str] = False,
                 seed: Optional[int] = None,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        self.patients_per_batch = _positive_int(patients_per_batch,
                                                'patients_per_batch')
        self.slides_per_patient = _positive_int(slides_per_patient,
                                                'slides_per_patient')
        self.patches_per_slide = _positive_int(patches_per_slide,
                                               'patches_per_slide')
        if batch_scope not in BATCH_SCOPES:
            raise ValueError(
                f"HierarchicalSampler: `batch_scope` must be 'global' "
                f"(patients_per_batch counts the patients of a step over all "
                f"GPUs) or 'per_gpu' (patients_per_batch on every GPU), got "
                f'{batch_scope!r}.')
        self.batch_scope = batch_scope
        self.class_balanced = _balance_mode(class_balanced)

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
        P, N = self.patients_per_batch, self.world_size
        if batch_scope == 'global':
            if P % N:
                divisors = [d for d in range(1, P + 1) if P % d == 0]
                raise ValueError(
                    f"HierarchicalSampler: with batch_scope='global', "
                    f'patients_per_batch={P} is the number of patients of a '
                    f'step over all GPUs and must be divisible by '
                    f'world_size={N} (each GPU draws patients_per_batch / '
                    f'world_size); train on {divisors} GPUs, set '
                    f'train_dataloader.sampler.patients_per_batch to a '
                    f'multiple of {N}, or set '
                    f"train_dataloader.sampler.batch_scope='per_gpu' to draw "
                    f'{P} patients on every GPU.')
            self.patients_per_rank = P // N
        else:
            self.patients_per_rank = P
        self.patients_per_step = self.patients_per_rank * N

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
        labels = h.patient_labels[self._patients]
        self._classes = np.unique(labels)
        # Patient groups a step's slots are dealt to: the classes when
        # balancing, else all patients.
        if self.class_balanced:
            self._groups = [self._patients[labels == c] for c in self._classes]
        else:
            self._groups = [self._patients]

        num_patients = len(self._patients)
        G = self.patients_per_step
        if G > num_patients:
            if batch_scope == 'global':
                most = num_patients - num_patients % N
                fix = (f'lower train_dataloader.sampler.patients_per_batch '
                       f'to at most {most}' if most else
                       f'train on at most {num_patients} GPUs')
                need = f'patients_per_batch = {P}'
            else:
                fix = (f'lower train_dataloader.sampler.patients_per_batch '
                       f'to at most {num_patients // N} or train on fewer '
                       f"GPUs, or use batch_scope='global'"
                       if num_patients >= N else
                       f'train on at most {num_patients} GPUs')
                need = f'patients_per_batch x world_size = {P} x {N} = {G}'
            raise ValueError(
                f'HierarchicalSampler: the dataset has {num_patients} '
                f'patients with patches but every step needs {need} '
                f"distinct patients (batch_scope='{batch_scope}'); {fix}.")
        if self.class_balanced == 'replicate':
            pass_slots = len(self._groups) * max(map(len, self._groups))
        else:
            pass_slots = num_patients
        self.num_batches = (pass_slots // G if batch_scope == 'global' else
                            math.ceil(pass_slots / G))
        if self.class_balanced:
            share = math.ceil(G / len(self._groups))
            small = [
                int(c) for c, g in zip(self._classes, self._groups)
                if len(g) < share
            ]
            if small:
                warnings.warn(
                    f'HierarchicalSampler: classes {small} have fewer '
                    f'patients than their share of a step ({share} of {G}); '
                    f'a patient is never drawn twice in one step, so their '
                    f'surplus slots go to other classes and the balance is '
                    f'only approximate.')

    # ----------------------------------------------------------------- API
    @property
    def batch_size(self) -> int:
        """int: Indices per chunk on this rank, ``P_rank * S * K``; the
        DataLoader batch size on this rank."""
        return (self.patients_per_rank * self.slides_per_patient *
                self.patches_per_slide)

    @property
    def config_batch_size(self) -> int:
        """int: ``patients_per_batch * S * K``, the config's
        ``train_dataloader.batch_size``: the global batch under ``'global'``,
        the per-GPU batch under ``'per_gpu'`` (mmengine's meaning)."""
        return (self.patients_per_batch * self.slides_per_patient *
                self.patches_per_slide)

    def check_batch_size(self,
                         batch_size: int,
                         where: str = 'train_dataloader.batch_size') -> None:
        """Raise unless ``batch_size`` is this rank's chunk size.

        Args:
            batch_size (int): The DataLoader's batch size on this rank.
            where (str): Config key to name in the message.
                Defaults to ``'train_dataloader.batch_size'``.

        Raises:
            ValueError: If ``batch_size != self.batch_size``; the message
                says which value (or batch sampler) to set.
        """
        if batch_size == self.batch_size:
            return
        P, S, K = (self.patients_per_batch, self.slides_per_patient,
                   self.patches_per_slide)
        N = self.world_size
        if self.batch_scope == 'global' and N > 1:
            raise ValueError(
                f'{where} is {batch_size} but HierarchicalSampler yields '
                f'chunks of (patients_per_batch / world_size) x '
                f'slides_per_patient x patches_per_slide = {P}/{N}*{S}*{K} = '
                f"{self.batch_size} indices on each rank (batch_scope="
                f"'global' splits the {P} patients of a step over the {N} "
                f'GPUs), which a fixed DataLoader batch size cannot follow; '
                f'add train_dataloader.batch_sampler='
                f"dict(type='HierarchicalBatchSampler') and keep {where} = "
                f'{P}*{S}*{K} = {self.config_batch_size} (the global '
                f'batch), or set train_dataloader.sampler.batch_scope='
                f"'per_gpu' to draw {P} patients on every GPU.")
        raise ValueError(
            f'{where} is {batch_size} but HierarchicalSampler yields '
            f'chunks of patients_per_batch x slides_per_patient x '
            f'patches_per_slide indices; set {where} = '
            f'{self.patients_per_rank}*{S}*{K} = {self.batch_size}.')

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

    def step_patients(self) -> np.ndarray:
        """The patients of every step of the current epoch, all ranks.

        Returns:
            np.ndarray: ``(num_batches, patients_per_step)`` int64; rank
            ``r`` draws columns ``r * patients_per_rank`` to
            ``(r + 1) * patients_per_rank - 1``.
        """
        return self._plan()

    # ------------------------------------------------------------ internals
    def _entropy(self, *extra: int) -> List[int]:
        return [self.seed & _UINT64, self.epoch, *extra]

    def _plan(self) -> np.ndarray:
        """``(num_batches, patients_per_step)`` patients, same on all ranks.

        A stream of group (class) labels, one per slot, is dealt into steps;
        a group whose patients are all in the step already is skipped and
        its label kept for the next step. Each group fills its slots from a
        :class:`_CyclingQueue` that avoids the step's patients, so a step
        never repeats a patient.
        """
        rng = np.random.default_rng(self._entropy(0))
        G, groups = self.patients_per_step, self._groups
        queues = [_CyclingQueue(g, rng) for g in groups]
        if self.class_balanced == 'resample':
            order = rng.permutation(len(groups))

            def next_pass() -> np.ndarray:
                return order
        elif self.class_balanced == 'replicate':
            labels = np.repeat(np.arange(len(groups)),
                               max(map(len, groups)))

            def next_pass() -> np.ndarray:
                return rng.permutation(labels)
        else:

            def next_pass() -> np.ndarray:
                return np.zeros(G, dtype=np.int64)

        pending: deque = deque()
        plan = np.empty((self.num_batches, G), dtype=np.int64)
        for step in plan:
            taken: List[List[int]] = [[] for _ in groups]
            skipped, j = [], 0
            while j < G:
                if not pending:
                    pending.extend(next_pass().tolist())
                g = pending.popleft()
                if len(taken[g]) == len(groups[g]):
                    skipped.append(g)
                    continue
                step[j] = queues[g].pop(taken[g])
                taken[g].append(int(step[j]))
                j += 1
            pending.extendleft(reversed(skipped))
            # Keep each step's patient order random, not class-periodic.
            step[:] = rng.permutation(step)
        return plan

    def _epoch_indices(self) -> np.ndarray:
        """This rank's stream for the epoch, ``(len(self),)`` int64."""
        h = self.hierarchy
        S, K, Pr = (self.slides_per_patient, self.patches_per_slide,
                    self.patients_per_rank)
        first = self.rank * Pr
        mine = self._plan()[:, first:first + Pr]
        out = np.empty(mine.shape + (S, K), dtype=np.int64)
        for step, row in enumerate(mine):
            for i, p in enumerate(row.tolist()):
                # One generator per (step, slot in the step): the draws do
                # not depend on how the step is split over ranks.
                rng = np.random.default_rng(self._entropy(1, step, first + i))
                for j, s in enumerate(_draw(rng, self._slides[p], S)):
                    out[step, i, j] = _draw(
                        rng, np.asarray(h.patches_of(int(s))), K)
        return out.reshape(-1)
