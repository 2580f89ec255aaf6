"""``apply_plan(mode='dense')``: same views as the default gather mode (also
through ``SRHBatchAugmentPreprocessor``), every op on the whole batch, and
no host-device synchronisation (no ``bool()`` / ``item()`` / ``tolist()`` /
``nonzero`` / boolean indexing on tensors) while applying."""
import importlib.util
import os.path as osp

import pytest
import torch

from hlss_plugin.datasets.transforms import augment_ops as A
from hlss_plugin.datasets.transforms.srh_augment import (DEFAULT_OPS,
                                                         PlannedOp,
                                                         SRHAugment,
                                                         apply_plan)
from hlss_plugin.models.data_preprocessors.srh_batch_augment_preprocessor \
    import SRHBatchAugmentPreprocessor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
B, SIZE, CROP = 8, 40, 24


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(seed=0, b=B, size=SIZE):
    return torch.rand(b, 3, size, size, generator=gen(1000 + seed))


def mixed_augment(ops=DEFAULT_OPS, crop=CROP):
    """Default ops at probs 0 (never), 1 (always) and 0.5 (mixed) by turns,
    so a plan holds all-False, all-True and mixed masks."""
    probs = (0.5, 1.0, 0.0)
    cfgs = []
    for i, cfg in enumerate(ops):
        cfg = dict(cfg)
        if cfg['type'] == 'random_resized_crop':
            cfg['size'] = crop
        else:
            cfg['prob'] = probs[i % 3]
        cfgs.append(cfg)
    return SRHAugment(ops=cfgs, rand_prob=0.5)


def mask_kinds(plan):
    kinds = set()
    for step in plan:
        if step.params is None:
            kinds.add('none')
        elif bool(step.mask.all()):
            kinds.add('all')
        elif bool(step.mask.any()):
            kinds.add('mixed')
    return kinds


def assert_same(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# --------------------------------------------------------- equivalence
@pytest.mark.parametrize('seed', range(6))
def test_dense_equals_gather_on_random_plans(seed):
    x = batch(seed)
    aug = (mixed_augment() if seed % 2 else
           SRHAugment(crop_size=CROP, rand_prob=0.5))
    plan = aug.sample_plan(gen(seed), B, x.shape[1:])
    x_before = x.clone()
    gather = apply_plan(x, plan)
    dense = apply_plan(x, plan, mode='dense')
    assert_same(dense, gather)
    assert torch.equal(x, x_before)  # input untouched
    assert dense.shape == (B, 3, CROP, CROP)
    # it is not the identity: the plan changed the views
    assert not torch.allclose(dense, gather.flip(0))
    if seed % 2:
        assert mask_kinds(plan) == {'none', 'all', 'mixed'}


def test_dense_is_bit_exact_on_cpu():
    # per-sample computation does not depend on which other samples share
    # the batch, so on the CPU the two modes agree bit for bit
    aug = SRHAugment(rand_prob=0.5, crop_size=CROP)
    for seed in range(10, 16):
        x = batch(seed)
        plan = aug.sample_plan(gen(seed), B, x.shape[1:])
        assert 'mixed' in mask_kinds(plan)
        assert torch.equal(apply_plan(x, plan, mode='dense'),
                           apply_plan(x, plan))


def test_dense_equals_per_sample_application():
    """Independent reference: each sample alone with its own params (the
    n = 1 crop uses ``interpolate``, the batched one ``grid_sample``: equal
    up to float rounding, as in test_srh_augment.py)."""
    x = batch(3)
    aug = mixed_augment()
    plan = aug.sample_plan(gen(3), B, x.shape[1:])
    dense = apply_plan(x, plan, mode='dense')
    for i in range(B):
        xi = x[i]
        for step in plan:
            if step.params is not None and bool(step.mask[i]):
                xi = step.op.apply(xi, A.select_params(step.params,
                                                       slice(i, i + 1)))
        torch.testing.assert_close(dense[i], xi, rtol=0, atol=2e-5)


def test_single_image_and_unfired_params():
    aug = mixed_augment()
    x = batch(4, b=1)[0]
    plan = aug.sample_plan(gen(4), 1, x.shape)
    assert_same(apply_plan(x, plan, mode='dense'), apply_plan(x, plan))
    # params present but the mask all False: nothing changes
    op = A.GaussianNoise(std=0.1)
    xb = batch(5, b=4)
    step = PlannedOp(op.name, op, torch.zeros(4, dtype=torch.bool),
                     op.sample(gen(5), 4, xb.shape[1:]),
                     torch.zeros(4, dtype=torch.bool))
    assert torch.equal(apply_plan(xb, [step], mode='dense'), xb)
    assert torch.equal(apply_plan(xb, [step]), xb)
    # an empty plan returns the input as is in both modes
    assert torch.equal(apply_plan(xb, [], mode='dense'), xb)


class CountingOp(A.AugmentOp):
    """Wraps an op and records the batch size of every ``apply`` call."""

    def __init__(self, op):
        self.op, self.name, self.calls = op, op.name, []

    def apply(self, img, params):
        self.calls.append(img.shape[0])
        return self.op.apply(img, params)


def test_dense_runs_each_fired_op_on_the_whole_batch():
    aug = SRHAugment(ops=[], rand_prob=0.5)  # hflip, vflip at 0.5
    x = batch(6)
    for seed in range(20):
        plan = aug.sample_plan(gen(seed), B, x.shape[1:])
        if all(0 < int(s.mask.sum()) < B for s in plan):
            break
    counted = [PlannedOp(s.name, CountingOp(s.op), s.mask, s.params,
                         s.fired) for s in plan]
    apply_plan(x, counted, mode='dense')
    assert [s.op.calls for s in counted] == [[B]] * len(plan)
    for s in counted:
        s.op.calls.clear()
    apply_plan(x, counted)
    assert [s.op.calls for s in counted] == [[int(s.mask.sum())]
                                             for s in plan]


def test_bad_mode_raises():
    x = batch(0, b=2)
    plan = SRHAugment(crop_size=16).sample_plan(gen(), 2, x.shape[1:])
    with pytest.raises(ValueError, match='mode must be one of'):
        apply_plan(x, plan, mode='masked')
    with pytest.raises(ValueError, match='apply_mode must'):
        SRHBatchAugmentPreprocessor(apply_mode='fast')


# --------------------------------------------------------- no host sync
class HostSync(RuntimeError):
    pass


def _is_bool_index(index):
    items = index if isinstance(index, tuple) else (index, )
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
               for i in items)


