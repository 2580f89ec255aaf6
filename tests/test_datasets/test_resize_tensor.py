"""ResizeTensor against torchvision's tensor resize, shapes and errors."""
import pytest
import torch
from mmpretrain.registry import TRANSFORMS
from torchvision.transforms import InterpolationMode, Resize
from torchvision.transforms import functional as TF

import hlss_plugin  # noqa: F401
from hlss_plugin.datasets.transforms import ResizeTensor

MODES = dict(bicubic=InterpolationMode.BICUBIC,
             bilinear=InterpolationMode.BILINEAR)


@pytest.mark.parametrize('interpolation', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('antialias', [False, True])
def test_matches_torchvision_functional_resize(interpolation, antialias):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 300, 300, generator=g)
    for size in (224, (96, 160), (301, 450)):
        hw = (size, size) if isinstance(size, int) else size
        out = ResizeTensor(size, interpolation, antialias)(
            dict(img=img.clone(), img_shape=(300, 300)))
        ref = TF.resize(img, list(hw), interpolation=MODES[interpolation],
                        antialias=antialias)
        assert out['img'].shape == (3, ) + hw
        assert out['img_shape'] == hw
        assert out['img'].dtype == img.dtype
        assert torch.equal(out['img'], ref), (size, interpolation, antialias)


def test_default_is_the_published_eval_view():
    """Resize(size=(224, 224), interpolation=BICUBIC) on a [0, 1] float
    tensor, without antialiasing (torchvision 0.16's tensor default) and
    without clamping the bicubic overshoot."""
    img = torch.zeros(3, 300, 300)
    img[:, :, 150:] = 1.0  # a sharp edge makes bicubic overshoot
    img[0, ::2] = 0.5
    out = ResizeTensor()(dict(img=img))['img']
    ref = Resize(size=(224, 224), interpolation=InterpolationMode.BICUBIC,
                 antialias=False)(img)
    assert torch.equal(out, ref)
    assert out.shape == (3, 224, 224)
    assert out.min() < 0 and out.max() > 1  # not clipped, as published
    antialiased = ResizeTensor(antialias=True)(dict(img=img))['img']
    assert not torch.allclose(out, antialiased)


def test_other_dtypes_and_same_size():
    img = torch.rand(2, 30, 40, dtype=torch.float64)
    out = ResizeTensor((20, 25))(dict(img=img))['img']
    assert out.dtype == torch.float64
    assert torch.equal(out, TF.resize(img, [20, 25],
                                      InterpolationMode.BICUBIC,
                                      antialias=False))
    half = ResizeTensor(16)(dict(img=img.half()))['img']
    assert half.dtype == torch.float16 and half.shape == (2, 16, 16)
    assert torch.allclose(half.float(), ResizeTensor(16)(dict(
        img=img.half().float()))['img'], atol=1e-3)
    same = ResizeTensor((30, 40))(dict(img=img))
    assert same['img'] is img and same['img_shape'] == (30, 40)


def test_registered_and_errors():
    t = TRANSFORMS.build(dict(type='ResizeTensor', size=(8, 6)))
    assert isinstance(t, ResizeTensor) and t.size == (8, 6)
    assert repr(t) == ("ResizeTensor(size=(8, 6), interpolation='bicubic', "
                       "antialias=False)")
    for bad in (0, (3, ), (2, 0), 2.5, True):
        with pytest.raises(ValueError, match='ResizeTensor: size must be'):
            ResizeTensor(bad)
    with pytest.raises(ValueError, match=r"interpolation must be one of "
                       r"\('bilinear', 'bicubic'\), got 'nearest'"):
        ResizeTensor(interpolation='nearest')
    with pytest.raises(ValueError, match='antialias must be True or False'):
        ResizeTensor(antialias=None)
    with pytest.raises(ValueError, match=r'\(C, H, W\) float tensor, got '
                       r'Tensor \(300, 300\)'):
        ResizeTensor()(dict(img=torch.rand(300, 300)))
    with pytest.raises(ValueError, match='torch.uint8'):
        ResizeTensor()(dict(img=torch.zeros(3, 9, 9, dtype=torch.uint8)))
    with pytest.raises(ValueError, match='got ndarray'):
        ResizeTensor()(dict(img=torch.rand(3, 9, 9).numpy()))
