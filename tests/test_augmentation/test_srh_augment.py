"""SRH augmentation: each op against an independent computation, batched vs
per-sample equivalence, firing probabilities and the full mmpretrain
pipeline."""
import colorsys
import math

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from hlss_plugin.augmentation import ops as A
from hlss_plugin.augmentation import (DEFAULT_OPS, PlannedOp, SRHAugment,
                                     apply_plan)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def image(*lead, c=3, h=20, w=24, seed=0):
    return torch.rand(lead + (c, h, w), generator=gen(seed))


def one(x):
    return torch.tensor([x])


# ------------------------------------------------------------ single ops
def test_flips():
    x = image()
    assert torch.equal(A.HorizontalFlip().apply(x, {}), torch.flip(x, [2]))
    assert torch.equal(A.VerticalFlip().apply(x, {}), torch.flip(x, [1]))


def test_gaussian_noise():
    x = image() * 0.5 + 0.25
    op = A.GaussianNoise(std=(0.02, 0.04), clip=False)
    p = op.sample(gen(), 1, x.shape)
    assert torch.equal(op.apply(x, p), x + p['noise'][0])
    assert 0.02 <= float(p['std']) <= 0.04
    big = A.GaussianNoise(std=0.05).sample(gen(), 1, (3, 128, 128))['noise']
    assert abs(float(big.std()) - 0.05) < 0.002
    assert abs(float(big.mean())) < 0.002
    clipped = A.GaussianNoise(std=0.5).apply(
        x, A.GaussianNoise(std=0.5).sample(gen(), 1, x.shape))
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1
    assert torch.equal(clipped, (x + A.GaussianNoise(std=0.5).sample(
        gen(), 1, x.shape)['noise'][0]).clamp(0, 1))


def np_gray(x):
    return 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def test_brightness_contrast_saturation_formulas():
    x = image()
    xn = x.numpy().astype(np.float64)
    f = 1.3
    np.testing.assert_allclose(A.adjust_brightness(x[None], one(f))[0],
                               np.clip(xn * f, 0, 1), atol=1e-6)
    mean = np_gray(xn).mean()
    np.testing.assert_allclose(A.adjust_contrast(x[None], one(f))[0],
                               np.clip(f * xn + (1 - f) * mean, 0, 1),
                               atol=1e-6)
    g = np_gray(xn)[None]
    np.testing.assert_allclose(A.adjust_saturation(x[None], one(0.4))[0],
                               np.clip(0.4 * xn + 0.6 * g, 0, 1), atol=1e-6)


@pytest.mark.parametrize('shift', [-0.5, -0.23, 0.0, 0.1, 0.37])
def test_hue_against_colorsys(shift):
    x = image(h=6, w=7)
    x[:, 0, 0] = 0.0  # black
    x[:, 0, 1] = 0.6  # grey
    out = A.adjust_hue(x[None], one(shift))[0]
    expect = np.empty((3, 6, 7))
    for i in range(6):
        for j in range(7):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
            expect[:, i, j] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
    np.testing.assert_allclose(out.numpy(), expect, atol=2e-6)
    np.testing.assert_allclose(out.numpy(), TF.adjust_hue(x, shift).numpy(),
                               atol=2e-6)


def test_color_jitter_order_and_ranges():
    op = A.ColorJitter(brightness=0.3, contrast=(0.5, 0.9), saturation=0.2,
                       hue=0.1)
    p = op.sample(gen(), 500, (3, 4, 4))
    assert 0.7 <= float(p['brightness'].min()) and float(
        p['brightness'].max()) <= 1.3
    assert 0.5 <= float(p['contrast'].min()) and float(
        p['contrast'].max()) <= 0.9
    assert -0.1 <= float(p['hue'].min()) and float(p['hue'].max()) <= 0.1
    assert torch.equal(p['order'].sort(1).values,
                       torch.arange(4).expand(500, 4))
    assert len({tuple(o) for o in p['order'].tolist()}) == 24
    # a fixed order equals the torchvision functions applied in that order
    x = image()
    tv = (lambda y, f: TF.adjust_brightness(y, f),
          lambda y, f: TF.adjust_contrast(y, f),
          lambda y, f: TF.adjust_saturation(y, f),
          lambda y, f: TF.adjust_hue(y, f))
    factors = dict(brightness=one(1.2), contrast=one(0.7),
                   saturation=one(1.4), hue=one(-0.05))
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        out = op.apply(x, dict(factors, order=torch.tensor([order])))
        ref = x
        for j in order:
            ref = tv[j](ref, float(list(factors.values())[j]))
        torch.testing.assert_close(out, ref, atol=3e-6, rtol=0)


