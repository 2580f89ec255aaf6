"""``SRHAugment(recipe='published')``: the published HLSS augmentation.

The published recipe (HLSS code, ``get_srh_aug_list(augs, rand_prob=0.5)``
with ``train_augmentation`` of ``train_hlss_attr3levels.yaml``): a bicubic
resize of the whole patch to 224 x 224, then, in order and each with
probability 0.5, the torchvision transforms listed in :data:`PUBLISHED`.

Checked here: the op list (order, probabilities, parameters); each op
against torchvision's functional with the same sampled parameters; the
parameter samplers against torchvision's ``get_params``; firing frequencies
(binomial) and independence; the resize-first geometry (300 px in, 224 px
views, later ops see 224 px); batched gather / dense plans and the batched
preprocessor against the per-sample path.
"""
import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from hlss_plugin.augmentation import ops as A
from hlss_plugin.augmentation import PlannedOp, SRHAugment, apply_plan
from hlss_plugin.augmentation.reference_pipeline import \
    build_reference_augment
from hlss_plugin.models.data_preprocessors import SRHBatchAugmentPreprocessor

#: The published list as (torchvision transform, its arguments), in order;
#: written from the published config, independently of RECIPES.
PUBLISHED = [
    ('RandomHorizontalFlip', {}),
    ('RandomVerticalFlip', {}),
    ('GaussianNoise', {}),  # the published code's own: std U(0.01, 0.1)
    ('ColorJitter', {}),
    ('RandomAutocontrast', {}),
    ('RandomSolarize', dict(threshold=0.2)),
    ('RandomAdjustSharpness', dict(sharpness_factor=2)),
    ('GaussianBlur', dict(kernel_size=5, sigma=1)),
    ('RandomAffine', dict(degrees=10, translate=(0.1, 0.3))),
    ('RandomResizedCrop', dict(size=224)),
    ('RandomErasing', {}),
]
#: Our op name for each torchvision transform above.
OUR_NAME = dict(RandomHorizontalFlip='hflip', RandomVerticalFlip='vflip',
                GaussianNoise='gaussian_noise', ColorJitter='color_jitter',
                RandomAutocontrast='autocontrast', RandomSolarize='solarize',
                RandomAdjustSharpness='sharpness',
                GaussianBlur='gaussian_blur', RandomAffine='affine',
                RandomResizedCrop='random_resized_crop',
                RandomErasing='erasing')
P = 0.5  # the published rand_prob


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def unit_image(*lead, size=224, seed=0):
    return torch.rand(lead + (3, size, size), generator=gen(seed))


def published_ops():
    """name -> op of the published recipe (at full size)."""
    return {op.name: op for op, _ in SRHAugment(recipe='published').steps}


