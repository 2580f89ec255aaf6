"""SRHBatchAugmentPreprocessor: batched views equal the per-sample path for
fixed parameters, parameter distributions match the per-sample sampler,
conversion / normalisation formulas, uint16 vs float input, seeds, errors
and the uint16 worker pipeline."""
import math

import numpy as np
import pytest
import tifffile
import torch
from mmengine.dataset import Compose, default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.augmentation import ops as A
from hlss_plugin.augmentation import (DEFAULT_OPS, PlannedOp, SRHAugment,
                                     apply_plan)
from hlss_plugin.errors import BadPatchError
from hlss_plugin.models.data_preprocessors import SRHBatchAugmentPreprocessor
from hlss_plugin.models.data_preprocessors import \
    srh_batch_augment_preprocessor as module

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def raw_batch(b=6, h=24, w=24, seed=0):
    """Raw SRH-like ``(B, 2, H, W)`` uint16 (CH3 a bit above CH2)."""
    g = torch.Generator().manual_seed(seed)
    ch2 = torch.randint(500, 9000, (b, 1, h, w), generator=g)
    ch3 = ch2 + torch.randint(-3000, 9000, (b, 1, h, w), generator=g)
    return torch.cat([ch2, ch3.clamp(0, 65535)], 1).to(torch.uint16)


def small_ops(size=16):
    ops = [dict(d) for d in DEFAULT_OPS]
    ops[0]['size'] = size
    return ops


def build(**kwargs):
    kwargs.setdefault('augment', dict(ops=small_ops(), rand_prob=0.5))
    kwargs.setdefault('mean', MEAN)
    kwargs.setdefault('std', STD)
    kwargs.setdefault('seed', 0)
    return SRHBatchAugmentPreprocessor(**kwargs)


def slice_plan(plan, i):
    """The ``n = 1`` plan of sample ``i`` of a batched plan."""
    return [PlannedOp(s.name, s.op, s.mask[i:i + 1],
                      None if s.params is None else A.select_params(
                          s.params, slice(i, i + 1)), s.fired[i:i + 1])
            for s in plan]


def np_unit(raw):
    """Independent numpy third channel: [CH3 - CH2 + 5000, CH2, CH3] / 65535,
    clipped to [0, 1]; ``raw`` ``(2, H, W)``."""
    r = raw.numpy().astype(np.float64)
    img = np.stack([r[1] - r[0] + 5000.0, r[0], r[1]]) / 65535.0
    return torch.from_numpy(np.clip(img, 0, 1)).float()


def normalise(x):
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(
        3, 1, 1)


# --------------------------------------------------- fixed-parameter checks
@pytest.mark.parametrize('augment', [
    dict(ops=small_ops(), rand_prob=0.5),
    dict(recipe='published', crop_size=16)], ids=['default', 'published'])
def test_views_equal_per_sample_pipeline_for_recorded_plans(augment):
    pre = build(augment=augment, record=True, num_views=3)
    raw = raw_batch(6)
    out = pre(dict(inputs=raw, data_samples=None), training=True)
    assert len(out['inputs']) == 3 and len(pre.last_plans) == 3
    fired = set()
    for view, plan in zip(out['inputs'], pre.last_plans):
        assert view.shape == (6, 3, 16, 16) and view.dtype == torch.float32
        for i in range(6):
            fired |= {s.name for s in plan if bool(s.fired[i])}
            # the per-sample path: SRHThirdChannel -> SRHAugment (n = 1
            # plan, the same apply_plan) -> normalise
            single = apply_plan(np_unit(raw[i]), slice_plan(plan, i))
            torch.testing.assert_close(view[i], normalise(single),
                                       atol=1e-4, rtol=0)
    assert len(fired) >= 8  # most ops were exercised


@pytest.mark.parametrize('name', sorted(A.AUGMENT_OPS))
def test_each_op_batched_equals_per_sample(name):
    cfg = (dict(type=name, size=16) if name in ('random_resized_crop',
                                                 'resize') else dict(type=name))
    pre = build(augment=dict(ops=[cfg], base_ops=(), rand_prob=1.0),
                record=True, num_views=1)
    raw = raw_batch(5, h=20, w=20, seed=1)
    view = pre(dict(inputs=raw), training=True)['inputs'][0]
    (plan, ) = pre.last_plans
    assert [s.name for s in plan] == [name]
    assert bool(plan[0].fired.all())
    for i in range(5):
        x = np_unit(raw[i])
        # the op alone with sample i's parameters, (C, H, W) path
        params = A.select_params(plan[0].params, slice(i, i + 1))
        single = plan[0].op.apply(x, params)
        torch.testing.assert_close(view[i], normalise(single), atol=1e-4,
                                   rtol=0)
    if name not in ('autocontrast', 'solarize', 'hflip', 'vflip',
                    'gaussian_blur', 'sharpness', 'resize'):  # fixed
        # per-sample parameters really differ across the batch
        rows = [torch.cat([v[i].flatten().float() for v in
                           plan[0].params.values()]) for i in range(5)]
        assert not all(torch.equal(rows[0], r) for r in rows[1:])