def test_color_jitter_disabled_parts_and_errors():
    op = A.ColorJitter(brightness=0, contrast=0, saturation=0, hue=0)
    x = image()
    out = op.apply(x, op.sample(gen(), 1, x.shape))
    torch.testing.assert_close(out, x)
    assert out.data_ptr() != x.data_ptr()  # a new tensor, never the input
    with pytest.raises(ValueError, match='hue'):
        A.ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match='brightness'):
        A.ColorJitter(brightness=-1)


def test_autocontrast_formula():
    x = image() * 0.5 + 0.1
    x[1] = 0.3  # constant channel stays unchanged
    xn = x.numpy()
    lo = xn.min(axis=(1, 2), keepdims=True)
    hi = xn.max(axis=(1, 2), keepdims=True)
    expect = (xn - lo) / (hi - lo + (hi == lo))
    expect[1] = 0.3
    np.testing.assert_allclose(A.RandomAutocontrast().apply(x, {}), expect,
                               atol=1e-6)


def test_solarize_formula():
    x = image()
    for t in (0.2, 0.5):
        assert torch.equal(A.RandomSolarize(t).apply(x, {}),
                           torch.where(x >= t, 1 - x, x))


def test_sharpness_matches_torchvision():
    x = image()
    for f in (0.0, 0.5, 2.0):
        torch.testing.assert_close(
            A.RandomSharpness().apply(x, {'factor': one(f)}),
            TF.adjust_sharpness(x, f), atol=1e-6, rtol=0)


def test_gaussian_blur_against_numpy_correlation():
    x = image(h=11, w=13)
    k, sigma = 5, 1.3
    t = np.arange(k) - (k - 1) / 2
    k1 = np.exp(-t**2 / (2 * sigma**2))
    k2 = np.outer(k1, k1) / k1.sum()**2
    pad = np.pad(x.numpy().astype(np.float64), ((0, 0), (2, 2), (2, 2)),
                 mode='reflect')
    expect = sum(k2[i, j] * pad[:, i:i + 11, j:j + 13] for i in range(k)
                 for j in range(k))
    out = A.GaussianBlur(k, sigma).apply(x, {'sigma': one(sigma)})
    np.testing.assert_allclose(out.numpy(), expect, atol=1e-6)


def test_affine_geometry():
    x = image(h=16, w=16)
    op = A.RandomAffine()
    # integer shift, zero fill
    shift = torch.tensor([[3.0, -2.0]])
    out = op.apply(x, dict(angle=one(0.0), translate=shift))
    expect = torch.zeros_like(x)
    expect[:, 0:14, 3:] = x[:, 2:16, 0:13]
    assert torch.equal(out, expect)
    # 90 degrees, clockwise like torchvision's affine
    out = op.apply(x, dict(angle=one(90.0), translate=torch.zeros(1, 2)))
    assert torch.equal(out, torch.rot90(x, -1, (1, 2)))
    # general case against torchvision (bilinear)
    bil = A.RandomAffine(interpolation='bilinear')
    y = image(h=15, w=21)
    out = bil.apply(y, dict(angle=one(-23.0), translate=torch.tensor(
        [[2., 1.]])))
    ref = TF.affine(y, angle=-23.0, translate=[2, 1], scale=1.0,
                    shear=[0.0, 0.0],
                    interpolation=TF.InterpolationMode.BILINEAR)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    p = op.sample(gen(), 1000, (3, 50, 100))
    assert float(p['angle'].abs().max()) <= 10
    assert float(p['translate'][:, 0].abs().max()) <= 10
    assert float(p['translate'][:, 1].abs().max()) <= 5
    assert torch.equal(p['translate'], p['translate'].round())


