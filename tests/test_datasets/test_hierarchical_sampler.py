"""HierarchicalSampler / HierarchicalBatchSampler: batch layout,
determinism, global and per-GPU batch scope over simulated ranks, class
balance."""
import os
from collections import Counter

import numpy as np
import pytest
import torch

from hlss_plugin.datasets.hierarchy import Hierarchy
from hlss_plugin.datasets.samplers import (HierarchicalBatchSampler,
                                           HierarchicalSampler)

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
    return stream.reshape(-1, sampler.patients_per_rank,
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


def make_ranks(ds, world_size, P=2, S=2, K=3, **kwargs):
    """One sampler per simulated rank, with explicit rank / world_size."""
    return [make(ds, P, S, K, rank=r, world_size=world_size, **kwargs)
            for r in range(world_size)]


def step_patients(ds, samplers, epoch=0):
    """``(num_batches, P_rank * world_size)`` patients of every global step,
    rank blocks in rank order."""
    per_rank = [
        np.stack([batch_patients(ds, b) for b in chunks(s, epoch)])
        for s in samplers
    ]
    return np.concatenate(per_rank, axis=1)


def opensrh_sized_spec(seed=0):
    """245 training patients as in OpenSRH: 7 imbalanced classes, 1-3
    slides per patient, 2-5 patches per slide."""
    rng = np.random.default_rng(seed)
    counts = [60, 50, 40, 35, 30, 18, 12]
    labels = rng.permutation(np.repeat(np.arange(7), counts)).tolist()
    return [(label, rng.integers(2, 6, rng.integers(1, 4)).tolist())
            for label in labels]


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


# ------------------------------------------------- DDP: global batch scope
OPENSRH_BALANCE = [False, 'resample', 'replicate']


@pytest.mark.parametrize('world_size', [1, 2, 4, 8])
@pytest.mark.parametrize('class_balanced', OPENSRH_BALANCE)
def test_global_scope_splits_32_patients_over_ranks(world_size,
                                                    class_balanced):
    # OpenSRH-sized: 245 patients, the paper's 32 patients per step.
    ds = ToyDataset(opensrh_sized_spec())
    kwargs = dict(P=32, S=2, K=2, seed=5, class_balanced=class_balanced)
    samplers = make_ranks(ds, world_size, **kwargs)
    expected = dict(
        [(False, 245 // 32), ('resample', 245 // 32),
         ('replicate', 7 * 60 // 32)])[class_balanced]
    assert {s.num_batches for s in samplers} == {expected}
    assert {len(s) for s in samplers} == {expected * (32 // world_size) * 4}
    assert {s.batch_size for s in samplers} == {32 // world_size * 2 * 2}
    assert {s.config_batch_size for s in samplers} == {32 * 2 * 2}
    single = make(ds, world_size=1, **kwargs)
    for epoch in (0, 3):
        steps = step_patients(ds, samplers, epoch)
        assert steps.shape == (expected, 32)
        for step in steps:
            assert len(set(step.tolist())) == 32, 'a step repeats a patient'
        if not class_balanced:  # each patient at most once per epoch
            assert len(set(steps.ravel().tolist())) == steps.size
        # Rank r's chunk is block r of the single-process chunk: the same
        # global batches on any number of GPUs.
        whole = chunks(single, epoch)
        for r, s in enumerate(samplers):
            block = slice(r * (32 // world_size), (r + 1) * (32 // world_size))
            np.testing.assert_array_equal(chunks(s, epoch), whole[:, block])


@pytest.mark.parametrize('world_size', [3, 5, 6, 7])
def test_global_scope_needs_world_size_dividing_patients(world_size):
    ds = ToyDataset(opensrh_sized_spec())
    with pytest.raises(ValueError,
                       match=rf"batch_scope='global'.*patients_per_batch=32 "
                       rf'.*divisible by world_size={world_size}.*'
                       rf'\[1, 2, 4, 8, 16, 32\] GPUs.*'
                       rf"batch_scope='per_gpu'"):
        make(ds, P=32, S=2, K=2, rank=0, world_size=world_size)


def test_global_scope_without_replacement_rotates_patients():
    # 14 patients, 4 per step over 2 ranks: 3 steps; the 2 left over wait
    # for a later epoch, and over epochs every patient is used.
    ds = ToyDataset(varied_spec(14))
    samplers = make_ranks(ds, 2, P=4, S=1, K=1)
    seen = set()
    for epoch in range(8):
        steps = step_patients(ds, samplers, epoch)
        assert steps.shape == (3, 4)
        assert len(set(steps.ravel().tolist())) == 12
        per_rank = [set(steps[:, :2].ravel()), set(steps[:, 2:].ravel())]
        assert not per_rank[0] & per_rank[1], 'ranks overlap in an epoch'
        seen |= set(steps.ravel().tolist())
    assert seen == set(range(14))


def test_step_patients_is_the_plan_every_rank_slices():
    ds = ToyDataset(opensrh_sized_spec())
    samplers = make_ranks(ds, 4, P=32, S=2, K=2, class_balanced=True)
    for s in samplers:
        s.set_epoch(2)
    plans = [s.step_patients() for s in samplers]
    for plan in plans[1:]:
        np.testing.assert_array_equal(plan, plans[0])
    np.testing.assert_array_equal(step_patients(ds, samplers, 2), plans[0])


# ------------------------------------------------ DDP: per-GPU batch scope
@pytest.mark.parametrize('world_size', [1, 2, 4])
def test_per_gpu_scope_draws_with_replacement_across_steps(world_size):
    ds = ToyDataset(opensrh_sized_spec())
    samplers = make_ranks(ds, world_size, P=32, S=2, K=2,
                          batch_scope='per_gpu', seed=1)
    G = 32 * world_size
    T = -(-245 // G)  # every patient at least once per epoch
    assert {s.num_batches for s in samplers} == {T}
    assert {s.batch_size for s in samplers} == {32 * 2 * 2}
    assert {s.config_batch_size for s in samplers} == {32 * 2 * 2}
    for epoch in range(3):
        steps = step_patients(ds, samplers, epoch)
        assert steps.shape == (T, G)
        for step in steps:
            assert len(set(step.tolist())) == G, 'a step repeats a patient'
        uses = Counter(steps.ravel().tolist())
        assert set(uses) == set(range(245))  # no patient left out
        # the last step is topped up from the next pass: T * G - 245
        # patients are used twice, none more
        assert sum(uses.values()) == T * G
        assert sorted(Counter(uses.values()).items()) == (
            [(1, 245)] if T * G == 245 else
            [(1, 245 - (T * G - 245)), (2, T * G - 245)])


def test_per_gpu_scope_with_too_many_patients_per_step_is_an_error():
    ds = ToyDataset(opensrh_sized_spec())
    with pytest.raises(ValueError,
                       match=r'245 patients.*32 x 8 = 256 distinct .*'
                       r"batch_scope='per_gpu'.*at most 30 or train on "
                       r"fewer GPUs, or use batch_scope='global'"):
        make(ds, P=32, S=2, K=2, batch_scope='per_gpu', rank=3,
             world_size=8)
    # The same 8 GPUs with the global scope: 4 patients each.
    assert make(ds, P=32, S=2, K=2, rank=3, world_size=8).batch_size == 16


@pytest.mark.parametrize('batch_scope', ['global', 'per_gpu'])
@pytest.mark.parametrize('class_balanced', OPENSRH_BALANCE)
def test_every_rank_is_deterministic_per_seed_and_epoch(batch_scope,
                                                        class_balanced):
    ds = ToyDataset(opensrh_sized_spec())
    P = 8 if batch_scope == 'per_gpu' else 32

    def streams(seed, epoch):
        out = []
        for s in make_ranks(ds, 4, P=P, S=2, K=2, seed=seed,
                            batch_scope=batch_scope,
                            class_balanced=class_balanced):
            s.set_epoch(epoch)
            out.append(list(s))
        return out

    assert streams(3, 1) == streams(3, 1)
    assert streams(3, 1) != streams(3, 2)
    assert streams(3, 1) != streams(4, 1)


def test_rank_and_world_size_default_to_single_process():
    ds = ToyDataset(varied_spec(6))
    sampler = HierarchicalSampler(ds, 2, 1, 1, seed=3)
    assert (sampler.rank, sampler.world_size) == (0, 1)
    assert sampler.batch_scope == 'global'
    assert isinstance(HierarchicalSampler(ds, 2, 1, 1).seed, int)


def _gloo_worker(rank, world_size, out_dir):
    ds = ToyDataset(imbalanced_spec(12, 3))
    sampler = HierarchicalSampler(ds,
                                  patients_per_batch=4,
                                  slides_per_patient=1,
                                  patches_per_slide=2,
                                  class_balanced=True)
    batches = HierarchicalBatchSampler(sampler, batch_size=4 * 1 * 2)
    batches.set_epoch(1)
    np.save(
        os.path.join(out_dir, f'rank{rank}.npy'),
        np.array([sampler.seed, sampler.rank, sampler.world_size,
                  len(batches)] + sum(list(batches), [])))


def test_two_gloo_processes_split_the_single_process_batches(tmp_path):
    run_distributed(_gloo_worker, 2, str(tmp_path))
    results = [np.load(tmp_path / f'rank{r}.npy') for r in range(2)]
    (seed0, r0, w0, n0), (seed1, r1, w1, n1) = results[0][:4], \
        results[1][:4]
    assert seed0 == seed1 and (r0, w0, r1, w1) == (0, 2, 1, 2)
    assert n0 == n1 == 15 // 4
    streams = [r[4:].reshape(n0, 2, 1, 2) for r in results]
    # The single process with the same seed draws the same global batches;
    # each rank got its half.
    ref = make(ToyDataset(imbalanced_spec(12, 3)),
               P=4, S=1, K=2, class_balanced=True, seed=int(seed0))
    whole = chunks(ref, 1)
    np.testing.assert_array_equal(streams[0], whole[:, :2])
    np.testing.assert_array_equal(streams[1], whole[:, 2:])


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


def test_replicate_is_the_published_balance_study_per_class():
    # Published replicate_balance_instances: every class replicated to the
    # largest class size (12), the epoch one pass over the 24 slots.
    ds = ToyDataset(imbalanced_spec(12, 5))
    labels = np.asarray(ds.labels)
    sampler = make(ds, P=4, S=1, K=1, class_balanced='replicate')
    assert sampler.num_batches == 2 * 12 // 4
    assert make(ds, P=4, S=1, K=1, class_balanced=True).num_batches == \
        17 // 4  # 'resample' keeps the unbalanced epoch length
    extra = set()
    for epoch in range(6):
        batches = [batch_patients(ds, b) for b in chunks(sampler, epoch)]
        for patients in batches:
            assert len(set(patients.tolist())) == 4
        uses = Counter(np.concatenate(batches).tolist())
        assert Counter(labels[list(uses.elements())].tolist()) == \
            {0: 12, 1: 12}
        assert all(uses[p] == 1 for p in range(12))  # majority: once each
        minority = sorted(uses[p] for p in range(12, 17))
        assert minority == [2, 2, 2, 3, 3]  # 12 / 5: floor or ceil
        extra |= {p for p in range(12, 17) if uses[p] == 3}
    assert len(extra) > 2  # who gets the extra use is redrawn per epoch


def test_class_smaller_than_its_share_warns_and_never_repeats():
    ds = ToyDataset([(0, [1])] * 20 + [(1, [1])] * 2)
    for mode in ('resample', 'replicate'):
        with pytest.warns(UserWarning, match=r'classes \[1\] have fewer '
                          r'patients than their share of a step \(3 of 6\)'):
            sampler = make(ds, P=6, S=1, K=1, class_balanced=mode)
        for epoch in range(4):
            for batch in chunks(sampler, epoch):
                patients = batch_patients(ds, batch).tolist()
                assert len(set(patients)) == 6, patients


@pytest.mark.parametrize('value', ['oversample', 1, None])
def test_rejects_unknown_class_balance(value):
    with pytest.raises(ValueError, match=r"`class_balanced` must be False, "
                       r"True \(= 'resample'\), 'resample' or 'replicate'"):
        make(ToyDataset(varied_spec(4)), class_balanced=value)


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
        make(ds, P=3, rank=1, world_size=2, batch_scope='per_gpu')
    with pytest.raises(ValueError,
                       match=r"5 patients.*patients_per_batch = 6 distinct "
                       r"patients \(batch_scope='global'\); lower "
                       r'train_dataloader.sampler.patients_per_batch to at '
                       r'most 4'):
        make(ds, P=6, rank=1, world_size=2)


def test_rejects_unknown_batch_scope():
    with pytest.raises(ValueError, match=r"`batch_scope` must be 'global'"):
        make(ToyDataset(varied_spec(4)), batch_scope='per_node')


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
    # Global scope on 2 ranks: a fixed DataLoader batch cannot follow.
    half = make(ToyDataset(varied_spec(4)), P=2, S=2, K=3, rank=0,
                world_size=2)
    half.check_batch_size(6)
    with pytest.raises(ValueError,
                       match=r'batch_size is 12 .*2/2\*2\*3 = 6 indices on '
                       r"each rank.*add train_dataloader.batch_sampler=dict"
                       r"\(type='HierarchicalBatchSampler'\) and keep "
                       r'train_dataloader.batch_size = 2\*2\*3 = 12'):
        half.check_batch_size(12)


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


def _loader(ds, world_size, rank, batch_size=4 * 2 * 3, **sampler):
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    sampler = dict(dict(type='HierarchicalSampler', patients_per_batch=4,
                        slides_per_patient=2, patches_per_slide=3,
                        rank=rank, world_size=world_size), **sampler)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Runner.build_dataloader(dict(
            batch_size=batch_size, num_workers=0, dataset=ds,
            sampler=sampler,
            batch_sampler=dict(type='HierarchicalBatchSampler')), seed=11)


@pytest.mark.parametrize('world_size', [1, 2, 4])
def test_runner_builds_batch_sampler_splitting_the_global_batch(world_size):
    ds = ToyDataset(varied_spec(10))
    loaders = [_loader(ds, world_size, r, class_balanced=True)
               for r in range(world_size)]
    single = make(ds, P=4, S=2, K=3, class_balanced=True, seed=11)
    for epoch in (0, 2):
        per_rank = []
        for loader in loaders:
            assert isinstance(loader.batch_sampler, HierarchicalBatchSampler)
            assert loader.batch_size is None
            assert loader.batch_sampler.batch_size == 4 // world_size * 6
            # where mmengine's loops and DistSamplerSeedHook set the epoch
            assert not hasattr(loader.sampler, 'set_epoch')
            loader.batch_sampler.sampler.set_epoch(epoch)
            batches = [np.asarray(b, dtype=np.int64) for b in loader]
            assert len(batches) == len(loader) == 10 // 4
            per_rank.append(np.stack(batches).reshape(-1, 4 // world_size,
                                                      2, 3))
        np.testing.assert_array_equal(np.concatenate(per_rank, axis=1),
                                      chunks(single, epoch))


def test_batch_sampler_per_gpu_scope_and_set_epoch():
    ds = ToyDataset(varied_spec(10))
    loader = _loader(ds, 2, 1, batch_scope='per_gpu')
    assert loader.batch_sampler.batch_size == 4 * 2 * 3
    assert len(loader) == -(-10 // 8)
    loader.batch_sampler.set_epoch(3)
    assert loader.batch_sampler.sampler.epoch == 3
    ref = make(ds, P=4, S=2, K=3, rank=1, world_size=2, seed=11,
               batch_scope='per_gpu')
    ref.set_epoch(3)
    np.testing.assert_array_equal(
        np.concatenate([np.asarray(b) for b in loader]), list(ref))


def test_batch_sampler_checks_the_config_batch_size():
    ds = ToyDataset(varied_spec(10))
    with pytest.raises(ValueError,
                       match=r'train_dataloader.batch_size is 12 but '
                       r"HierarchicalSampler yields chunks.*batch_scope="
                       r"'global': the global batch.*set "
                       r'train_dataloader.batch_size = 4\*2\*3 = 24'):
        _loader(ds, 2, 0, batch_size=12)
    with pytest.raises(ValueError, match=r"batch_scope='per_gpu': the batch "
                       r'per GPU.*= 4\*2\*3 = 24'):
        _loader(ds, 2, 0, batch_size=48, batch_scope='per_gpu')
    sampler = make(ds, P=4, S=2, K=3, rank=0, world_size=2)
    assert len(HierarchicalBatchSampler(sampler)) == sampler.num_batches
    with pytest.raises(ValueError, match='train_dataloader.sampler is '
                       'SequentialSampler'):
        HierarchicalBatchSampler(torch.utils.data.SequentialSampler(ds), 24)
