"""``apply_plan(mode='dense')``: same views as the default gather mode (also
through ``SRHBatchAugmentPreprocessor``), every op on the whole batch, and
no host-device synchronisation (no ``bool()`` / ``item()`` / ``tolist()`` /
``nonzero`` / boolean indexing on tensors) while applying
(``AugmentOp.apply_dense``, color_jitter included), while sampling
(``sample_plan(sync_free=True)``) or in the preprocessor's dense forward."""
import contextlib
import importlib.util
import os.path as osp

import pytest
import torch

from hlss_plugin.augmentation import ops as A
from hlss_plugin.augmentation import (DEFAULT_OPS, PlannedOp, SRHAugment,
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


@contextlib.contextmanager
def host_reads_forbidden():
    """Make every host read of tensor values raise :class:`HostSync` (on a
    GPU each is a device synchronisation) inside the block."""

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

    with pytest.MonkeyPatch.context() as mp:
        for name in ('__bool__', 'item', 'tolist', 'nonzero', '__int__',
                     '__float__', '__index__'):
            mp.setattr(torch.Tensor, name, fail(name))
        mp.setattr(torch, 'nonzero', fail('torch.nonzero'))
        mp.setattr(torch.Tensor, '__getitem__', getitem)
        mp.setattr(torch.Tensor, '__setitem__', setitem)
        yield


@pytest.fixture
def forbid_sync():
    """:func:`host_reads_forbidden` for the rest of the test."""
    with host_reads_forbidden():
        yield


def default_plans(n_seeds=4, sync_free=False):
    """Plans of the DEFAULT ops (color_jitter included) at rand_prob 0.5."""
    aug = SRHAugment(rand_prob=0.5, crop_size=CROP)
    x = batch(7)
    return x, [aug.sample_plan(gen(s), B, x.shape[1:], sync_free=sync_free)
               for s in range(n_seeds)]


def test_dense_mode_does_not_sync(request):
    x, plans = default_plans()
    expected = [apply_plan(x, p) for p in plans]
    assert any('mixed' in mask_kinds(p) for p in plans)
    jitter = [s for p in plans for s in p if s.name == 'color_jitter']
    assert any(0 < int(s.mask.sum()) < B for s in jitter)
    request.getfixturevalue('forbid_sync')
    for plan, want in zip(plans, expected):
        out = apply_plan(x, plan, mode='dense')
        assert torch.equal(out, want)


def test_gather_mode_syncs_under_the_same_patch(request):
    x, plans = default_plans(1)
    request.getfixturevalue('forbid_sync')
    with pytest.raises(HostSync):
        apply_plan(x, plans[0])


def test_dense_mode_single_image_does_not_sync():
    # n = 1: apply() of crop / erasing / color_jitter reads the params on the
    # host; apply_dense() uses the batched code
    aug = SRHAugment(ops=[dict(c, prob=1.0) for c in DEFAULT_OPS],
                     crop_size=CROP)
    x = batch(11, b=1)
    plan = aug.sample_plan(gen(11), 1, x.shape[1:], sync_free=True)
    with host_reads_forbidden():
        dense = apply_plan(x, plan, mode='dense')
        with pytest.raises(HostSync):
            apply_plan(x, plan)
    # the n = 1 crop: grid_sample instead of interpolate (float rounding)
    torch.testing.assert_close(dense, apply_plan(x, plan), rtol=0, atol=5e-5)


# --------------------------------------------------- ColorJitter dense
ORDERS = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2],
                       [2, 0, 3, 1], [3, 0, 2, 1]])


def jitter_params(n):
    return {'brightness': torch.tensor([0.8, 1.2, 1.0, 0.9, 1.15])[:n],
            'contrast': torch.tensor([1.2, 0.8, 0.9, 1.1, 0.85])[:n],
            'saturation': torch.tensor([0.85, 1.1, 1.2, 0.8, 1.0])[:n],
            'hue': torch.tensor([0.1, -0.05, 0.02, -0.1, 0.07])[:n],
            'order': ORDERS[:n]}


