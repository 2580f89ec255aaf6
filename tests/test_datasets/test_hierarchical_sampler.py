"""HierarchicalSampler: batch layout, determinism, DDP split, class balance."""
import os
from collections import Counter

import numpy as np
import pytest
import torch

from hlss_plugin.datasets.hierarchy import Hierarchy
from hlss_plugin.datasets.samplers.hierarchical_sampler import \
    HierarchicalSampler

from ..dist_helpers import run_distributed


# --------------------------------------------------------------- fixtures
class ToyDataset:
    """Dataset whose items are their own index, built from a patient spec.

    ``spec`` lists patients as ``(label, [patches of slide 0, ...])``. The
    plain per-item ``item_patient`` / ``item_slide`` lists are kept so tests
    can check the sampler independently of :class:`Hierarchy` lookups.
    """

    def __init__(self, spec):
        self.item_patient, self.item_slide, self.slide_patient = [], [], []
        for p, (_, slides) in enumerate(spec):
            for n in slides:
                s = len(self.slide_patient)
                self.slide_patient.append(p)
                self.item_patient += [p] * n
                self.item_slide += [s] * n
        self.labels = [label for label, _ in spec]
        self.hierarchy = Hierarchy.from_items(
            item_patient=self.item_patient,
            item_slide=self.item_slide,
            patient_labels=self.labels,
            patient_names=tuple(f'P{p}' for p in range(len(spec))),
            slide_names=tuple(f'S{s}' for s in range(len(self.slide_patient))))

    def get_hierarchy(self):
        return self.hierarchy

    def __len__(self):
        return len(self.item_slide)

    def __getitem__(self, idx):
        return idx


def varied_spec(num_patients=10, labels=None, seed=0):
    """Patients with 3..5 slides of 4..9 patches each."""
    rng = np.random.default_rng(seed)
    labels = labels or [p % 2 for p in range(num_patients)]
    return [(labels[p], rng.integers(4, 10, rng.integers(3, 6)).tolist())
            for p in range(num_patients)]


def imbalanced_spec(n0=12, n1=3):
    """``n0`` patients of class 0 then ``n1`` of class 1, 2 slides x 3."""
    return [(0, [3, 3])] * n0 + [(1, [3, 3])] * n1


def chunks(sampler, epoch=0):
    sampler.set_epoch(epoch)
    stream = np.array(list(sampler), dtype=np.int64)
    assert len(stream) == len(sampler)
    return stream.reshape(-1, sampler.patients_per_batch,
                          sampler.slides_per_patient,
                          sampler.patches_per_slide)


def batch_patients(ds, batch):
    """``(P,)`` patient of every patient block, checking the layout.

    Asserts that every slide block's patches belong to one slide and every
    patient block's slides belong to one patient.
    """
    item_slide = np.asarray(ds.item_slide)
    slide_patient = np.asarray(ds.slide_patient)
    slides = item_slide[batch]  # (P, S, K)
    assert (slides == slides[..., :1]).all(), 'patches of a block mix slides'
    patients = slide_patient[slides[..., 0]]  # (P, S)
    assert (
        patients == patients[:, :1]).all(), 'slides of a block mix patients'
    return patients[:, 0]


def epoch_patients(ds, sampler, epoch=0):
    """All patients a sampler yields in an epoch, ``(num_batches * P,)``."""
    return np.concatenate(
        [batch_patients(ds, b) for b in chunks(sampler, epoch)])


def make(ds, P=2, S=2, K=3, **kwargs):
    kwargs.setdefault('seed', 0)
    kwargs.setdefault('rank', 0)
    kwargs.setdefault('world_size', 1)
    return HierarchicalSampler(ds,
                               patients_per_batch=P,
                               slides_per_patient=S,
                               patches_per_slide=K,
                               **kwargs)


