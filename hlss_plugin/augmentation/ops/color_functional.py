"""Per-sample colour adjustments (torchvision ``adjust_*`` semantics).

Pure functions on ``(B, C, H, W)`` float images in ``[0, 1]`` with one
factor per sample, used by the colour ops.
"""
import torch

from .augment_op import per_sample

#: ITU-R 601-2 luma weights, as in torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def rgb_to_grayscale(img: torch.Tensor) -> torch.Tensor:
    """Luma of ``(..., 3, H, W)`` (or pass-through of 1 channel) -> ``(..., 1,
    H, W)``."""
    if img.shape[-3] == 1:
        return img
    if img.shape[-3] != 3:
        raise ValueError(f'colour ops need 1 or 3 channels (RGB), got '
                         f'{img.shape[-3]}; apply SRHThirdChannel first.')
    r, g, b = img.unbind(dim=-3)
    gray = r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2]
    return gray.unsqueeze(-3)


def blend(img1: torch.Tensor, img2: torch.Tensor,
          ratio: torch.Tensor) -> torch.Tensor:
    """``clamp(ratio * img1 + (1 - ratio) * img2, 0, 1)`` per sample.

    Args:
        img1 (Tensor): ``(B, C, H, W)``.
        img2 (Tensor): Broadcastable to ``img1``.
        ratio (Tensor): ``(B, 1, 1, 1)`` weights of ``img1``.

    Example:
        >>> blend(torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1),
        ...       torch.full((1, 1, 1, 1), 0.25)).item()
        0.25
    """
    return (img1 - img2).mul_(ratio).add_(img2).clamp_(0.0, 1.0)


def adjust_brightness(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(img * factor)``; ``img`` ``(B, C, H, W)``, ``factor`` ``(B,)``.
    """
    return (img * per_sample(factor, img)).clamp_(0.0, 1.0)


def adjust_contrast(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the per-image mean luma; ``factor`` ``(B,)``."""
    mean = rgb_to_grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
    return blend(img, mean, per_sample(factor, img))


def adjust_saturation(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image; ``factor`` ``(B,)``."""
    if img.shape[-3] == 1:
        return img.clone()
    return blend(img, rgb_to_grayscale(img), per_sample(factor, img))


def adjust_hue(img: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of a turn, ``(B,)``) in HSV space.

    Same result as converting to HSV, shifting ``H`` modulo 1 and converting
    back (torchvision's ``adjust_hue``), but fused: with ``V = max`` and
    ``V S = max - min``, output channel ``n`` (5, 3, 1 for R, G, B) is
    ``max - (max - min) clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 (H + shift)) mod 6``.

    Args:
        img (Tensor): ``(B, 3, H, W)`` RGB in ``[0, 1]`` (1 channel: copy).
        shift (Tensor): ``(B,)`` hue shifts in ``[-0.5, 0.5]``.

    Returns:
        Tensor: ``(B, 3, H, W)``.

    Example:
        >>> red = torch.tensor([1., 0., 0.]).view(1, 3, 1, 1)
        >>> adjust_hue(red, torch.tensor([1 / 3])).flatten()  # -> green
        tensor([0., 1., 0.])
    """
    if img.shape[-3] == 1:
        return img.clone()
    if img.shape[-3] != 3:
        raise ValueError(f'hue jitter needs RGB (3 channels), got '
                         f'{img.shape[-3]}; apply SRHThirdChannel first.')
    r, g, b = img.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    # grey pixels (delta 0) have g - b = b - r = r - g = 0, hence hue 0;
    # the clamp only avoids 0 / 0 (its effect on the output is < 1e-12).
    inv = delta.clamp_min(1e-12).reciprocal_()
    h6 = torch.where(maxc == r, g - b,
                     torch.where(maxc == g, (b - r).add_(delta, alpha=2.0),
                                 (r - g).add_(delta, alpha=4.0))).mul_(inv)
    shift6 = shift.to(device=img.device, dtype=img.dtype).view(-1, 1, 1) * 6
    h6.add_(shift6)
    out = torch.empty_like(img)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        k = h6 + n
        k.sub_(torch.floor(k / 6.0).mul_(6.0))  # k mod 6 (faster)
        k = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(maxc, k.mul_(delta), out=out[:, c])
    return out