def jitter_reference(op, x, params):
    """Each sample alone, its parts in its own order (independent of both
    ``apply`` and ``apply_dense``)."""
    fns = {0: ('brightness', A.adjust_brightness),
           1: ('contrast', A.adjust_contrast),
           2: ('saturation', A.adjust_saturation),
           3: ('hue', A.adjust_hue)}
    enabled = (op.brightness, op.contrast, op.saturation, op.hue)
    outs = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        for j in params['order'][i].tolist():
            key, fn = fns[j]
            if enabled[j] is not None:
                xi = fn(xi, params[key][i:i + 1])
        outs.append(xi)
    return torch.cat(outs)


@pytest.mark.parametrize('n', [1, 5])
@pytest.mark.parametrize('kwargs', [
    {},  # all four parts
    dict(contrast=0, hue=0),
    dict(brightness=0, saturation=0, hue=0.2),
])
def test_color_jitter_apply_dense_equals_apply(n, kwargs):
    op = A.ColorJitter(**kwargs)
    x = batch(8, b=n, size=12)
    params = jitter_params(n)
    want = op.apply(x, params)
    dense = op.apply_dense(x, params)
    assert_same(dense, want)
    assert_same(dense, jitter_reference(op, x, params))
    assert not torch.allclose(dense, x)
    single = op.apply_dense(x[0], A.select_params(params, slice(0, 1)))
    assert_same(single, want[0])


def test_color_jitter_apply_dense_does_not_sync(request):
    op = A.ColorJitter()
    x = batch(8, b=5, size=12)
    params = jitter_params(5)
    want = op.apply(x, params)
    request.getfixturevalue('forbid_sync')
    with pytest.raises(HostSync):  # the old batched apply still syncs
        op.apply(x, params)
    assert torch.equal(op.apply_dense(x, params), want)
    op.apply_dense(x[:1], A.select_params(params, slice(0, 1)))
    with pytest.raises(ValueError, match='n equal to the batch size'):
        op.apply_dense(x[:2], params)


def test_crop_and_erasing_apply_dense_single_image():
    x = batch(12, b=1)
    crop = A.RandomResizedCrop(size=CROP)
    erase = A.RandomErasing()
    for seed in range(5):
        p = crop.sample(gen(seed), 1, x.shape[1:])
        torch.testing.assert_close(crop.apply_dense(x, p), crop.apply(x, p),
                                   rtol=0, atol=5e-5)
        p = erase.sample(gen(seed), 1, x.shape[1:])
        assert torch.equal(erase.apply_dense(x, p), erase.apply(x, p))
        assert torch.equal(erase.apply_dense(x[0], p), erase.apply(x[0], p))
    xb = batch(12)
    p = crop.sample(gen(0), B, xb.shape[1:])
    assert torch.equal(crop.apply_dense(xb, p), crop.apply(xb, p))
    with pytest.raises(ValueError, match='boxes'):
        crop.apply_dense(xb[:2], p)
    with pytest.raises(ValueError, match='boxes'):
        erase.apply_dense(xb[:2], erase.sample(gen(0), 3, xb.shape[1:]))


# ------------------------------------------------ sample_plan(sync_free)
@pytest.mark.parametrize('n', [1, B])
def test_sample_plan_sync_free_does_not_sync(request, n):
    aug = SRHAugment(crop_size=CROP)
    request.getfixturevalue('forbid_sync')
    plan = aug.sample_plan(gen(n), n, (3, SIZE, SIZE), sync_free=True)
    assert all(s.params is not None for s in plan)
    assert all(s.mask.shape == (n, ) for s in plan)
    with pytest.raises(HostSync):  # the default reads fire.any() once
        aug.sample_plan(gen(n), n, (3, SIZE, SIZE))


