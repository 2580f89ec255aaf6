"""The SRH 3-channel image ``[CH3 - CH2, CH2, CH3]`` ("min-max chop").

A pure tensor function shared by the per-sample ``SRHThirdChannel``
transform (:mod:`hlss_plugin.datasets.transforms.srh_third_channel`) and the
batched ``SRHBatchAugmentPreprocessor``.
"""
import torch


def srh_third_channel(img: torch.Tensor,
                      base: float = 5000.0,
                      max_value: float = 65535.0) -> torch.Tensor:
    """Raw ``[CH2, CH3]`` SRH -> ``[CH3 - CH2 + base, CH2, CH3] / max_value``.

    The result is clamped to ``[0, 1]`` (the "min-max chop"). The red channel
    ``CH3 - CH2`` highlights protein-rich (nuclear) structure; ``base`` lifts
    it so that slightly negative differences are not cut to zero.

    Args:
        img (Tensor): Raw intensities, shape ``(2, H, W)`` or ``(B, 2, H, W)``
            with channel order ``[CH2, CH3]``. Integer tensors are converted
            to float32; float tensors keep their dtype.
        base (float): Offset added to ``CH3 - CH2``. Defaults to 5000.
        max_value (float): Divisor mapping raw units to ``[0, 1]``. Defaults
            to 65535 (full uint16 range).

    Returns:
        Tensor: Shape ``(3, H, W)`` or ``(B, 3, H, W)``, values in ``[0, 1]``.

    Example:
        >>> raw = torch.tensor([[[1000.]], [[4000.]]])  # (2, 1, 1)
        >>> srh_third_channel(raw).flatten() * 65535
        tensor([8000., 1000., 4000.])
    """
    if not isinstance(img, torch.Tensor):
        raise ValueError(f'srh_third_channel expects a torch.Tensor, got '
                         f'{type(img).__name__}. Load patches with '
                         f'LoadSRHPatch.')
    if img.ndim not in (3, 4) or img.shape[-3] != 2:
        raise ValueError(
            f'srh_third_channel expects raw SRH of shape (2, H, W) or '
            f'(B, 2, H, W) with channels [CH2, CH3]; got shape '
            f'{tuple(img.shape)}. Load patches with LoadSRHPatch (or '
            f'LoadPatchImage for SRH TIFFs in a manifest), and put '
            f'SRHThirdChannel before any other transform.')
    if max_value <= 0:
        raise ValueError(f'max_value must be > 0, got {max_value}.')
    if not img.is_floating_point():
        img = img.float()
    ch2, ch3 = img[..., 0:1, :, :], img[..., 1:2, :, :]
    out = torch.empty(img.shape[:-3] + (3, ) + img.shape[-2:],
                      dtype=img.dtype, device=img.device)
    torch.sub(ch3, ch2, out=out[..., 0:1, :, :])
    out[..., 0:1, :, :].add_(base)
    out[..., 1:3, :, :].copy_(img)
    return out.div_(max_value).clamp_(0.0, 1.0)