# -------------------------------------------------------------- structure
@pytest.mark.parametrize('class_balanced', [False, True])
def test_every_batch_is_patient_slide_patch_major(class_balanced):
    ds = ToyDataset(varied_spec(11))
    P, S, K = 3, 3, 4
    sampler = make(ds, P, S, K, class_balanced=class_balanced)
    assert sampler.batch_size == P * S * K
    assert sampler.num_batches == 11 // P
    assert len(sampler) == (11 // P) * P * S * K
    for epoch in range(3):
        for batch in chunks(sampler, epoch):
            patients = batch_patients(ds, batch)
            assert len(set(patients.tolist())) == P
            slides = np.asarray(ds.item_slide)[batch[..., 0]]  # (P, S)
            for p in range(P):
                assert len(set(slides[p].tolist())) == S
                for s in range(S):
                    assert len(set(batch[p, s].tolist())) == K


def test_small_patients_and_slides_drawn_with_replacement():
    # patient 0: one slide of 2 patches; patient 1: 2 slides of 1 and 6.
    ds = ToyDataset([(0, [2]), (0, [1, 6])])
    sampler = make(ds, P=2, S=3, K=4)
    for epoch in range(4):
        (batch, ) = chunks(sampler, epoch)
        patients = batch_patients(ds, batch)
        for p, blocks in zip(patients, batch):
            slides = [ds.item_slide[b[0]] for b in blocks]
            own = {s for s, q in enumerate(ds.slide_patient) if q == p}
            assert set(slides) == own  # every slide, repeats
            for block, s in zip(blocks, slides):
                own_items = {i for i, t in enumerate(ds.item_slide) if t == s}
                if len(own_items) >= 4:
                    assert len(set(block.tolist())) == 4
                else:
                    assert set(block.tolist()) == own_items


def test_patients_without_patches_are_skipped_with_warning():
    h = Hierarchy.from_items(item_patient=[0, 0, 2, 2],
                             item_slide=[0, 0, 1, 1],
                             patient_labels=[0, 0, 1],
                             patient_names=('a', 'b', 'c'),
                             slide_names=('a/1', 'c/1'))

    class Holey:

        def get_hierarchy(self):
            return h

        def __len__(self):
            return 4

    with pytest.warns(UserWarning, match='1 of 3 patients have no patches'):
        sampler = make(Holey(), P=2, S=1, K=1)
    assert sorted(h.slide_patient[h.item_slide[list(sampler)]]) == [0, 2]


# ------------------------------------------------------------ determinism
@pytest.mark.parametrize('class_balanced', [False, True])
def test_stream_depends_only_on_seed_and_epoch(class_balanced):
    ds = ToyDataset(varied_spec(12))
    a = make(ds, seed=7, class_balanced=class_balanced)
    b = make(ds, seed=7, class_balanced=class_balanced)
    for epoch in (0, 1, 5):
        np.testing.assert_array_equal(chunks(a, epoch), chunks(b, epoch))
    np.testing.assert_array_equal(chunks(a, 1), chunks(a, 1))
    assert not np.array_equal(chunks(a, 0), chunks(a, 1))
    other = make(ds, seed=8, class_balanced=class_balanced)
    assert not np.array_equal(chunks(a, 0), chunks(other, 0))


def test_unbalanced_uses_each_patient_once_and_rotates_leftovers():
    ds = ToyDataset(varied_spec(10))
    sampler = make(ds, P=3)  # 3 batches, 1 patient left out
    seen = set()
    for epoch in range(10):
        patients = epoch_patients(ds, sampler, epoch)
        assert len(patients) == len(set(patients.tolist())) == 9
        seen |= set(patients.tolist())
    assert seen == set(range(10))


# ------------------------------------------------------------------- DDP
@pytest.mark.parametrize('world_size', [2, 3])
@pytest.mark.parametrize('class_balanced', [False, True])
def test_ranks_get_disjoint_stratified_patients(world_size, class_balanced):
    ds = ToyDataset(imbalanced_spec(12, 3))
    labels = np.asarray(ds.labels)
    for seed in range(4):
        samplers = [
            make(ds,
                 P=2,
                 S=1,
                 K=2,
                 seed=seed,
                 rank=r,
                 world_size=world_size,
                 class_balanced=class_balanced) for r in range(world_size)
        ]
        assert len({len(s) for s in samplers}) == 1
        assert samplers[0].num_batches == 15 // (2 * world_size)
        for epoch in range(3):
            per_rank = [
                set(epoch_patients(ds, s, epoch).tolist()) for s in samplers
            ]
            union = set().union(*per_rank)
            assert len(union) == sum(map(len, per_rank)), 'ranks overlap'
            if class_balanced:
                # Each rank holds 3 // W or more class-1 patients (stratified
                # split) and oversamples them, so every rank sees class 1 and
                # all 3 class-1 patients are used once W divides 3.
                for patients in per_rank:
                    assert 1 in labels[list(patients)]
                if 3 % world_size == 0:
                    assert {p for p in union if labels[p] == 1} == {12, 13, 14}


def test_rank_and_world_size_default_to_single_process():
    ds = ToyDataset(varied_spec(6))
    sampler = HierarchicalSampler(ds, 2, 1, 1, seed=3)
    assert (sampler.rank, sampler.world_size) == (0, 1)
    assert isinstance(HierarchicalSampler(ds, 2, 1, 1).seed, int)


def _gloo_worker(rank, world_size, out_dir):
    ds = ToyDataset(imbalanced_spec(12, 3))
    sampler = HierarchicalSampler(ds,
                                  patients_per_batch=3,
                                  slides_per_patient=1,
                                  patches_per_slide=2,
                                  class_balanced=True)
    sampler.set_epoch(1)
    np.save(
        os.path.join(out_dir, f'rank{rank}.npy'),
        np.array([sampler.seed, sampler.rank, sampler.world_size] +
                 list(sampler)))


def test_two_gloo_processes_take_disjoint_patients(tmp_path):
    run_distributed(_gloo_worker, 2, str(tmp_path))
    results = [np.load(tmp_path / f'rank{r}.npy') for r in range(2)]
    (seed0, r0, w0), (seed1, r1, w1) = results[0][:3], results[1][:3]
    assert seed0 == seed1 and (r0, w0, r1, w1) == (0, 2, 1, 2)
    ds = ToyDataset(imbalanced_spec(12, 3))
    streams = [r[3:] for r in results]
    assert len(streams[0]) == len(streams[1]) == 2 * 3 * 2
    patients = [set(np.asarray(ds.item_patient)[s].tolist()) for s in streams]
    assert not patients[0] & patients[1]
    # The single-process sampler with the same rank/seed gives the same.
    ref = make(ds,
               P=3,
               S=1,
               K=2,
               class_balanced=True,
               seed=int(seed0),
               rank=1,
               world_size=2)
    ref.set_epoch(1)
    np.testing.assert_array_equal(streams[1], list(ref))


# --------------------------------------------------------- class balance
def test_class_balanced_equalises_classes_per_epoch_and_batch():
    ds = ToyDataset(imbalanced_spec(12, 3))
    labels = np.asarray(ds.labels)
    sampler = make(ds, P=4, S=1, K=1, class_balanced=True)
    for epoch in range(5):
        batches = [batch_patients(ds, b) for b in chunks(sampler, epoch)]
        assert len(batches) == 3
        for patients in batches:
            assert Counter(labels[patients].tolist()) == {0: 2, 1: 2}
            assert len(set(patients.tolist())) == 4  # 2 of 3 class-1 fit
        uses = Counter(np.concatenate(batches).tolist())
        minority = [uses[p] for p in (12, 13, 14)]
        assert sum(minority) == 6 and max(minority) - min(minority) <= 1
        assert all(uses[p] <= 1 for p in range(12))  # majority subsampled
    # Without balancing the epoch mirrors the 12:3 imbalance.
    plain = make(ds, P=4, S=1, K=1)
    assert (labels[epoch_patients(ds, plain)] == 1).sum() <= 3


def test_oversampled_class_does_not_repeat_within_a_batch():
    # Class 1 has 4 patients for 3 slots per batch: its queue is refilled
    # mid-batch, and the refill must not hand out a patient of that batch.
    ds = ToyDataset([(0, [1])] * 20 + [(1, [1])] * 4)
    for seed in range(3):
        sampler = make(ds, P=6, S=1, K=1, class_balanced=True, seed=seed)
        for epoch in range(10):
            for batch in chunks(sampler, epoch):
                patients = batch_patients(ds, batch).tolist()
                assert len(set(patients)) == 6, patients


@pytest.mark.parametrize('P', [3, 5, 6])
def test_class_balance_with_three_classes(P):
    spec = [(0, [2])] * 14 + [(1, [2])] * 4 + [(2, [2])] * 2
    ds = ToyDataset(spec)
    labels = np.asarray(ds.labels)
    sampler = make(ds, P=P, S=1, K=1, class_balanced=True)
    for epoch in range(3):
        batches = [batch_patients(ds, b) for b in chunks(sampler, epoch)]
        for patients in batches:
            counts = np.bincount(labels[patients], minlength=3)
            assert counts.max() - counts.min() <= 1
        total = np.bincount(labels[np.concatenate(batches)], minlength=3)
        assert total.max() - total.min() <= 1


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize('key,value', [('P', 0), ('S', -1), ('K', 2.0),
                                       ('P', True)])
def test_rejects_non_positive_sizes(key, value):
    name = dict(P='patients_per_batch',
                S='slides_per_patient',
                K='patches_per_slide')[key]
    with pytest.raises(ValueError, match=f'`{name}` must be a positive'):
        make(ToyDataset(varied_spec(4)), **{key: value})


def test_rejects_dataset_without_hierarchy():
    with pytest.raises(ValueError, match=r'get_hierarchy\(\).*list has none'):
        make([1, 2, 3])


def test_rejects_hierarchy_not_matching_dataset_length():

    class Short(ToyDataset):

        def __len__(self):
            return 3

    with pytest.raises(ValueError,
                       match='Short has 3 items but its '
                       'hierarchy indexes'):
        make(Short(varied_spec(4)))


def test_rejects_too_few_patients_for_the_step():
    ds = ToyDataset(varied_spec(5))
    with pytest.raises(ValueError,
                       match=r'5 patients.*3 x 2 = 6.*'
                       r'at most 2 or train on fewer GPUs'):
        make(ds, P=3, rank=1, world_size=2)


@pytest.mark.parametrize('rank,world_size', [(2, 2), (-1, 2)])
def test_rejects_bad_rank(rank, world_size):
    with pytest.raises(ValueError, match=r'`rank` must be.*\[0, world_size'):
        make(ToyDataset(varied_spec(6)), rank=rank, world_size=world_size)


def test_check_batch_size_names_key_and_value():
    sampler = make(ToyDataset(varied_spec(4)), P=2, S=2, K=3)
    sampler.check_batch_size(12)
    with pytest.raises(ValueError,
                       match=r'train_dataloader.batch_size is 8.*'
                       r'set train_dataloader.batch_size = 2\*2\*3 = 12'):
        sampler.check_batch_size(8)
    with pytest.raises(ValueError, match='set cfg.bs = 2'):
        sampler.check_batch_size(8, where='cfg.bs')
    with pytest.raises(ValueError, match='non-negative'):
        sampler.set_epoch(-1)


# ------------------------------------------------------------ integration
def test_runner_builds_dataloader_with_registered_sampler():
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    ds = ToyDataset(varied_spec(8))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(dict(batch_size=2 * 2 * 3,
                                              num_workers=0,
                                              dataset=ds,
                                              sampler=dict(
                                                  type='HierarchicalSampler',
                                                  patients_per_batch=2,
                                                  slides_per_patient=2,
                                                  patches_per_slide=3,
                                                  class_balanced=True)),
                                         seed=11)
    sampler = loader.sampler
    assert isinstance(sampler, HierarchicalSampler) and sampler.seed == 11
    sampler.check_batch_size(loader.batch_size)
    for epoch in (0, 3):
        loader.sampler.set_epoch(epoch)
        batches = [np.asarray(b, dtype=np.int64) for b in loader]
        assert len(batches) == len(loader) == 8 // 2
        ref = make(ds, P=2, S=2, K=3, class_balanced=True, seed=11)
        np.testing.assert_array_equal(
            np.stack(batches).reshape(-1, 2, 2, 3), chunks(ref, epoch))
        for batch in batches:
            patients = batch_patients(ds, batch.reshape(2, 2, 3))
            assert len(set(patients.tolist())) == 2
