"""SRH augmentation ops with explicit per-sample parameters.

Each op is split in two so that the per-sample data pipeline (CPU) and a
later batched GPU data preprocessor run the *same* code:

* ``sample(generator, n, shape) -> params``: draws the random parameters of
  ``n`` samples as a dict of tensors whose first dimension is ``n`` (on the
  generator's device). ``shape`` is the ``(C, H, W)`` of the images the op
  will see.
* ``apply(img, params) -> Tensor``: deterministic given ``params``; works on
  a float image ``(C, H, W)`` (with ``n == 1`` params) or a batch
  ``(B, C, H, W)`` (with ``n == B`` params, one row per sample). ``apply``
  never modifies ``img`` in place and keeps its dtype and device.
* ``apply_dense(img, params) -> Tensor``: the same result without reading
  any tensor on the host (no GPU sync; used by ``apply_plan``'s dense
  mode). Defaults to ``apply``.

Whether an op fires at all (probability ``rand_prob``) is decided by the
caller (:mod:`~hlss_plugin.augmentation.plan`); use
:func:`select_params` to restrict params to the chosen samples.

All images are expected in ``[0, 1]`` (after ``SRHThirdChannel``). Colour
ops follow torchvision's ``ColorJitter`` / ``adjust_*`` semantics for float
images, but accept per-sample factors.

Lightly's image transforms are PIL-based and draw their randomness inside
``__call__``, so they cannot be reused here; the ops below are plain torch.

Op names (for ``SRHAugment(ops=[dict(type=name, ...)])``):
``resize``, ``hflip``, ``vflip``, ``gaussian_noise``, ``color_jitter``,
``autocontrast``, ``solarize``, ``sharpness``, ``gaussian_blur``, ``affine``,
``random_resized_crop``, ``erasing``.
"""
from .augment_op import AugmentOp, Params, select_params
from .color import ColorJitter, RandomAutocontrast, RandomSolarize
from .color_functional import (GRAY_WEIGHTS, adjust_brightness,
                               adjust_contrast, adjust_hue, adjust_saturation,
                               rgb_to_grayscale)
from .crop import RandomResizedCrop
from .erasing import RandomErasing
from .filters import GaussianBlur, RandomSharpness
from .geometric import HorizontalFlip, RandomAffine, Resize, VerticalFlip
from .noise import GaussianNoise
from .op_args import Range
from .op_builder import AUGMENT_OPS, build_augment_op

__all__ = [
    'AUGMENT_OPS', 'AugmentOp', 'ColorJitter', 'GRAY_WEIGHTS', 'GaussianBlur',
    'GaussianNoise', 'HorizontalFlip', 'Params', 'RandomAffine',
    'RandomAutocontrast', 'RandomErasing', 'RandomResizedCrop',
    'RandomSharpness', 'RandomSolarize', 'Range', 'Resize', 'VerticalFlip',
    'adjust_brightness', 'adjust_contrast', 'adjust_hue', 'adjust_saturation',
    'build_augment_op', 'rgb_to_grayscale', 'select_params'
]