def test_sample_plan_sync_free_same_masks_and_params_when_all_fire():
    """Same generator state: identical fire masks; and where every op fired
    for some sample, the default draws the same params in the same order,
    so the whole plan is identical."""
    aug = SRHAugment(rand_prob=0.5, crop_size=CROP)
    for seed in range(4):
        a = aug.sample_plan(gen(seed), 64, (3, SIZE, SIZE))
        b = aug.sample_plan(gen(seed), 64, (3, SIZE, SIZE), sync_free=True)
        assert all(s.params is not None for s in a)  # all fired somewhere
        for sa, sb in zip(a, b):
            assert torch.equal(sa.mask, sb.mask)
            assert torch.equal(sa.fired, sb.fired)
            assert sa.params.keys() == sb.params.keys()
            for k in sa.params:
                assert torch.equal(sa.params[k], sb.params[k])


def draw_many(aug, sync_free, n=4, draws=600):
    """Per-op fire masks and params of ``draws`` plans of ``n`` samples,
    concatenated over draws (ops that fired nowhere are skipped)."""
    fired = {name: [] for name in ('random_resized_crop', 'color_jitter',
                                   'gaussian_noise')}
    params = {name: [] for name in fired}
    g = gen(123 if sync_free else 321)
    for _ in range(draws):
        for s in aug.sample_plan(g, n, (3, SIZE, SIZE), sync_free=sync_free):
            if s.name in fired:
                fired[s.name].append(s.fired)
                if s.params is not None:
                    params[s.name].append((s.fired, s.params))
    return fired, params


def test_sample_plan_sync_free_same_distributions():
    """Low fire rate and small n, so ops often fire for no sample and the
    two streams really differ; fire rates, the crop boxes and param values
    must still follow the same distributions."""
    from scipy.stats import ks_2samp
    aug = SRHAugment(ops=[dict(type='random_resized_crop', size=CROP),
                          dict(type='color_jitter'),
                          dict(type='gaussian_noise')], rand_prob=0.15)
    fired_f, params_f = draw_many(aug, sync_free=True)
    fired_d, params_d = draw_many(aug, sync_free=False)
    for name in fired_f:
        rate_f = torch.cat(fired_f[name]).float().mean().item()
        rate_d = torch.cat(fired_d[name]).float().mean().item()
        # 2400 Bernoulli(0.15) draws: std of the rate ~0.0073
        assert abs(rate_f - 0.15) < 0.03 and abs(rate_d - 0.15) < 0.03
    # sync_free has params for every plan; the default only where fired
    assert len(params_f['color_jitter']) == 600
    assert len(params_d['color_jitter']) < 600

    def values(params, name, key, where_fired=True):
        out = []
        for fired, p in params[name]:
            v = p[key]
            out.append(v[fired] if where_fired else v[~fired])
        return torch.cat(out)

    # crop: resized boxes where fired, plain CROP x CROP boxes elsewhere
    for params in (params_f, params_d):
        plain = values(params, 'random_resized_crop', 'box', False)
        assert (plain[:, 2:] == CROP).all()
        assert (plain[:, :2] >= 0).all()
        assert (plain[:, :2] <= SIZE - CROP).all()
    for key, col in (('box', 2), ('box', 0), ('brightness', None),
                     ('hue', None), ('std', None)):
        name = {'box': 'random_resized_crop', 'std': 'gaussian_noise'}.get(
            key, 'color_jitter')
        a = values(params_f, name, key)
        b = values(params_d, name, key)
        if col is not None:
            a, b = a[:, col], b[:, col]
        assert len(a) > 200 and len(b) > 200
        assert ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-3, (name, key)
    # the uniform ranges themselves (independent of the default path)
    bright = values(params_f, 'color_jitter', 'brightness')
    assert bright.min() >= 0.8 and bright.max() <= 1.2
    assert abs(bright.mean().item() - 1.0) < 0.01
    std = values(params_f, 'gaussian_noise', 'std')
    assert abs(std.mean().item() - 0.055) < 0.004


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_dense_mode_does_not_sync_on_cuda():
    """Sampling (sync_free) and applying (dense) the DEFAULT ops on CUDA,
    color_jitter included, and a whole dense preprocessor forward, with
    CUDA's sync debug mode set to raise."""
    aug = SRHAugment(rand_prob=0.5, crop_size=CROP)
    x = batch(7).cuda()
    g = torch.Generator(device='cuda').manual_seed(0)
    pre = SRHBatchAugmentPreprocessor(
        augment=dict(rand_prob=0.5, crop_size=CROP), apply_mode='dense',
        mean=[0.5] * 3, std=[0.25] * 3, record=True).cuda()
    raw = torch.randint(0, 12000, (B, 2, SIZE, SIZE),
                        generator=gen(9)).to(torch.uint16).pin_memory()
    pre(dict(inputs=raw, data_samples=None), training=True)  # warm-up
    torch.cuda.synchronize()
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode('error')
    try:
        plans = [aug.sample_plan(g, B, x.shape[1:], sync_free=True)
                 for _ in range(4)]
        outs = [apply_plan(x, p, mode='dense') for p in plans]
        views = pre(dict(inputs=raw, data_samples=None),
                    training=True)['inputs']
    finally:
        torch.cuda.set_sync_debug_mode(old)
    assert any(bool(s.mask.any()) for p in plans for s in p
               if s.name == 'color_jitter')
    for out, p in zip(outs, plans):
        torch.testing.assert_close(out, apply_plan(x, p), rtol=0, atol=1e-6)
    x_unit = pre.to_unit(raw.cuda())
    for view, plan in zip(views, pre.last_plans):
        want = pre.normalize(apply_plan(x_unit, plan))
        torch.testing.assert_close(view, want, rtol=0, atol=4e-6)


