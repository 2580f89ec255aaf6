"""The published HLSS view augmentation, written with stock torchvision (v1).

An independent torchvision composition of the training augmentation of the
published HLSS code (github.com/Hasindri/HLSS; ``train_augmentation`` in its
``train_hlss_attr3levels.yaml``, built by its ``get_srh_aug_list`` with the
default ``rand_prob=0.5``), for a ``(3, H, W)`` float tensor:

1. a bicubic ``Resize((224, 224))`` of the whole patch, always;
2. then, in this order, each with probability ``rand_prob``:
   ``RandomHorizontalFlip``, ``RandomVerticalFlip``, Gaussian noise (std
   uniform in 0.01-0.1, clamped to ``[0, 1]``), ``ColorJitter()`` (default
   arguments: it changes nothing), ``RandomAutocontrast``,
   ``RandomSolarize(0.2)``, ``RandomAdjustSharpness(2)``,
   ``GaussianBlur(5, sigma=1)``, ``RandomAffine(10, translate=(0.1, 0.3))``,
   ``RandomResizedCrop(224)``, ``RandomErasing()``.

Resizes are not antialiased, which is what torchvision 0.16 (the published
code's version) did by default for tensors; torchvision >= 0.17 would
antialias the 300 -> 224 resize. The load (:func:`reference_load_srh`)
divides by 65536 like the published code (our ``SRHThirdChannel`` divides by
65535; the difference is below 2e-5 of the range).

It is the baseline of ``tools/benchmarks/benchmark_data.py`` (and
``tools/benchmarks/benchmark_throughput.py``) and a reference for tests;
training uses :class:`~hlss_plugin.augmentation.srh_augment.SRHAugment`, whose
``recipe='published'`` draws the same distribution of views (different
random streams, so not the same views for one seed).
"""
from typing import List

import numpy as np
import torch
from torch import nn
from torchvision import transforms as T

#: Raw SRH units -> ``[0, 1]`` divisor of the published code (2 ** 16).
PUBLISHED_MAX_VALUE = 65536.0


class AddGaussianNoise(nn.Module):
    """``clamp(x + std * N(0, 1), 0, 1)`` with ``std ~ U(min_std, max_std)``.

    (torchvision v1 has no noise transform.)

    Args:
        min_std (float): Defaults to 0.01.
        max_std (float): Defaults to 0.1.

    Example:
        >>> AddGaussianNoise()(torch.zeros(3, 4, 4)).shape
        torch.Size([3, 4, 4])
    """

    def __init__(self, min_std: float = 0.01, max_std: float = 0.1):
        super().__init__()
        self.min_std, self.max_std = min_std, max_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = float(torch.empty(1).uniform_(self.min_std, self.max_std))
        return (x + torch.randn_like(x) * std).clamp(0.0, 1.0)


def build_reference_augment(rand_prob: float = 0.5,
                            size: int = 224) -> T.Compose:
    """The published augmentation of one view of a ``(3, H, W)`` tensor.

    Args:
        rand_prob (float): Probability of each random op. Defaults to 0.5
            (the published default).
        size (int): Size of the initial resize and of the resized crop.
            Defaults to 224.

    Returns:
        torchvision.transforms.Compose: ``(3, H, W)`` -> ``(3, size, size)``.

    Example:
        >>> aug = build_reference_augment()
        >>> aug(torch.rand(3, 300, 300)).shape
        torch.Size([3, 224, 224])
    """
    p = rand_prob
    bicubic = T.InterpolationMode.BICUBIC

    def maybe(op):
        return T.RandomApply([op], p=p)

    return T.Compose([
        T.Resize((size, size), interpolation=bicubic, antialias=False),
        T.RandomHorizontalFlip(p=p),
        T.RandomVerticalFlip(p=p),
        maybe(AddGaussianNoise(0.01, 0.1)),
        maybe(T.ColorJitter()),
        T.RandomAutocontrast(p=p),
        T.RandomSolarize(threshold=0.2, p=p),
        T.RandomAdjustSharpness(sharpness_factor=2, p=p),
        maybe(T.GaussianBlur(kernel_size=5, sigma=1.0)),
        maybe(T.RandomAffine(degrees=10, translate=(0.1, 0.3))),
        maybe(T.RandomResizedCrop(size, antialias=False)),
        T.RandomErasing(p=p),
    ])


def reference_load_srh(path: str, base: float = 5000.0,
                       max_value: float = PUBLISHED_MAX_VALUE
                       ) -> torch.Tensor:
    """Read a raw ``(2, H, W)`` uint16 SRH TIFF and build ``(3, H, W)``.

    ``[CH3 - CH2 + base, CH2, CH3] / max_value`` clamped to ``[0, 1]``,
    written with plain numpy (no validation).

    Example:
        >>> reference_load_srh('patch.tif').shape  # doctest: +SKIP
        torch.Size([3, 300, 300])
    """
    import tifffile
    raw = tifffile.imread(path).astype(np.float32)
    ch2, ch3 = raw[0], raw[1]
    img = np.stack([ch3 - ch2 + base, ch2, ch3]) / max_value
    return torch.from_numpy(np.clip(img, 0.0, 1.0))


class ReferenceSRHPipeline:
    """Load + third channel + ``num_views`` views of the published recipe.

    Args:
        num_views (int): Defaults to 2.
        rand_prob (float): Defaults to 0.5.
        size (int): Defaults to 224.

    Example:
        >>> views = ReferenceSRHPipeline()('patch.tif')  # doctest: +SKIP
        >>> [v.shape for v in views]  # doctest: +SKIP
        [torch.Size([3, 224, 224]), torch.Size([3, 224, 224])]
    """

    def __init__(self, num_views: int = 2, rand_prob: float = 0.5,
                 size: int = 224):
        self.num_views = num_views
        self.augment = build_reference_augment(rand_prob, size)

    def __call__(self, path: str) -> List[torch.Tensor]:
        img = reference_load_srh(path)
        return [self.augment(img) for _ in range(self.num_views)]