def test_random_resized_crop_equals_crop_then_interpolate():
    op = A.RandomResizedCrop(size=(12, 16), scale=(0.1, 1.0))
    x = image(5, h=30, w=40)
    p = op.sample(gen(), 5, x.shape[1:])
    batched = op.apply(x, p)
    assert batched.shape == (5, 3, 12, 16)
    for i, (t, l, h, w) in enumerate(p['box'].tolist()):
        ref = F.interpolate(x[i:i + 1, :, t:t + h, l:l + w], size=(12, 16),
                            mode='bilinear', align_corners=False)[0]
        torch.testing.assert_close(batched[i], ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            op.apply(x[i], A.select_params(p, slice(i, i + 1))), ref,
            atol=1e-6, rtol=0)


def test_random_resized_crop_boxes():
    h, w = 60, 80
    op = A.RandomResizedCrop(size=24, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    box = op.sample(gen(), 2000, (3, h, w))['box']
    top, left, bh, bw = box.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all())
    assert bool((top + bh <= h).all() and (left + bw <= w).all())
    area = (bh * bw).double() / (h * w)
    assert float(area.min()) > 0.18 and float(area.max()) < 0.63
    aspect = bw.double() / bh.double()
    assert float(aspect.min()) > 0.45 and float(aspect.max()) < 2.2
    plain = op.sample_plain(gen(), 50, (3, h, w))['box']
    assert bool((plain[:, 2:] == 24).all())
    centre = op.sample_plain(gen(), 1, (3, h, w), random_position=False)
    assert centre['box'].tolist() == [[18, 28, 24, 24]]
    x = image(h=h, w=w)
    assert torch.equal(op.apply(x, centre), x[:, 18:42, 28:52])


def test_erasing_zeroes_exactly_the_box():
    op = A.RandomErasing(value=0.0)
    x = image() + 0.1
    out = op.apply(x, {'box': torch.tensor([[2, 3, 5, 7]])})
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 2:7, 3:10] = True
    assert bool((out[mask] == 0).all())
    assert torch.equal(out[~mask], x[~mask])
    box = op.sample(gen(), 2000, (3, 40, 50))['box']
    top, left, bh, bw = box.unbind(1)
    assert bool((bh < 40).all() and (bw < 50).all())
    assert bool((top + bh <= 40).all() and (left + bw <= 50).all())
    area = (bh * bw).double() / 2000
    assert float(area.min()) > 0.01 and float(area.max()) < 0.36


OP_CONFIGS = [
    dict(type='hflip'), dict(type='vflip'), dict(type='gaussian_noise'),
    dict(type='color_jitter', brightness=0.5, contrast=0.5, saturation=0.5,
         hue=0.3),
    dict(type='autocontrast'), dict(type='solarize', threshold=0.5),
    dict(type='sharpness', factor=(0.0, 3.0)),
    dict(type='gaussian_blur', kernel_size=5, sigma=(0.5, 2.0)),
    dict(type='affine', degrees=30, translate=(0.2, 0.2)),
    dict(type='random_resized_crop', size=16), dict(type='erasing'),
    dict(type='resize', size=(14, 18)),
]


def test_every_op_has_a_config():
    assert sorted(c['type'] for c in OP_CONFIGS) == sorted(A.AUGMENT_OPS)


@pytest.mark.parametrize('cfg', OP_CONFIGS, ids=lambda c: c['type'])
def test_batched_apply_equals_per_sample_loop(cfg):
    op = A.build_augment_op(cfg)
    x = image(6, h=20, w=24, seed=3)
    params = op.sample(gen(1), 6, x.shape[1:])
    before = x.clone()
    batched = op.apply(x, params)
    assert torch.equal(x, before)  # input untouched
    assert batched.shape[:2] == (6, 3) and batched.dtype == x.dtype
    for i in range(6):
        single = op.apply(x[i], A.select_params(params, slice(i, i + 1)))
        torch.testing.assert_close(batched[i], single, atol=2e-5, rtol=0)
    out64 = op.apply(x.double(), params)
    assert out64.dtype == torch.float64