def test_no_ops_gives_the_conversion_formula_and_eval_path():
    pre = build(augment=dict(ops=[], base_ops=()), num_views=2)
    raw = raw_batch(3, h=8, w=10)
    expect = torch.stack([normalise(np_unit(r)) for r in raw])
    views = pre(dict(inputs=raw), training=True)['inputs']
    assert len(views) == 2
    for v in views:
        torch.testing.assert_close(v, expect, atol=1e-5, rtol=0)
    # not training: one tensor, full size, no augmentation even with ops
    pre_aug = build()
    out = pre_aug(dict(inputs=raw, data_samples=['s'] * 3), training=False)
    assert isinstance(out['inputs'], torch.Tensor)
    torch.testing.assert_close(out['inputs'], expect, atol=1e-5, rtol=0)
    assert out['data_samples'] == ['s'] * 3


def test_without_normalisation_views_stay_in_unit_range():
    pre = build(mean=None, std=None)
    views = pre(dict(inputs=raw_batch(8)), training=True)['inputs']
    for v in views:
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0


def test_third_channel_off_divides_by_max_value():
    pre = build(augment=dict(ops=[], base_ops=()), third_channel=False,
                max_value=255.0, mean=[0.5], std=[0.25])
    img = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    out = pre(dict(inputs=img), training=True)['inputs'][0]
    torch.testing.assert_close(out, (img.float() / 255 - 0.5) / 0.25)
    float_in = img.float() / 255
    pre1 = build(augment=dict(ops=[], base_ops=()), third_channel=False,
                 max_value=1.0)
    before = float_in.clone()
    pre1(dict(inputs=float_in), training=True)
    assert torch.equal(float_in, before)  # inputs never modified in place


def test_channels_last_output():
    pre = build(channels_last=True)
    views = pre(dict(inputs=raw_batch(4)), training=True)['inputs']
    for v in views:
        assert v.is_contiguous(memory_format=torch.channels_last)
        assert not v.is_contiguous()
    ref = build(channels_last=False)
    for a, b in zip(views, ref(dict(inputs=raw_batch(4)),
                               training=True)['inputs']):
        assert torch.equal(a, b)


def test_uint16_float_and_list_inputs_give_identical_views():
    raw = raw_batch(5)
    outs = []
    for inputs in (raw, raw.float(), raw.double(), list(raw)):
        pre = build(seed=7)
        outs.append(pre(dict(inputs=inputs), training=True)['inputs'])
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert torch.equal(a, b)


def test_augmentation_ignores_autocast():
    raw = raw_batch(6)
    plain = build(seed=3)(dict(inputs=raw), training=True)['inputs']
    with torch.autocast('cpu', dtype=torch.bfloat16):
        cast = build(seed=3)(dict(inputs=raw), training=True)['inputs']
    for a, b in zip(plain, cast):
        assert b.dtype == torch.float32 and torch.equal(a, b)


def test_seeds_ranks_and_global_rng(monkeypatch):
    raw = raw_batch(6)

    def views(pre):
        return torch.stack(pre(dict(inputs=raw), training=True)['inputs'])

    assert torch.equal(views(build(seed=1)), views(build(seed=1)))
    assert not torch.equal(views(build(seed=1)), views(build(seed=2)))
    pre = build(seed=1)
    first, second = views(pre), views(pre)  # the stream moves on
    assert not torch.equal(first, second)
    # views differ from each other within a batch
    v = views(build(seed=1))
    assert not torch.equal(v[0], v[1])
    monkeypatch.setattr(module, 'get_rank', lambda: 1)
    assert not torch.equal(views(build(seed=1)), first)
    monkeypatch.setattr(module, 'get_rank', lambda: 0)
    # seed=None: drawn from the global RNG (seeded by the Runner)
    torch.manual_seed(5)
    a = views(build(seed=None))
    torch.manual_seed(5)
    assert torch.equal(a, views(build(seed=None)))