@pytest.fixture
def forbid_sync(monkeypatch):
    """Make every host read of tensor values raise :class:`HostSync` (on a
    GPU each is a device synchronisation)."""

    def fail(name):
        def method(*args, **kwargs):
            raise HostSync(name)
        return method

    get, put = torch.Tensor.__getitem__, torch.Tensor.__setitem__

    def getitem(self, index):
        if _is_bool_index(index):
            raise HostSync('boolean-mask gather')
        return get(self, index)

    def setitem(self, index, value):
        if _is_bool_index(index):
            raise HostSync('boolean-mask scatter')
        return put(self, index, value)

    for name in ('__bool__', 'item', 'tolist', 'nonzero', '__int__',
                 '__float__', '__index__'):
        monkeypatch.setattr(torch.Tensor, name, fail(name))
    monkeypatch.setattr(torch, 'nonzero', fail('torch.nonzero'))
    monkeypatch.setattr(torch.Tensor, '__getitem__', getitem)
    monkeypatch.setattr(torch.Tensor, '__setitem__', setitem)
    yield


def plans_without_color_jitter(n_seeds=4):
    ops = [c for c in DEFAULT_OPS if c['type'] != 'color_jitter']
    aug = SRHAugment(ops=ops, rand_prob=0.5, crop_size=CROP)
    x = batch(7)
    return x, [aug.sample_plan(gen(s), B, x.shape[1:])
               for s in range(n_seeds)]


def test_dense_mode_does_not_sync(request):
    x, plans = plans_without_color_jitter()
    expected = [apply_plan(x, p) for p in plans]
    assert any('mixed' in mask_kinds(p) for p in plans)
    request.getfixturevalue('forbid_sync')
    for plan, want in zip(plans, expected):
        out = apply_plan(x, plan, mode='dense')
        assert torch.equal(out, want)


def test_gather_mode_syncs_under_the_same_patch(request):
    x, plans = plans_without_color_jitter(1)
    request.getfixturevalue('forbid_sync')
    with pytest.raises(HostSync):
        apply_plan(x, plans[0])