def test_build_errors_list_valid_names():
    with pytest.raises(ValueError, match='gaussian_noise'):
        A.build_augment_op(dict(type='gausian_noise'))
    with pytest.raises(ValueError, match='unknown'):
        SRHAugment(ops=[dict(type='rotate90')])
    with pytest.raises(ValueError, match='bad arguments'):
        A.build_augment_op(dict(type='solarize', thresh=0.3))
    with pytest.raises(ValueError, match='odd'):
        A.GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match='rand_prob'):
        SRHAugment(rand_prob=1.5)


# ----------------------------------------------------------- SRHAugment
def binomial_ok(count, n, p, sigmas=4.5):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize('p', [0.3, 0.7])
def test_each_op_fires_with_rand_prob(p):
    small_ops = [dict(d) for d in DEFAULT_OPS]
    small_ops[0]['size'] = 16
    aug = SRHAugment(ops=small_ops, rand_prob=p, seed=0, record=True)
    n = 400
    counts = dict.fromkeys([op.name for op, _ in aug.steps], 0)
    for _ in range(n):
        out = aug(dict(img=torch.rand(3, 24, 24)))
        assert out['img'].shape == (3, 16, 16)
        for name in out['aug_applied']:
            counts[name] += 1
    for name, count in counts.items():
        prob = 0.5 if name in ('hflip', 'vflip') else p
        assert binomial_ok(count, n, prob), (name, count, n * prob)
    # large batched plan: same frequencies
    plan = aug.sample_plan(gen(5), 20000, (3, 24, 24))
    for step in plan:
        prob = 0.5 if step.name in ('hflip', 'vflip') else p
        assert binomial_ok(int(step.fired.sum()), 20000, prob), step.name


def test_probability_extremes_and_per_op_prob():
    x = image(h=24, w=24)
    never = SRHAugment(ops=[dict(type='solarize')], rand_prob=0.0,
                       base_prob=0.0, record=True)
    out = never(dict(img=x.clone()))
    assert out['aug_applied'] == [] and torch.equal(out['img'], x)
    always = SRHAugment(ops=[dict(type='solarize', threshold=0.5)],
                        base_ops=(), rand_prob=1.0, record=True)
    out = always(dict(img=x.clone()))
    assert out['aug_applied'] == ['solarize']
    assert torch.equal(out['img'], torch.where(x >= 0.5, 1 - x, x))
    mixed = SRHAugment(ops=[dict(type='solarize', prob=1.0)], base_ops=(),
                       rand_prob=0.0, record=True)
    assert mixed(dict(img=x.clone()))['aug_applied'] == ['solarize']


def test_crop_runs_first_and_fallback_is_plain_crop():
    aug = SRHAugment(ops=[dict(type='gaussian_blur'),
                          dict(type='random_resized_crop', size=224)],
                     rand_prob=0.0, base_prob=0.0, crop_fallback='center')
    assert [op.name for op, _ in aug.steps] == [
        'random_resized_crop', 'hflip', 'vflip', 'gaussian_blur']
    x = image(h=300, w=300)
    out = aug(dict(img=x, img_shape=(300, 300)))
    assert torch.equal(out['img'], x[:, 38:262, 38:262])
    assert out['img_shape'] == (224, 224)
    with pytest.raises(ValueError, match='at most one'):
        SRHAugment(ops=[dict(type='random_resized_crop')] * 2)


def slice_plan(plan, i):
    return [PlannedOp(s.name, s.op, s.mask[i:i + 1],
                      None if s.params is None else A.select_params(
                          s.params, slice(i, i + 1)), s.fired[i:i + 1])
            for s in plan]


@pytest.mark.parametrize('recipe', ['default', 'published'])
def test_apply_plan_batched_equals_per_sample(recipe):
    # smaller crop / resize for speed; every op at 0.5
    aug = SRHAugment(recipe=recipe, rand_prob=0.5, crop_size=16)
    x = image(8, h=24, w=24)
    before = x.clone()
    plan = aug.sample_plan(gen(2), 8, x.shape[1:])
    batched = apply_plan(x, plan)
    assert torch.equal(x, before)
    assert batched.shape == (8, 3, 16, 16)
    for i in range(8):
        single = apply_plan(x[i], slice_plan(plan, i))
        torch.testing.assert_close(batched[i], single, atol=2e-5, rtol=0)