# ----------------------------------------------------------- distributions
def ks_ok(a, b, c_alpha=1.95):
    """Two-sample Kolmogorov-Smirnov test at alpha = 0.001."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    d = np.abs(np.searchsorted(a, grid, side='right') / len(a)
               - np.searchsorted(b, grid, side='right') / len(b)).max()
    n, m = len(a), len(b)
    return d <= c_alpha * math.sqrt((n + m) / (n * m)), d


def two_prop_ok(k1, n1, k2, n2, sigmas=4.0):
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n1 + 1 / n2))
    return abs(k1 / n1 - k2 / n2) <= sigmas * se + 1e-9


def collect(plans):
    """Fired counts and the applied parameters of a list of plans."""
    fired, stats = {}, {k: [] for k in ('crop_scale', 'crop_aspect',
                                        'brightness', 'hue', 'noise_std',
                                        'angle', 'erase_area')}
    n = 0
    for plan in plans:
        n += plan[0].mask.shape[0]
        for s in plan:
            fired[s.name] = fired.get(s.name, 0) + int(s.fired.sum())
            if s.params is None or not bool(s.fired.any()):
                continue
            sel = A.select_params(s.params, s.fired)
            if s.name == 'random_resized_crop':
                bh, bw = sel['box'][:, 2].double(), sel['box'][:, 3].double()
                stats['crop_scale'] += (bh * bw / 48**2).tolist()
                stats['crop_aspect'] += (bw / bh).tolist()
            elif s.name == 'color_jitter':
                stats['brightness'] += sel['brightness'].tolist()
                stats['hue'] += sel['hue'].tolist()
            elif s.name == 'gaussian_noise':
                stats['noise_std'] += sel['std'].tolist()
            elif s.name == 'affine':
                stats['angle'] += sel['angle'].tolist()
            elif s.name == 'erasing':
                box = sel['box'][:, 2:].double()
                stats['erase_area'] += (box.prod(1) / 24**2).tolist()
    return n, fired, stats


def test_parameter_distributions_match_per_sample_sampler():
    n = 3000
    # batched: the preprocessor's own draws on a (n, 2, 48, 48) batch
    pre = build(augment=dict(ops=small_ops(24), rand_prob=0.3),
                record=True, num_views=1, seed=11)
    pre(dict(inputs=raw_batch(n, h=48, w=48)), training=True)
    nb, fired_b, stats_b = collect(pre.last_plans)
    # per-sample: SRHAugment's n = 1 plans, as its transform draws them
    aug = SRHAugment(ops=small_ops(24), rand_prob=0.3, seed=12)
    plans = [aug.sample_plan(aug.generator, 1, (3, 48, 48))
             for _ in range(n)]
    ns, fired_s, stats_s = collect(plans)
    assert nb == ns == n and set(fired_b) == set(fired_s)
    for name in fired_b:
        prob = 0.5 if name in ('hflip', 'vflip') else 0.3
        assert two_prop_ok(fired_b[name], n, fired_s[name], n), name
        # and both match the configured probability
        assert abs(fired_b[name] / n - prob) < 4 * math.sqrt(
            prob * (1 - prob) / n), name
    for key in stats_b:
        assert len(stats_b[key]) > 500 and len(stats_s[key]) > 500, key
        ok, d = ks_ok(stats_b[key], stats_s[key])
        assert ok, (key, d)
    # ranges as configured
    # boxes are whole pixels: round(sqrt(a r)) x round(sqrt(a / r)) can lie
    # below a = 0.08 x 48^2 by at most 0.5 (sqrt(a r) + sqrt(a / r)) - 0.25
    a, r = 0.08 * 48 * 48, 4 / 3
    low = (a - 0.5 * math.sqrt(a) * (math.sqrt(r) + 1 / math.sqrt(r))
           + 0.25) / 48**2
    assert low <= min(stats_b['crop_scale']) and max(
        stats_b['crop_scale']) <= 1.0 + 1e-9
    assert min(stats_b['crop_scale']) < 0.09  # the low end is reached
    assert max(abs(a) for a in stats_b['angle']) <= 10.0
    assert all(0.8 <= b <= 1.2 for b in stats_b['brightness'])
    assert all(0.01 <= s <= 0.1 for s in stats_b['noise_std'])
    # the KS check can fail: a shifted range is detected
    shifted = [s * 0.9 for s in stats_s['noise_std']]
    assert not ks_ok(stats_b['noise_std'], shifted)[0]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize('kwargs, match', [
    (dict(num_views=0), 'num_views'),
    (dict(num_views=True), 'num_views'),
    (dict(mean=[0.5, 0.5, 0.5], std=None), 'both mean and std'),
    (dict(mean=[0.5, 0.5], std=[1, 1]), '1 or 3'),
    (dict(std=[0.2, 0.0, 0.2]), '> 0'),
    (dict(max_value=0), 'max_value'),
    (dict(seed=-1), 'seed'),
    (dict(augment=dict(type='CenterCropTensor', size=8)), 'SRHAugment'),
    (dict(augment=dict(seed=3)), 'drop `seed`'),
    (dict(augment=[dict(type='SRHAugment')]), 'augment must be'),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_input_errors():
    pre = build()
    with pytest.raises(ValueError, match='LoadSRHPatchRaw'):
        pre(dict(inputs=torch.rand(2, 3, 8, 8)), training=True)
    with pytest.raises(ValueError, match='remove MultiView'):
        pre(dict(inputs=[torch.rand(2, 2, 8, 8)] * 2), training=True)
    with pytest.raises(ValueError, match='differ in shape'):
        pre(dict(inputs=[torch.rand(2, 8, 8), torch.rand(2, 9, 8)]))
    with pytest.raises(ValueError, match='default_collate'):
        pre([dict(inputs=torch.rand(2, 8, 8))])
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        pre(dict(inputs=torch.rand(2, 8, 8)))


# -------------------------------------------------- worker pipeline + model
def test_uint16_worker_pipeline_matches_float_pipeline(tmp_path):
    init_default_scope('mmpretrain')
    raw = raw_batch(4, h=32, w=32, seed=4)
    items = []
    for i, patch in enumerate(raw):
        path = str(tmp_path / f'p{i}.tif')
        tifffile.imwrite(path, patch.numpy())
        items.append(dict(img_path=path, patient='P0', slide='P0/S0',
                          patient_idx=0, slide_idx=0, sample_idx=i))
    keys = ['patient', 'slide', 'patient_idx', 'slide_idx']
    fast = Compose([dict(type='LoadSRHPatchRaw'),
                    dict(type='CenterCropTensor', size=28),
                    dict(type='PackInputs', algorithm_keys=keys)])
    slow = Compose([dict(type='LoadSRHPatch'),
                    dict(type='CenterCropTensor', size=28),
                    dict(type='PackInputs', algorithm_keys=keys)])
    fast_batch = default_collate([fast(dict(d)) for d in items])
    slow_batch = default_collate([slow(dict(d)) for d in items])
    assert fast_batch['inputs'].dtype == torch.uint16
    assert slow_batch['inputs'].dtype == torch.float32
    assert torch.equal(fast_batch['inputs'].float(), slow_batch['inputs'])
    pre = MODELS.build(dict(type='SRHBatchAugmentPreprocessor',
                            augment=dict(type='SRHAugment', crop_size=16),
                            mean=MEAN, std=STD, seed=0))
    a = pre(fast_batch, training=True)
    pre_b = MODELS.build(dict(type='SRHBatchAugmentPreprocessor',
                              augment=dict(type='SRHAugment', crop_size=16),
                              mean=MEAN, std=STD, seed=0))
    b = pre_b(slow_batch, training=True)
    for x, y in zip(a['inputs'], b['inputs']):
        assert torch.equal(x, y)
    assert [s.slide_idx for s in a['data_samples']] == [0] * 4
    # bad file: the same BadPatchError as LoadSRHPatch
    bad = str(tmp_path / 'bad.tif')
    tifffile.imwrite(bad, np.zeros((8, 8, 2), np.uint16))
    with pytest.raises(BadPatchError, match='channel-first'):
        fast(dict(items[0], img_path=bad))


def test_hlss_train_step_with_preprocessor(tmp_path):
    """The preprocessor feeds HLSS: views per sample, ids, a finite loss."""
    import json
    init_default_scope('mmpretrain')
    levels = {lv: {f'{lv} a{i}': [f'{lv} {i}'] for i in range(3)}
              for lv in ('patch', 'slide', 'patient')}
    attrs = tmp_path / 'attrs.json'
    attrs.write_text(json.dumps({'modality': 't', 'levels': levels}))
    names = [n for lv in levels.values() for n in lv]
    emb = tmp_path / 'emb.pt'
    torch.save({'texts': names, 'embeddings': torch.randn(len(names), 8)},
               str(emb))
    head = dict(attributes=str(attrs), hvc_loss=dict(
        type='HierarchicalSupConLoss', temperature=0.07),
        ha_loss=dict(type='HierarchicalAlignmentLoss', temperature=0.5))
    model = MODELS.build(dict(
        type='HLSS',
        data_preprocessor=dict(type='SRHBatchAugmentPreprocessor',
                               augment=dict(crop_size=16), mean=MEAN,
                               std=STD, channels_last=True, seed=0),
        backbone=dict(type='ResNet', depth=18, base_channels=8,
                      stem_channels=8),
        neck=dict(type='GlobalAveragePooling'), in_channels=64,
        text_tower=dict(type='PrecomputedTextTower', path=str(emb)),
        heads={lv: dict(head) for lv in levels}))
    model.to(memory_format=torch.channels_last)
    from mmpretrain.structures import DataSample
    samples = [DataSample(metainfo=dict(patient_idx=i // 4, slide_idx=i // 2,
                                        sample_idx=i)) for i in range(8)]
    from mmengine.optim import OptimWrapper
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    losses = model.train_step(dict(inputs=raw_batch(8, h=24, w=24),
                                   data_samples=samples), optim)
    assert set(losses) == {'loss'} | {f'loss_{lv}_{t}' for lv in levels
                                      for t in ('hvc', 'ha')}
    assert all(torch.isfinite(v) for v in losses.values())
