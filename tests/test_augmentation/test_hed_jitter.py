"""HEDJitter and the HED colour deconvolution, against NumPy formulas."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import TRANSFORMS

import hlss_plugin  # noqa: F401  (registers the transforms)
from hlss_plugin.augmentation.hed_jitter import (HEDJitter, hed_jitter,
                                                 hed_to_rgb, rgb_to_hed)

# Ruifrok & Johnston (2001) stain OD vectors (H, E, DAB), unit rows.
STAINS = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105],
                   [0.268, 0.570, 0.776]])
STAINS /= np.linalg.norm(STAINS, axis=1, keepdims=True)


def _compose(conc):
    """RGB (3, H, W) of stain concentrations conc (3, H, W): Beer-Lambert
    I = exp(-sum_s c_s * stain_s)."""
    od = np.einsum('shw,sc->chw', conc, STAINS)
    return np.exp(-od)


def _tissue(seed=0, size=8):
    """An H&E-like image from positive concentrations (no clipping)."""
    rng = np.random.default_rng(seed)
    conc = rng.uniform(0.05, 0.8, (3, size, size))
    conc[2] *= 0.1  # little DAB
    return conc, torch.tensor(_compose(conc), dtype=torch.float64)


def test_rgb_to_hed_recovers_known_concentrations():
    conc, img = _tissue()
    np.testing.assert_allclose(rgb_to_hed(img).numpy(), conc, atol=1e-9)
    np.testing.assert_allclose(hed_to_rgb(torch.tensor(conc)).numpy(),
                               img.numpy(), atol=1e-12)


def test_roundtrip_is_identity_on_float32_images():
    img = torch.rand(2, 3, 16, 16).clamp(min=1e-3)
    assert torch.allclose(hed_to_rgb(rgb_to_hed(img)), img, atol=1e-5)


def test_alpha_on_one_stain_changes_only_that_stain():
    conc, img = _tissue(1)
    out = hed_jitter(img, torch.tensor([1.0, 1.3, 1.0]), torch.zeros(3))
    expected = conc.copy()
    expected[1] *= 1.3
    np.testing.assert_allclose(out.numpy(), _compose(expected), atol=1e-9)
    got = rgb_to_hed(out).numpy()
    np.testing.assert_allclose(got[[0, 2]], conc[[0, 2]], atol=1e-9)


def test_beta_shifts_concentration():
    conc, img = _tissue(2)
    out = hed_jitter(img, torch.ones(3), torch.tensor([0.1, 0.0, 0.0]))
    expected = conc.copy()
    expected[0] += 0.1
    np.testing.assert_allclose(out.numpy(), _compose(expected), atol=1e-9)


def test_zero_jitter_is_identity():
    img = torch.rand(3, 32, 32).clamp(min=1e-3)
    out = HEDJitter(sigma=0, bias=0)(dict(img=img))['img']
    assert out.dtype == img.dtype
    assert torch.allclose(out, img, atol=1e-5)


def test_draws_stay_in_their_ranges():
    conc, img = _tissue(3)
    t = HEDJitter(sigma=0.2, bias=0.0)
    gen = torch.Generator().manual_seed(0)
    ratios = []
    for _ in range(50):
        hed = rgb_to_hed(t.jitter(img, generator=gen)).numpy()
        ratio = hed / conc
        # one alpha per stain and image: the ratio is constant per channel
        assert np.allclose(ratio, ratio[:, :1, :1], atol=1e-6)
        ratios.append(ratio[:, 0, 0])
    ratios = np.array(ratios)
    assert ratios.min() >= 0.8 - 1e-9 and ratios.max() <= 1.2 + 1e-9
    assert ratios.max() - ratios.min() > 0.2  # the range is used
    assert not np.allclose(ratios[:, 0], ratios[:, 1])  # independent stains


def test_output_is_clipped_to_unit_range():
    torch.manual_seed(0)
    img = torch.rand(3, 16, 16)
    out = HEDJitter(sigma=1.0, bias=1.0)(dict(img=img))['img']
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, img)


def test_deterministic_under_seed():
    img = torch.rand(3, 16, 16)
    t = HEDJitter(sigma=0.1, bias=0.1)
    torch.manual_seed(7)
    a = t(dict(img=img))['img']
    torch.manual_seed(7)
    b = t(dict(img=img))['img']
    torch.manual_seed(8)
    c = t(dict(img=img))['img']
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_probability():
    img = torch.rand(3, 8, 8)
    assert HEDJitter(prob=0.0).jitter(img) is img
    torch.manual_seed(0)
    t = HEDJitter(sigma=0.2, bias=0.2, prob=0.3)
    applied = np.mean([t.jitter(img) is not img for _ in range(2000)])
    assert abs(applied - 0.3) < 0.04


def test_built_from_registry():
    t = TRANSFORMS.build(dict(type='HEDJitter', sigma=0.2, bias=0.1))
    assert isinstance(t, HEDJitter) and (t.sigma, t.bias) == (0.2, 0.1)


@pytest.mark.parametrize('kwargs, name', [
    (dict(sigma=-0.1), 'sigma'), (dict(sigma=1.5), 'sigma'),
    (dict(bias='0.1'), 'bias'), (dict(prob=True), 'prob'),
    (dict(prob=2), 'prob')])
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HEDJitter(**kwargs)


@pytest.mark.parametrize('img', [torch.rand(1, 8, 8), torch.rand(8, 8, 3),
                                 np.zeros((3, 8, 8))])
def test_non_rgb_input_raises(img):
    with pytest.raises(ValueError, match='RGB'):
        HEDJitter()(dict(img=img))
