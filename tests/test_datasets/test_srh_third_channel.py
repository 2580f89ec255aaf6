"""SRHThirdChannel against a hand-written numpy formula."""
import numpy as np
import pytest
import torch

from hlss_plugin.augmentation.srh_third_channel import srh_third_channel
from hlss_plugin.datasets.transforms.srh_third_channel import SRHThirdChannel


def numpy_third_channel(raw, base=5000.0, max_value=65535.0):
    """Per pixel: [CH3 - CH2 + base, CH2, CH3] / max_value, chopped."""
    raw = np.asarray(raw, dtype=np.float64)
    out = np.empty(raw.shape[:-3] + (3, ) + raw.shape[-2:])
    out[..., 0, :, :] = raw[..., 1, :, :] - raw[..., 0, :, :] + base
    out[..., 1, :, :] = raw[..., 0, :, :]
    out[..., 2, :, :] = raw[..., 1, :, :]
    return np.minimum(np.maximum(out / max_value, 0.0), 1.0)


def raw_srh(*lead, h=7, w=5):
    rng = np.random.default_rng(1)
    return rng.integers(0, 65536, lead + (2, h, w)).astype(np.uint16)


def test_matches_numpy_formula_and_chops():
    raw = raw_srh()
    # force both clipping ends: red channel negative and above max
    raw[0, 0, 0], raw[1, 0, 0] = 60000, 100  # 100 - 60000 + 5000 < 0
    raw[0, 0, 1], raw[1, 0, 1] = 0, 65000  # 65000 + 5000 > 65535
    out = SRHThirdChannel()(dict(img=torch.from_numpy(
        raw.astype(np.float32))))['img']
    assert out.shape == (3, 7, 5) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), numpy_third_channel(raw),
                               atol=1e-6)
    assert out[0, 0, 0] == 0.0 and out[0, 0, 1] == 1.0
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_custom_base_and_max():
    raw = raw_srh()
    out = srh_third_channel(torch.from_numpy(raw.astype(np.float64)),
                            base=100.0, max_value=30000.0)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(),
                               numpy_third_channel(raw, 100.0, 30000.0),
                               atol=1e-12)


def test_batched_equals_per_sample():
    raw = torch.from_numpy(raw_srh(4).astype(np.float32))
    batched = srh_third_channel(raw)
    assert batched.shape == (4, 3, 7, 5)
    for i in range(4):
        assert torch.equal(batched[i], srh_third_channel(raw[i]))
    np.testing.assert_allclose(batched.numpy(),
                               numpy_third_channel(raw.numpy()), atol=1e-6)


def test_integer_and_numpy_inputs():
    raw = raw_srh()
    a = srh_third_channel(torch.from_numpy(raw.astype(np.int32)))
    assert a.dtype == torch.float32
    b = SRHThirdChannel()(dict(img=raw.astype(np.float32)))['img']
    assert torch.allclose(a, b)


@pytest.mark.parametrize('shape', [(3, 8, 8), (8, 8, 2), (8, 8), (1, 1, 2, 8,
                                                                  8)])
def test_bad_shape_names_expected_and_loader(shape):
    with pytest.raises(ValueError) as info:
        SRHThirdChannel()(dict(img=torch.zeros(shape)))
    msg = str(info.value)
    assert '(2, H, W)' in msg and 'LoadSRHPatch' in msg
    assert str(tuple(shape)) in msg


def test_bad_args():
    with pytest.raises(ValueError, match='max_value'):
        SRHThirdChannel(max_value=0)
    with pytest.raises(ValueError, match='LoadSRHPatch'):
        srh_third_channel([[1, 2]])


def test_registered():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS
    init_default_scope('mmpretrain')
    t = TRANSFORMS.build(dict(type='SRHThirdChannel', base=1.0))
    assert isinstance(t, SRHThirdChannel) and t.base == 1.0