# -------------------------------------------------------- preprocessor
def raw_batch(b=B, seed=9):
    return torch.randint(0, 12000, (b, 2, SIZE, SIZE),
                         generator=gen(seed)).to(torch.uint16)


def gather_views(pre, raw):
    """The gather-mode views of ``pre``'s recorded plans, normalised."""
    x = pre.to_unit(raw)
    return [pre.normalize(apply_plan(x, plan, 'gather'))
            for plan in pre.last_plans]


def test_preprocessor_dense_equals_gather():
    """Each mode's views equal the gather application of its own recorded
    plans; dense plans are drawn with sync_free (every op has params)."""
    raw = raw_batch()
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
    for mode in ('gather', 'dense'):
        kinds = set()
        for view, want, plan in zip(outs[mode],
                                    gather_views(pres[mode], raw),
                                    pres[mode].last_plans):
            kinds |= mask_kinds(plan)
            # std 0.25 scales the 1e-6 tolerance of the [0, 1] views by 4
            torch.testing.assert_close(view, want, rtol=0, atol=4e-6)
        assert 'mixed' in kinds
    assert all(s.params is not None for p in pres['dense'].last_plans
               for s in p)
    assert not torch.allclose(outs['dense'][0], outs['dense'][1])


@pytest.mark.parametrize('recipe', ['default', 'published'])
@pytest.mark.parametrize('b', [B, 1])
def test_preprocessor_dense_forward_does_not_sync(b, recipe):
    """The whole training forward (uint16 -> third channel -> 2 dense views
    -> normalise), after one warm-up call that draws the base seed of
    ``seed=None`` (its one ``item()``); the published recipe's resize
    included."""
    pre = SRHBatchAugmentPreprocessor(
        augment=dict(recipe=recipe, rand_prob=0.5, crop_size=CROP),
        apply_mode='dense', record=True, mean=[0.5] * 3, std=[0.25] * 3)
    raw = raw_batch(b)
    pre(dict(inputs=raw, data_samples=None), training=True)  # warm-up
    with host_reads_forbidden():
        views = pre(dict(inputs=raw, data_samples=None),
                    training=True)['inputs']
    assert [tuple(v.shape) for v in views] == [(b, 3, CROP, CROP)] * 2
    # n = 1 crop: grid_sample vs interpolate rounding, times 1 / std
    for view, want in zip(views, gather_views(pre, raw)):
        torch.testing.assert_close(view, want, rtol=0, atol=2e-4)
    gather = SRHBatchAugmentPreprocessor(
        augment=dict(rand_prob=0.5, crop_size=CROP), seed=0)
    with host_reads_forbidden(), pytest.raises(HostSync):
        gather(dict(inputs=raw, data_samples=None), training=True)


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
    path = osp.join(REPO, 'tools', 'benchmarks', 'benchmark_throughput.py')
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