def binomial_ok(count, n, p, sigmas=4.5):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def ks_ok(a, b, c_alpha=1.95):
    """Two-sample Kolmogorov-Smirnov at about alpha = 0.001."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    d = np.abs(np.searchsorted(a, grid, side='right') / len(a) -
               np.searchsorted(b, grid, side='right') / len(b)).max()
    return d <= c_alpha * math.sqrt((len(a) + len(b)) / (len(a) * len(b)))


# ------------------------------------------------------------ the op list
def test_recipe_lists_the_published_ops_in_order():
    aug = SRHAugment(recipe='published')
    names = [op.name for op, _ in aug.steps]
    assert names == ['resize'] + [OUR_NAME[t] for t, _ in PUBLISHED]
    assert [p for _, p in aug.steps] == [1.0] + [P] * len(PUBLISHED)
    assert aug.rand_prob == P and not aug.crop_first
    ops = published_ops()
    resize = ops['resize']
    assert (resize.size, resize.interpolation, resize.antialias) == (
        (224, 224), 'bicubic', False)
    assert ops['gaussian_noise'].std == (0.01, 0.1)
    assert ops['gaussian_noise'].clip
    jitter = ops['color_jitter']  # ColorJitter(): every part disabled
    assert (jitter.brightness, jitter.contrast, jitter.saturation,
            jitter.hue) == (None, None, None, None)
    assert ops['solarize'].threshold == 0.2
    assert ops['sharpness'].factor == (2.0, 2.0)
    blur = ops['gaussian_blur']
    assert (blur.kernel_size, blur.sigma) == (5, (1.0, 1.0))
    affine = ops['affine']
    assert (affine.degrees, affine.translate, affine.interpolation) == (
        (-10.0, 10.0), (0.1, 0.3), 'nearest')
    crop = ops['random_resized_crop']
    tv_crop = T.RandomResizedCrop(224)  # torchvision's defaults
    assert crop.size == (224, 224)
    assert crop.scale == pytest.approx(tuple(tv_crop.scale))
    assert crop.ratio == pytest.approx(tuple(tv_crop.ratio))
    erase, tv_erase = ops['erasing'], T.RandomErasing()
    assert erase.scale == pytest.approx(tuple(tv_erase.scale))
    assert erase.ratio == pytest.approx(tuple(tv_erase.ratio))
    assert erase.value == tv_erase.value == 0


def test_explicit_arguments_override_the_recipe():
    aug = SRHAugment(recipe='published', rand_prob=0.2)
    assert [p for _, p in aug.steps] == [1.0] + [0.2] * len(PUBLISHED)
    aug = SRHAugment(recipe='published', ops=[dict(type='solarize')])
    assert [op.name for op, _ in aug.steps] == ['resize', 'solarize']
    aug = SRHAugment(recipe='published', crop_size=96)
    ops = {op.name: op for op, _ in aug.steps}
    assert ops['resize'].size == ops['random_resized_crop'].size == (96, 96)
    aug = SRHAugment(recipe='published', crop_first=True)
    assert aug.steps[0][0].name == 'random_resized_crop'
    default = SRHAugment()
    assert (default.recipe, default.rand_prob, default.crop_first) == (
        'default', 0.3, True)
    with pytest.raises(ValueError, match='unknown recipe'):
        SRHAugment(recipe='hlss')
    with pytest.raises(ValueError, match='resize op must run with '
                       'probability 1'):
        SRHAugment(recipe='published', base_prob=0.5)
    # a size-changing op at p < 1 in place is refused when it would resize
    aug = SRHAugment(recipe='published', base_ops=())
    with pytest.raises(ValueError, match='views would differ in size'):
        aug.sample_plan(gen(), 2, (3, 300, 300))


# --------------------------------------------- each op against torchvision
def _params(name, seed):
    ops = published_ops()
    op = ops[name]
    x = unit_image(size=300 if name == 'resize' else 224, seed=seed)
    return op, x, op.sample(gen(seed), 1, x.shape)


def _tv_reference(name, x, params):
    """torchvision (v1 functional) with our sampled parameters."""
    if name == 'resize':
        return TF.resize(x, [224, 224], T.InterpolationMode.BICUBIC,
                         antialias=False)
    if name == 'hflip':
        return TF.hflip(x)
    if name == 'vflip':
        return TF.vflip(x)
    if name == 'color_jitter':
        return T.ColorJitter()(x)
    if name == 'autocontrast':
        return TF.autocontrast(x)
    if name == 'solarize':
        return TF.solarize(x, 0.2)
    if name == 'sharpness':
        return TF.adjust_sharpness(x, float(params['factor']))
    if name == 'gaussian_blur':
        s = float(params['sigma'])
        return TF.gaussian_blur(x, [5, 5], [s, s])
    if name == 'affine':
        tx, ty = (int(v) for v in params['translate'][0].tolist())
        return TF.affine(x, angle=float(params['angle']), translate=[tx, ty],
                         scale=1.0, shear=[0.0, 0.0],
                         interpolation=T.InterpolationMode.NEAREST, fill=0.0)
    if name == 'random_resized_crop':
        t, l, h, w = params['box'][0].tolist()
        return TF.resized_crop(x, t, l, h, w, [224, 224],
                               T.InterpolationMode.BILINEAR, antialias=False)
    if name == 'erasing':
        t, l, h, w = params['box'][0].tolist()
        return TF.erase(x, t, l, h, w, torch.tensor(0.0))
    raise KeyError(name)


EXACT_OPS = ['resize', 'hflip', 'vflip', 'color_jitter', 'autocontrast',
             'solarize', 'sharpness', 'gaussian_blur', 'random_resized_crop',
             'erasing']


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('name', EXACT_OPS)
def test_op_equals_torchvision_with_same_params(name, seed):
    op, x, params = _params(name, seed)
    out = op.apply(x, params)
    ref = _tv_reference(name, x, params)
    assert out.shape == ref.shape == (3, 224, 224)
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=0)
    if name in ('hflip', 'vflip', 'solarize', 'autocontrast', 'erasing'):
        assert not torch.equal(out, x)  # the check has teeth
    if name == 'color_jitter':  # ColorJitter() is the identity
        assert torch.equal(out, x)


def test_resize_is_not_clamped_like_torchvision():
    # bicubic overshoot at sharp edges is kept, as in torchvision
    x = torch.zeros(3, 300, 300)
    x[:, :, 150:] = 1.0
    out = published_ops()['resize'].apply(x, {})
    assert float(out.max()) > 1.0 and float(out.min()) < 0.0
    torch.testing.assert_close(out, TF.resize(
        x, [224, 224], T.InterpolationMode.BICUBIC, antialias=False),
        atol=2e-6, rtol=0)


def test_crop_is_never_downsampled_so_antialias_does_not_matter():
    """On the 224 px image every box is at most 224 px, so torchvision's
    antialias default (off in 0.16, on since 0.17) gives the same crop."""
    op, x, _ = _params('random_resized_crop', 3)
    box = op.sample(gen(3), 64, x.shape)['box']
    assert bool((box[:, 2:] <= 224).all())
    for t, l, h, w in box[:4].tolist():
        params = {'box': torch.tensor([[t, l, h, w]])}
        aa = TF.resized_crop(x, t, l, h, w, [224, 224],
                             T.InterpolationMode.BILINEAR, antialias=True)
        # same weights, another kernel: float rounding only
        torch.testing.assert_close(op.apply(x, params), aa, atol=1e-5,
                                   rtol=0)


@pytest.mark.parametrize('seed', range(4))
def test_affine_equals_torchvision_nearest(seed):
    op, x, params = _params('affine', seed)
    out = op.apply(x, params)
    ref = _tv_reference('affine', x, params)
    # nearest neighbour: a sampling point on a pixel boundary may round
    # either way in the two grid computations; allow a handful of pixels
    differ = (out - ref).abs().amax(0) > 1e-6
    assert float(differ.float().mean()) < 2e-3, float(differ.float().mean())


def test_gaussian_noise_is_the_published_formula():
    op, x, params = _params('gaussian_noise', 0)
    std = float(params['std'])
    assert 0.01 <= std <= 0.1
    z = params['noise'][0] / std  # must be standard normal
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    torch.testing.assert_close(op.apply(x, params),
                               (x + std * z).clamp(0, 1), atol=1e-6, rtol=0)
    stds = op.sample(gen(1), 4000, (3, 2, 2))['std']
    assert float(stds.min()) >= 0.01 and float(stds.max()) <= 0.1
    assert ks_ok(stds.numpy(), np.random.default_rng(0).uniform(
        0.01, 0.1, 4000))


def test_parameter_samplers_match_torchvision_get_params():
    ops = published_ops()
    n = 1500
    torch.manual_seed(0)
    img = torch.zeros(3, 224, 224)
    # affine: angle U(-10, 10), integer shifts up to 0.1 W and 0.3 H
    ours = ops['affine'].sample(gen(0), n, (3, 224, 224))
    tv = [T.RandomAffine.get_params([-10.0, 10.0], [0.1, 0.3], None, None,
                                    [224, 224]) for _ in range(n)]
    assert ks_ok(ours['angle'], [a for a, _, _, _ in tv])
    assert ks_ok(ours['translate'][:, 0], [t[0] for _, t, _, _ in tv])
    assert ks_ok(ours['translate'][:, 1], [t[1] for _, t, _, _ in tv])
    assert int(ours['translate'][:, 1].abs().max()) > 60  # 0.3 * 224
    # resized crop boxes
    box = ops['random_resized_crop'].sample(gen(1), n, (3, 224, 224))['box']
    tv = np.array([T.RandomResizedCrop.get_params(
        img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)], float)
    ours = box.numpy().astype(float)
    for k in range(4):  # top, left, height, width
        assert ks_ok(ours[:, k], tv[:, k]), k
    # erasing boxes (torchvision returns the whole image when none fits)
    box = ops['erasing'].sample(gen(2), n, (3, 224, 224))['box']
    tv = np.array([T.RandomErasing.get_params(
        img, (0.02, 0.33), (0.3, 3.3), [0.0])[:4] for _ in range(n)], float)
    ours = box.numpy().astype(float)
    for k in range(4):
        assert ks_ok(ours[:, k], tv[:, k]), k


# ------------------------------------------------- firing frequencies
def test_each_op_fires_with_probability_one_half_in_order():
    aug = SRHAugment(recipe='published', crop_size=8)
    n = 4000
    plan = aug.sample_plan(gen(11), n, (3, 12, 12))
    assert [s.name for s in plan] == ['resize'] + [
        OUR_NAME[t] for t, _ in PUBLISHED]
    assert bool(plan[0].fired.all())
    fired = torch.stack([s.fired for s in plan[1:]], 1)
    for step, count in zip(plan[1:], fired.sum(0).tolist()):
        assert binomial_ok(count, n, P), (step.name, count)
        assert step.mask is step.fired or torch.equal(step.mask, step.fired)
    # independent: each pair fires together a quarter of the time
    both = (fired.T.float() @ fired.float()).long()
    for i in range(fired.shape[1]):
        for j in range(i + 1, fired.shape[1]):
            assert binomial_ok(int(both[i, j]), n, P * P), (i, j)
    # the check has the power to see p = 0.3 (the old default)
    old = SRHAugment(recipe='published', crop_size=8, rand_prob=0.3)
    counts = [int(s.fired.sum()) for s in
              old.sample_plan(gen(11), n, (3, 12, 12))[1:]]
    assert not any(binomial_ok(c, n, P) for c in counts)


def test_per_sample_transform_fires_each_op_half_the_time():
    aug = SRHAugment(recipe='published', crop_size=8, seed=0, record=True)
    n = 600
    names = [OUR_NAME[t] for t, _ in PUBLISHED]
    counts = dict.fromkeys(['resize'] + names, 0)
    for _ in range(n):
        out = aug(dict(img=torch.rand(3, 12, 12)))
        assert out['img'].shape == (3, 8, 8)
        applied = out['aug_applied']
        # recorded in the published order
        assert applied == [k for k in counts if k in applied]
        for name in applied:
            counts[name] += 1
    assert counts.pop('resize') == n
    for name, count in counts.items():
        assert binomial_ok(count, n, P), (name, count)


# ------------------------------------------------ resize-first geometry
def test_300px_patch_gives_224px_views_resized_first():
    x = unit_image(size=300, seed=5)
    resized = TF.resize(x, [224, 224], T.InterpolationMode.BICUBIC,
                        antialias=False)
    # no random op fires: the view is the bicubic resize of the patch
    plain = SRHAugment(recipe='published', rand_prob=0.0)
    torch.testing.assert_close(plain(dict(img=x))['img'], resized,
                               atol=2e-6, rtol=0)
    aug = SRHAugment(recipe='published', seed=1)
    for _ in range(3):
        out = aug(dict(img=x.clone(), img_shape=(300, 300)))
        assert out['img'].shape == (3, 224, 224)
        assert out['img_shape'] == (224, 224)
    # every later op sees 224 px: noise field, crop and erasing boxes,
    # affine shifts (0.3 of 224, not of 300)
    plan = aug.sample_plan(gen(2), 400, (3, 300, 300), sync_free=True)
    steps = {s.name: s for s in plan}
    assert steps['gaussian_noise'].params['noise'].shape == (400, 3, 224, 224)
    for name in ('random_resized_crop', 'erasing'):
        t, l, h, w = steps[name].params['box'].unbind(1)
        assert int((t + h).max()) <= 224 and int((l + w).max()) <= 224
    shifts = steps['affine'].params['translate'].abs()
    assert int(shifts[:, 0].max()) <= 22 and int(shifts[:, 1].max()) <= 67
    # only the affine op: torchvision's affine of the resized patch
    only_affine = SRHAugment(
        recipe='published',
        ops=[dict(type='affine', degrees=10, translate=(0.1, 0.3))],
        rand_prob=1.0)
    plan = only_affine.sample_plan(gen(3), 1, x.shape)
    ref = _tv_reference('affine', resized, plan[1].params)
    differ = (apply_plan(x, plan) - ref).abs().amax(0) > 1e-5
    assert float(differ.float().mean()) < 2e-3


def test_batched_preprocessor_resizes_300px_patches_to_224():
    raw = torch.randint(500, 12000, (2, 2, 300, 300),
                        generator=gen(4)).to(torch.uint16)
    for mode in ('gather', 'dense'):
        pre = SRHBatchAugmentPreprocessor(
            augment=dict(recipe='published'), seed=0, apply_mode=mode,
            record=True)
        views = pre(dict(inputs=raw, data_samples=None),
                    training=True)['inputs']
        assert [tuple(v.shape) for v in views] == [(2, 3, 224, 224)] * 2
        assert [s.name for s in pre.last_plans[0]][:2] == ['resize', 'hflip']


# --------------------------------------- batched paths vs per-sample
def slice_plan(plan, i):
    return [PlannedOp(s.name, s.op, s.mask[i:i + 1],
                      None if s.params is None else A.select_params(
                          s.params, slice(i, i + 1)), s.fired[i:i + 1])
            for s in plan]


@pytest.mark.parametrize('sync_free, mode', [(False, 'gather'),
                                             (True, 'dense'),
                                             (True, 'gather')])
@pytest.mark.parametrize('seed', range(3))
def test_batched_plan_equals_per_sample_path(seed, sync_free, mode):
    aug = SRHAugment(recipe='published', crop_size=24)
    x = torch.rand(6, 3, 40, 40, generator=gen(100 + seed))
    before = x.clone()
    plan = aug.sample_plan(gen(seed), 6, x.shape[1:], sync_free=sync_free)
    batched = apply_plan(x, plan, mode)
    assert torch.equal(x, before)
    assert batched.shape == (6, 3, 24, 24)
    for i in range(6):
        # the per-sample transform's computation: the n = 1 plan
        single = apply_plan(x[i], slice_plan(plan, i))
        # the n = 1 crop interpolates, the batched one uses grid_sample
        torch.testing.assert_close(batched[i], single, atol=5e-5, rtol=0)


def test_reference_pipeline_is_the_published_list():
    """The torchvision baseline of tools/benchmarks/benchmark_data.py holds the
    published transforms, in order, at p = 0.5."""
    steps = build_reference_augment().transforms
    assert type(steps[0]) is T.Resize
    assert list(steps[0].size) == [224, 224]
    assert steps[0].interpolation == T.InterpolationMode.BICUBIC
    assert steps[0].antialias is False
    inner = []
    for step in steps[1:]:
        if isinstance(step, T.RandomApply):
            assert step.p == P and len(step.transforms) == 1
            inner.append(step.transforms[0])
        else:
            assert step.p == P
            inner.append(step)
    names = [type(t).__name__ for t in inner]
    assert names == [t if t != 'GaussianNoise' else 'AddGaussianNoise'
                     for t, _ in PUBLISHED]
    by_name = dict(zip(names, inner))
    assert by_name['RandomAffine'].translate == (0.1, 0.3)
    assert by_name['RandomAffine'].degrees == [-10.0, 10.0]
    assert by_name['RandomSolarize'].threshold == 0.2
    assert by_name['RandomAdjustSharpness'].sharpness_factor == 2
    assert by_name['GaussianBlur'].sigma == (1.0, 1.0)
    assert by_name['RandomResizedCrop'].size == (224, 224)
    out = build_reference_augment()(unit_image(size=300))
    assert out.shape == (3, 224, 224)
