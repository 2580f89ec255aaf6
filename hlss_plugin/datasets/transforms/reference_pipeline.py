"""A per-sample reference pipeline built from stock torchvision (v1) parts.

It mirrors how the published SRH recipes are usually written: a
``transforms.Compose`` of flips and ``RandomApply([op], p=rand_prob)``
around torchvision transforms on a ``(3, H, W)`` float tensor, followed by a
final crop to the training size. It exists **only** as the baseline for
``tools/benchmark_data.py`` and for tests; training uses
:class:`~hlss_plugin.datasets.transforms.srh_augment.SRHAugment`.

The op set, parameters and probabilities equal ``SRHAugment``'s defaults
(:data:`~hlss_plugin.datasets.transforms.srh_augment.DEFAULT_OPS`); the
differences are the order (the resized crop runs last here, first there) and
torchvision's antialiased resize.
"""
from typing import List

import numpy as np
import torch
from torch import nn
from torchvision import transforms as T


class AddGaussianNoise(nn.Module):
    """``clamp(x + N(0, std^2))`` with ``std ~ U(min_std, max_std)``.

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


def build_reference_augment(rand_prob: float = 0.3,
                            size: int = 224) -> T.Compose:
    """The reference augmentation for one view of a ``(3, H, W)`` tensor.

    Args:
        rand_prob (float): Probability of each strong op. Defaults to 0.3.
        size (int): Output size (final random crop). Defaults to 224.

    Returns:
        torchvision.transforms.Compose: ``(3, H, W)`` -> ``(3, size, size)``.

    Example:
        >>> aug = build_reference_augment()
        >>> aug(torch.rand(3, 300, 300)).shape
        torch.Size([3, 224, 224])
    """

    def maybe(op):
        return T.RandomApply([op], p=rand_prob)

    return T.Compose([
        T.RandomHorizontalFlip(p=0.5),
        T.RandomVerticalFlip(p=0.5),
        maybe(AddGaussianNoise(0.01, 0.1)),
        maybe(T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2,
                            hue=0.1)),
        maybe(T.RandomAutocontrast(p=1.0)),
        maybe(T.RandomSolarize(threshold=0.2, p=1.0)),
        maybe(T.RandomAdjustSharpness(sharpness_factor=2.0, p=1.0)),
        maybe(T.GaussianBlur(kernel_size=5, sigma=(1.0, 1.0))),
        maybe(T.RandomErasing(p=1.0, scale=(0.02, 0.33), ratio=(0.3, 3.3))),
        maybe(T.RandomAffine(degrees=10, translate=(0.1, 0.1))),
        maybe(T.RandomResizedCrop(size, scale=(0.08, 1.0))),
        T.RandomCrop(size),
    ])


def reference_load_srh(path: str, base: float = 5000.0,
                       max_value: float = 65535.0) -> torch.Tensor:
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
    """Load + third channel + ``num_views`` reference-augmented views.

    Args:
        num_views (int): Defaults to 2.
        rand_prob (float): Defaults to 0.3.
        size (int): Defaults to 224.

    Example:
        >>> views = ReferenceSRHPipeline()('patch.tif')  # doctest: +SKIP
        >>> [v.shape for v in views]  # doctest: +SKIP
        [torch.Size([3, 224, 224]), torch.Size([3, 224, 224])]
    """

    def __init__(self, num_views: int = 2, rand_prob: float = 0.3,
                 size: int = 224):
        self.num_views = num_views
        self.augment = build_reference_augment(rand_prob, size)

    def __call__(self, path: str) -> List[torch.Tensor]:
        img = reference_load_srh(path)
        return [self.augment(img) for _ in range(self.num_views)]