def test_color_jitter_apply_still_syncs(request):
    """Known limitation: the batched ColorJitter.apply selects samples per
    order position with ``sel.any()`` and boolean indexing itself, so a
    plan where it fired syncs even in dense mode."""
    aug = SRHAugment(ops=[dict(type='color_jitter', prob=1.0)])
    x = batch(8)
    plan = aug.sample_plan(gen(8), B, x.shape[1:])
    request.getfixturevalue('forbid_sync')
    with pytest.raises(HostSync):
        apply_plan(x, plan, mode='dense')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_dense_mode_does_not_sync_on_cuda():
    x, plans = plans_without_color_jitter()
    x = x.cuda()
    cuda_plans = [[PlannedOp(s.name, s.op, s.mask.cuda(),
                             None if s.params is None else
                             {k: v.cuda() for k, v in s.params.items()},
                             s.fired.cuda()) for s in p] for p in plans]
    torch.cuda.synchronize()
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode('error')
    try:
        outs = [apply_plan(x, p, mode='dense') for p in cuda_plans]
    finally:
        torch.cuda.set_sync_debug_mode(old)
    for out, p in zip(outs, cuda_plans):
        torch.testing.assert_close(out, apply_plan(x, p), rtol=0, atol=1e-6)


# -------------------------------------------------------- preprocessor
def test_preprocessor_dense_equals_gather():
    raw = torch.randint(0, 12000, (B, 2, SIZE, SIZE),
                        generator=gen(9)).to(torch.uint16)
    outs, pres = {}, {}
    for mode in ('gather', 'dense'):
        pre = SRHBatchAugmentPreprocessor(
            augment=dict(rand_prob=0.5, crop_size=CROP), seed=3,
            record=True, apply_mode=mode, mean=[0.5] * 3, std=[0.25] * 3)
        outs[mode] = pre(dict(inputs=raw, data_samples=None),
                         training=True)['inputs']
        pres[mode] = pre
    assert pres['dense'].apply_mode == 'dense'
    assert "apply_mode='dense'" in pres['dense'].extra_repr()
    assert pres['gather'].apply_mode == 'gather'  # the default is kept
    assert SRHBatchAugmentPreprocessor().apply_mode == 'gather'
    assert len(outs['dense']) == 2
    kinds = set()
    for v_gather, v_dense, plan in zip(outs['gather'], outs['dense'],
                                       pres['dense'].last_plans):
        kinds |= mask_kinds(plan)
        # std 0.25 scales the 1e-6 tolerance of the [0, 1] views by 4
        torch.testing.assert_close(v_dense, v_gather, rtol=0, atol=4e-6)
    assert 'mixed' in kinds
    assert not torch.allclose(outs['dense'][0], outs['dense'][1])


def test_preprocessor_passes_the_mode_to_apply_plan(monkeypatch):
    from hlss_plugin.models.data_preprocessors import \
        srh_batch_augment_preprocessor as module
    seen = []

    def spy(img, plan, mode='gather'):
        seen.append(mode)
        return apply_plan(img, plan, mode)

    monkeypatch.setattr(module, 'apply_plan', spy)
    pre = SRHBatchAugmentPreprocessor(augment=dict(crop_size=16),
                                      apply_mode='dense', num_views=3)
    raw = torch.randint(0, 9000, (2, 2, 24, 24)).to(torch.uint16)
    pre(dict(inputs=raw, data_samples=None), training=True)
    assert seen == ['dense'] * 3


# ----------------------------------------------------------- benchmark
def test_benchmark_flag_reaches_the_preprocessor_config():
    path = osp.join(REPO, 'tools', 'benchmark_throughput.py')
    spec = importlib.util.spec_from_file_location('bench_tput', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(['--quick'])
    assert args.augment_mode == 'gather'
    assert bench.load_config(args).model.data_preprocessor.apply_mode == \
        'gather'
    args = bench.parse_args(['--quick', '--augment-mode', 'dense'])
    cfg = bench.load_config(args)
    assert cfg.model.data_preprocessor.apply_mode == 'dense'
    with pytest.raises(SystemExit):
        bench.parse_args(['--augment-mode', 'masked'])