def test_seed_dtype_and_input_checks():
    x = image(h=40, w=40)
    ops = [dict(type='random_resized_crop', size=32), dict(
        type='gaussian_noise'), dict(type='color_jitter')]
    a = SRHAugment(ops=ops, rand_prob=0.5, seed=7)
    b = SRHAugment(ops=ops, rand_prob=0.5, seed=7)
    c = SRHAugment(ops=ops, rand_prob=0.5, seed=8)
    outs_a = [a(dict(img=x.clone()))['img'] for _ in range(3)]
    outs_b = [b(dict(img=x.clone()))['img'] for _ in range(3)]
    outs_c = [c(dict(img=x.clone()))['img'] for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(outs_a, outs_b))
    assert not all(torch.equal(u, v) for u, v in zip(outs_a, outs_c))
    assert not torch.equal(outs_a[0], outs_a[1])  # views differ
    out = a(dict(img=x.double()))['img']
    assert out.dtype == torch.float64
    with pytest.raises(ValueError, match='SRHThirdChannel'):
        a(dict(img=(x * 255).to(torch.uint8)))
    with pytest.raises(ValueError, match='SRHThirdChannel'):
        a(dict(img=x.numpy()))


def test_reference_pipeline_shapes(tmp_path):
    from hlss_plugin.augmentation.reference_pipeline import \
        ReferenceSRHPipeline
    path = tmp_path / 'p.tif'
    tifffile.imwrite(str(path), np.random.default_rng(0).integers(
        0, 9000, (2, 240, 240), dtype=np.uint16))
    views = ReferenceSRHPipeline(num_views=2, size=224)(str(path))
    assert [tuple(v.shape) for v in views] == [(3, 224, 224)] * 2


def test_full_mmpretrain_pipeline(tmp_path):
    import mmpretrain.datasets.transforms  # noqa: F401 (MultiView, Pack)
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmpretrain.structures import DataSample

    import hlss_plugin.datasets.transforms.loading  # noqa: F401
    import hlss_plugin.datasets.transforms.srh_third_channel  # noqa: F401
    init_default_scope('mmpretrain')
    path = tmp_path / 'patch.tif'
    tifffile.imwrite(str(path), np.random.default_rng(0).integers(
        0, 20000, (2, 300, 300), dtype=np.uint16))
    keys = ['patient', 'slide', 'patient_idx', 'slide_idx']
    pipeline = Compose([
        dict(type='LoadSRHPatch'),
        dict(type='SRHThirdChannel'),
        dict(type='MultiView', num_views=2,
             transforms=[[dict(type='SRHAugment', rand_prob=0.5)]]),
        dict(type='PackInputs', algorithm_keys=keys),
    ])
    out = pipeline(dict(img_path=str(path), patient='P1', slide='P1/S2',
                        patient_idx=3, slide_idx=5, gt_label=1))
    views = out['inputs']
    assert isinstance(views, list) and len(views) == 2
    for v in views:
        assert v.shape == (3, 224, 224) and v.dtype == torch.float32
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    sample = out['data_samples']
    assert isinstance(sample, DataSample)
    assert (sample.patient, sample.slide) == ('P1', 'P1/S2')
    assert (sample.patient_idx, sample.slide_idx) == (3, 5)
    assert sample.gt_label.tolist() == [1]
    assert sample.img_path == str(path)


def test_crop_size_overrides_only_the_crop():
    aug = SRHAugment(crop_size=96, seed=0)
    out = aug(dict(img=torch.rand(3, 300, 300)))
    assert out['img'].shape == (3, 96, 96)
    # every default op is still there
    assert len(aug.steps) == len(DEFAULT_OPS) + 2
    with pytest.raises(ValueError, match='crop_size needs a '
                       'random_resized_crop'):
        SRHAugment(ops=[dict(type='solarize')], crop_size=96)
    with pytest.raises(ValueError, match='crop_size must be a positive int'):
        SRHAugment(crop_size=0)
