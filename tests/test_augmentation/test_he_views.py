"""HEView and LightlyView: what the views look like and how often each op
fires."""
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from mmpretrain.registry import TRANSFORMS

import hlss_plugin  # noqa: F401  (registers the transforms)
from hlss_plugin.augmentation.he_views import (LIGHTLY_VIEWS, HEView,
                                               LightlyView, tensor_to_pil)

#: Every op off: the view is the 8-bit quantised patch itself.
OFF = dict(min_scale=1.0, ratio=(1.0, 1.0), hf_prob=0.0, vf_prob=0.0,
           rr_prob=0.0, cj_prob=0.0, blur_prob=0.0, hed=None)


def _patch(size=32, seed=0):
    """A random 8-bit-exact RGB patch in [0, 1] (no two pixels alike)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, size, size), generator=gen).float() / 255


def _same(a, b):
    """Equal up to float rounding (x / 255 vs x * (1 / 255))."""
    return torch.allclose(a, b, atol=1e-6)


def _seed(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)  # Lightly's rotation and blur draw from NumPy


def test_view_shape_dtype_range():
    _seed(0)
    out = HEView(crop_size=24)(dict(img=torch.rand(3, 40, 30)))
    img = out['img']
    assert type(img) is torch.Tensor and img.dtype == torch.float32
    assert img.shape == (3, 24, 24) and out['img_shape'] == (24, 24)
    assert img.min() >= 0 and img.max() <= 1


def test_all_ops_off_is_identity():
    img = _patch()
    out = HEView(crop_size=32, **OFF)(dict(img=img.clone()))['img']
    assert _same(out, img)


def _rate(view, img, changed, draws=400):
    _seed(1)
    return np.mean([changed(view(dict(img=img.clone()))['img'])
                    for _ in range(draws)])


@pytest.mark.parametrize('op, prob, expected', [
    ('hf_prob', 0.3, lambda x: x.flip(-1)),
    ('vf_prob', 0.6, lambda x: x.flip(-2)),
    ('rr_prob', 0.4, lambda x: torch.rot90(x, 1, (-2, -1))),
])
def test_geometric_op_probability(op, prob, expected):
    img = _patch()
    view = HEView(crop_size=32, **{**OFF, op: prob})
    target = expected(img)
    outcomes = []
    _seed(1)
    for _ in range(400):
        out = view(dict(img=img.clone()))['img']
        assert _same(out, target) or _same(out, img)
        outcomes.append(_same(out, target))
    assert abs(np.mean(outcomes) - prob) < 0.08


@pytest.mark.parametrize('op, prob, extra', [
    ('cj_prob', 0.7, {}),
    ('blur_prob', 0.25, dict(sigmas=(1.0, 2.0))),
    ('hed', 0.5, {}),
])
def test_colour_op_probability(op, prob, extra):
    img = _patch()
    value = dict(sigma=0.2, bias=0.2, prob=prob) if op == 'hed' else prob
    view = HEView(crop_size=32, **{**OFF, op: value, **extra})
    rate = _rate(view, img, lambda out: not _same(out, img))
    assert abs(rate - prob) < 0.08


def test_crop_area_follows_min_scale():
    # A patch whose pixel value is its column index: a crop of width w,
    # resized back, spans about w columns of values.
    cols = torch.arange(200.).div(255).expand(3, 200, 200).contiguous()
    view = HEView(crop_size=200, **{**OFF, 'min_scale': 0.25})
    _seed(2)
    spans = []
    for _ in range(100):
        out = view(dict(img=cols.clone()))['img'][0]
        spans.append(float(out.max() - out.min()) * 255 + 1)
    spans = np.array(spans) / 200
    assert spans.min() >= 0.5 - 0.02 and spans.max() <= 1.0 + 1e-6
    assert spans.min() < 0.7  # small crops happen


def test_lightly_views_produce_unnormalised_views():
    img = _patch(48)
    for name in LIGHTLY_VIEWS:
        _seed(0)
        out = LightlyView(name, input_size=32)(dict(img=img.clone()))['img']
        assert type(out) is torch.Tensor and out.dtype == torch.float32
        assert out.shape == (3, 32, 32), name
        assert out.min() >= 0 and out.max() <= 1, name


def test_lightly_view_without_hed_is_lightly_itself():
    import lightly.transforms as lt
    img = _patch(48)
    view = LightlyView('BYOLView2Transform', hed=None, input_size=32)
    _seed(3)
    ours = view(dict(img=img.clone()))['img']
    _seed(3)
    theirs = lt.BYOLView2Transform(input_size=32, normalize=None)(
        tensor_to_pil(img, 'test'))
    assert torch.equal(ours, theirs.as_subclass(torch.Tensor))


def test_in_multiview_pipeline():
    init_default_scope('mmpretrain')
    pipeline = Compose([
        dict(type='MultiView', num_views=[1, 1], transforms=[
            [dict(type='LightlyView', view='BYOLView1Transform',
                  input_size=32)],
            [dict(type='LightlyView', view='BYOLView2Transform',
                  input_size=32)]]),
        dict(type='PackInputs'),
    ])
    out = pipeline(dict(img=_patch(48)))
    assert [tuple(v.shape) for v in out['inputs']] == [(3, 32, 32)] * 2
    out = Compose([dict(type='MultiView', num_views=2, transforms=[
        [dict(type='HEView', crop_size=32)]])])(dict(img=_patch(48)))
    assert [tuple(v.shape) for v in out['img']] == [(3, 32, 32)] * 2


def test_registered():
    assert isinstance(TRANSFORMS.build(dict(type='HEView')), HEView)


@pytest.mark.parametrize('kwargs, name', [
    (dict(crop_size=0), 'crop_size'), (dict(min_scale=0), 'min_scale'),
    (dict(hf_prob=1.5), 'hf_prob'), (dict(cj_hue=0.7), 'cj_hue'),
    (dict(ratio=(2, 1)), 'ratio'), (dict(sigmas=(1,)), 'sigmas'),
    (dict(hed=0.1), 'hed'), (dict(hed=dict(sigma=-1)), 'sigma')])
def test_he_view_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HEView(**kwargs)


def test_lightly_view_bad_arguments():
    with pytest.raises(ValueError, match='view must be one of'):
        LightlyView('DINOTransform')
    with pytest.raises(ValueError, match='normalize'):
        LightlyView(normalize=None)
    with pytest.raises(ValueError, match='cj_nonsense'):
        LightlyView(cj_nonsense=1)


@pytest.mark.parametrize('img', [torch.rand(2, 8, 8),
                                 torch.zeros(3, 8, 8, dtype=torch.uint8)])
def test_wrong_input_raises(img):
    with pytest.raises(ValueError, match='RGB float tensor'):
        HEView()(dict(img=img))
