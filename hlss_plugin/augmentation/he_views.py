"""Augmented views of H&E patches built from Lightly's transforms.

Two registered transforms turn one loaded patch (``results['img']``, a float
tensor ``(3, H, W)`` in ``[0, 1]`` from ``LoadH5Patch`` / ``LoadPatchImage``)
into one augmented view of the same layout; put them in ``MultiView``:

* :class:`HEView`: the H&E recipe of the TCGA configs: random resized crop,
  horizontal / vertical flips, 90-degree rotation, mild colour jitter,
  Gaussian blur (all ``lightly.transforms`` ops) and :class:`HEDJitter`.
* :class:`LightlyView`: any per-view transform of Lightly by name
  (``'SimCLRViewTransform'``, ``'BYOLView1Transform'``, ...) with its own
  parameters, followed by :class:`HEDJitter`: the baselines' own views.

The patch is converted to an 8-bit PIL image once (Lightly's blur and
solarisation work on PIL images) and back to a float tensor by Lightly's
``ToTensor``; no normalisation here, the model's data preprocessor does it.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from lightly import transforms as lightly_transforms
from lightly.transforms import GaussianBlur, RandomRotate
from lightly.transforms.torchvision_v2_compatibility import \
    torchvision_transforms as T
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from .hed_jitter import HEDJitter

#: Lightly per-view transforms :class:`LightlyView` accepts by name.
LIGHTLY_VIEWS = ('SimCLRViewTransform', 'BYOLView1Transform',
                 'BYOLView2Transform', 'VICRegViewTransform',
                 'SimSiamViewTransform')


def tensor_to_pil(img: torch.Tensor, owner: str) -> Image.Image:
    """``(3, H, W)`` float tensor in ``[0, 1]`` -> 8-bit RGB PIL image.

    Args:
        img (torch.Tensor): The loaded patch.
        owner (str): Transform name for the error message.

    Returns:
        PIL.Image.Image: ``round(255 * img)``, mode ``'RGB'``.

    Example:
        >>> tensor_to_pil(torch.ones(3, 4, 4), 'HEView').getpixel((0, 0))
        (255, 255, 255)
    """
    if not isinstance(img, torch.Tensor) or img.ndim != 3 \
            or img.shape[0] != 3 or not img.is_floating_point():
        raise ValueError(
            f'{owner}: results["img"] must be an RGB float tensor (3, H, W) '
            f'in [0, 1], got {type(img).__name__} '
            f'{tuple(getattr(img, "shape", ()))} '
            f'{getattr(img, "dtype", "")}. Load H&E patches with '
            f'LoadH5Patch or LoadPatchImage first.')
    arr = img.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(np.ascontiguousarray(arr.permute(1, 2, 0).numpy()))


def _build_hed(hed: Optional[dict], owner: str) -> Optional[HEDJitter]:
    if hed is None:
        return None
    if not isinstance(hed, dict):
        raise ValueError(f'{owner}: hed must be a dict of HEDJitter '
                         f'arguments (sigma, bias, prob) or None, got '
                         f'{hed!r}.')
    return HEDJitter(**hed)


def _apply(view, hed: Optional[HEDJitter], results: dict,
           owner: str) -> dict:
    out = view(tensor_to_pil(results['img'], owner))
    out = out.as_subclass(torch.Tensor)  # a plain tensor, not tv_tensors
    if hed is not None:
        out = hed.jitter(out)
    results['img'] = out
    results['img_shape'] = tuple(out.shape[-2:])
    return results


def _prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value <= 1:
        raise ValueError(f'HEView: {name} must be a probability in [0, 1], '
                         f'got {value!r}.')
    return float(value)


def _pair(name: str, value, lowest: float) -> Tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in value) or not lowest <= value[0] <= value[1]:
        raise ValueError(f'HEView: {name} must be a (low, high) pair with '
                         f'{lowest} <= low <= high, got {value!r}.')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class HEView(BaseTransform):
    """One augmented view of an H&E patch (the TCGA configs' recipe).

    In order, each with its own probability:

    1. random resized crop to ``crop_size`` (area ``U(min_scale, 1)`` of the
       patch, aspect ratio in ``ratio``; always),
    2. horizontal flip (``hf_prob``), vertical flip (``vf_prob``) and a
       90-degree rotation (``rr_prob``): together every symmetry of the
       square, as tissue has no orientation,
    3. colour jitter (``cj_prob``; brightness / contrast / saturation / hue
       ``cj_bright`` / ``cj_contrast`` / ``cj_sat`` / ``cj_hue``), milder
       than SimCLR's ImageNet setting and without grey-scale, since stain
       colour carries information in H&E,
    4. Gaussian blur (``blur_prob``, sigma ``U(*sigmas)`` pixels),
    5. :class:`HEDJitter` (``hed``: its arguments; ``None`` turns it off).

    Steps 1-4 are ``lightly.transforms`` ops (torchvision's crop, flips and
    colour jitter through Lightly's compatibility layer, Lightly's
    ``RandomRotate`` and ``GaussianBlur``), as in Lightly's
    ``SimCLRViewTransform``.

    **Required keys:** ``img`` (float tensor ``(3, H, W)`` in ``[0, 1]``).
    **Modified keys:** ``img`` (float32 ``(3, crop_size, crop_size)`` in
    ``[0, 1]``, quantised to 8 bits before the HED jitter), ``img_shape``.

    Args:
        crop_size (int): View size in pixels. Defaults to 224.
        min_scale (float): Smallest crop area, a fraction of the patch.
            Defaults to 0.2.
        ratio (tuple[float, float]): Aspect-ratio range of the crop.
            Defaults to ``(3 / 4, 4 / 3)``.
        hf_prob, vf_prob, rr_prob (float): Flip and rotation
            probabilities. Default to 0.5.
        cj_prob (float): Colour-jitter probability. Defaults to 0.8.
        cj_bright, cj_contrast, cj_sat, cj_hue (float): Colour-jitter
            strengths. Default to 0.2, 0.2, 0.1, 0.02.
        blur_prob (float): Blur probability. Defaults to 0.2.
        sigmas (tuple[float, float]): Blur sigma range. Defaults to
            ``(0.1, 1.0)``.
        hed (dict, optional): :class:`HEDJitter` arguments. Defaults to
            ``dict(sigma=0.05, bias=0.05, prob=1.0)`` ("HED-light").

    Example:
        >>> view = HEView(crop_size=64)
        >>> view(dict(img=torch.rand(3, 96, 96)))['img'].shape
        torch.Size([3, 64, 64])
    """

    def __init__(self,
                 crop_size: int = 224,
                 min_scale: float = 0.2,
                 ratio: Sequence[float] = (3 / 4, 4 / 3),
                 hf_prob: float = 0.5,
                 vf_prob: float = 0.5,
                 rr_prob: float = 0.5,
                 cj_prob: float = 0.8,
                 cj_bright: float = 0.2,
                 cj_contrast: float = 0.2,
                 cj_sat: float = 0.1,
                 cj_hue: float = 0.02,
                 blur_prob: float = 0.2,
                 sigmas: Sequence[float] = (0.1, 1.0),
                 hed: Optional[dict] = dict(sigma=0.05, bias=0.05,
                                            prob=1.0)):
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) \
                or crop_size < 1:
            raise ValueError(f'HEView: crop_size must be a positive int, '
                             f'got {crop_size!r}.')
        if isinstance(min_scale, bool) or not isinstance(
                min_scale, (int, float)) or not 0 < min_scale <= 1:
            raise ValueError(f'HEView: min_scale must be in (0, 1], got '
                             f'{min_scale!r}.')
        for name, value, upper in (('cj_bright', cj_bright, None),
                                   ('cj_contrast', cj_contrast, None),
                                   ('cj_sat', cj_sat, None),
                                   ('cj_hue', cj_hue, 0.5)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or value < 0 or (
                        upper is not None and value > upper):
                raise ValueError(
                    f'HEView: {name} must be a number >= 0'
                    f'{"" if upper is None else f" and <= {upper}"}, got '
                    f'{value!r}.')
        self.crop_size = crop_size
        ratio = _pair('ratio', ratio, 1e-6)
        sigmas = _pair('sigmas', sigmas, 0.0)
        jitter = T.ColorJitter(brightness=cj_bright, contrast=cj_contrast,
                               saturation=cj_sat, hue=cj_hue)
        self.view = T.Compose([
            T.RandomResizedCrop(size=crop_size, scale=(min_scale, 1.0),
                                ratio=ratio),
            T.RandomHorizontalFlip(p=_prob('hf_prob', hf_prob)),
            T.RandomVerticalFlip(p=_prob('vf_prob', vf_prob)),
            RandomRotate(prob=_prob('rr_prob', rr_prob), angle=90),
            T.RandomApply([jitter], p=_prob('cj_prob', cj_prob)),
            GaussianBlur(prob=_prob('blur_prob', blur_prob), sigmas=sigmas),
            T.ToTensor(),
        ])
        self.hed = _build_hed(hed, 'HEView')

    def transform(self, results: dict) -> dict:
        return _apply(self.view, self.hed, results, 'HEView')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'view={self.view}, hed={self.hed})')


@TRANSFORMS.register_module()
class LightlyView(BaseTransform):
    """One view from a Lightly per-view transform, then :class:`HEDJitter`.

    Lets a baseline use its method's own augmentations as Lightly implements
    them (e.g. ``'SimCLRViewTransform'`` for SimCLR; ``'BYOLView1Transform'``
    and ``'BYOLView2Transform'`` for BYOL's two asymmetric views, with
    ``MultiView(num_views=[1, 1], transforms=[[view1], [view2]])``).
    Lightly's normalisation is turned off (``normalize=None``): the model's
    data preprocessor normalises.

    **Required keys:** ``img`` (float tensor ``(3, H, W)`` in ``[0, 1]``).
    **Modified keys:** ``img`` (float32 ``(3, S, S)`` in ``[0, 1]``, ``S``
    the view's ``input_size``), ``img_shape``.

    Args:
        view (str): A name in :data:`LIGHTLY_VIEWS`.
        hed (dict, optional): :class:`HEDJitter` arguments; ``None`` turns
            it off. Defaults to ``dict(sigma=0.05, bias=0.05, prob=1.0)``.
        **kwargs: Arguments of the Lightly transform (``input_size``,
            ``cj_prob``, ``min_scale``, ...); its defaults otherwise.

    Example:
        >>> view = LightlyView('SimCLRViewTransform', input_size=64)
        >>> view(dict(img=torch.rand(3, 96, 96)))['img'].shape
        torch.Size([3, 64, 64])
    """

    def __init__(self,
                 view: str = 'SimCLRViewTransform',
                 hed: Optional[dict] = dict(sigma=0.05, bias=0.05,
                                            prob=1.0),
                 **kwargs):
        if view not in LIGHTLY_VIEWS:
            raise ValueError(f'LightlyView: view must be one of '
                             f'{list(LIGHTLY_VIEWS)}, got {view!r}.')
        if 'normalize' in kwargs:
            raise ValueError(
                'LightlyView: do not pass normalize; views stay in [0, 1] '
                'and the data preprocessor (mean / std) normalises them.')
        try:
            self.view = getattr(lightly_transforms, view)(normalize=None,
                                                          **kwargs)
        except TypeError as err:
            raise ValueError(f'LightlyView: bad arguments {sorted(kwargs)} '
                             f'for lightly.transforms.{view} ({err}).') \
                from err
        self.view_name = view
        self.hed = _build_hed(hed, 'LightlyView')

    def transform(self, results: dict) -> dict:
        return _apply(self.view, self.hed, results, 'LightlyView')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(view={self.view_name!r}, '
                f'hed={self.hed})')
