"""HED stain jitter for H&E images (Tellez et al., 2018 / 2019).

An RGB image is split into haematoxylin (H), eosin (E) and DAB (D) stain
concentrations by colour deconvolution (Ruifrok & Johnston, 2001), each
concentration is scaled and shifted by a random amount, and the result is
mixed back to RGB. This changes the stain colours the way differences in
staining protocol and scanner do, while keeping the tissue structure.

References:
    - Ruifrok & Johnston, "Quantification of histochemical staining by
      color deconvolution", Anal. Quant. Cytol. Histol. 23(4), 2001.
    - Tellez et al., "Whole-slide mitosis detection in H&E breast histology
      using PHH3 as a reference to train distilled stain-invariant
      convolutional networks", IEEE TMI 2018,
      https://arxiv.org/abs/1808.05896
    - Tellez et al., "Quantifying the effects of data augmentation and stain
      color normalization in convolutional neural networks for computational
      pathology", Medical Image Analysis 2019,
      https://arxiv.org/abs/1902.06543
"""
from typing import Optional

import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

#: Optical-density (OD) colour vectors of the three stains, one row each
#: (R, G, B), from Ruifrok & Johnston (2001), Table 1: haematoxylin, eosin,
#: DAB. Rows are normalised to unit length in :data:`STAIN_MATRIX`.
_RUIFROK_STAINS = ((0.650, 0.704, 0.286),
                   (0.072, 0.990, 0.105),
                   (0.268, 0.570, 0.776))
STAIN_MATRIX = torch.nn.functional.normalize(
    torch.tensor(_RUIFROK_STAINS, dtype=torch.float64), dim=1)
#: Smallest intensity used before the logarithm (a black pixel has an
#: infinite optical density).
MIN_INTENSITY = 1e-6


def _check_rgb(img: torch.Tensor, owner: str) -> None:
    if not isinstance(img, torch.Tensor) or img.ndim < 3 \
            or img.shape[-3] != 3:
        raise ValueError(
            f'{owner}: img must be an RGB float tensor of shape (..., 3, H, '
            f'W) in [0, 1], got {type(img).__name__} '
            f'{tuple(getattr(img, "shape", ()))}. Load H&E patches with '
            f'LoadH5Patch / LoadPatchImage (3 channels).')


def rgb_to_hed(img: torch.Tensor) -> torch.Tensor:
    """Stain concentrations of an RGB image by colour deconvolution.

    ``OD = -ln(max(rgb, 1e-6))`` per pixel, and the concentrations ``c``
    solve ``OD = c @ STAIN_MATRIX`` (so ``c = OD @ STAIN_MATRIX^-1``); they
    are not clipped at 0, so :func:`hed_to_rgb` inverts this exactly.

    Args:
        img (torch.Tensor): RGB in ``[0, 1]``, shape ``(..., 3, H, W)``.

    Returns:
        torch.Tensor: Concentrations ``(..., 3, H, W)`` (H, E, D), in
        natural-log optical-density units, dtype of ``img``.

    Example:
        >>> hed = rgb_to_hed(torch.full((3, 2, 2), 0.5))
        >>> hed.shape
        torch.Size([3, 2, 2])
    """
    _check_rgb(img, 'rgb_to_hed')
    od = -torch.log(img.clamp(min=MIN_INTENSITY))
    inverse = torch.linalg.inv(STAIN_MATRIX).to(img)
    return torch.einsum('...chw,cs->...shw', od, inverse)


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """RGB image from stain concentrations (the inverse of
    :func:`rgb_to_hed`), clipped to ``[0, 1]``.

    Args:
        hed (torch.Tensor): Concentrations ``(..., 3, H, W)`` (H, E, D).

    Returns:
        torch.Tensor: RGB ``(..., 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> img = torch.rand(3, 4, 4)
        >>> bool(torch.allclose(hed_to_rgb(rgb_to_hed(img)), img, atol=1e-5))
        True
    """
    _check_rgb(hed, 'hed_to_rgb')
    od = torch.einsum('...shw,sc->...chw', hed, STAIN_MATRIX.to(hed))
    return torch.exp(-od).clamp_(0.0, 1.0)


def hed_jitter(img: torch.Tensor, alpha: torch.Tensor,
               beta: torch.Tensor) -> torch.Tensor:
    """Perturb the stain concentrations: ``c' = alpha * c + beta``.

    Args:
        img (torch.Tensor): RGB in ``[0, 1]``, shape ``(3, H, W)``.
        alpha (torch.Tensor): Per-stain factors ``(3,)`` (H, E, D).
        beta (torch.Tensor): Per-stain shifts ``(3,)`` in natural-log OD
            units.

    Returns:
        torch.Tensor: The jittered RGB image ``(3, H, W)`` in ``[0, 1]``.

    Example:
        >>> img = torch.rand(3, 8, 8)
        >>> out = hed_jitter(img, torch.tensor([1.1, 1., 1.]), torch.zeros(3))
        >>> out.shape
        torch.Size([3, 8, 8])
    """
    hed = rgb_to_hed(img)
    alpha = torch.as_tensor(alpha).to(hed).view(3, 1, 1)
    beta = torch.as_tensor(beta).to(hed).view(3, 1, 1)
    return hed_to_rgb(hed * alpha + beta)


def _check_unit(name: str, value, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value <= upper:
        raise ValueError(f'HEDJitter: {name} must be a number in [0, '
                         f'{upper}], got {value!r}.')
    return float(value)


@TRANSFORMS.register_module()
class HEDJitter(BaseTransform):
    """Random H&E stain jitter in the HED colour space (Tellez et al.).

    Per image, each stain's concentration ``c`` (see :func:`rgb_to_hed`)
    becomes ``alpha * c + beta`` with ``alpha ~ U(1 - sigma, 1 + sigma)``
    and ``beta ~ U(-bias, bias)`` drawn independently for H, E and D, then
    the image is mixed back to RGB and clipped to ``[0, 1]``. Tellez et al.
    (2019) compare a light (ranges of about 0.05) and a strong (about 0.2)
    setting; their concentrations are on another scale, so ``bias`` here,
    in natural-log optical density, is not the same number.
    Draws use ``torch``'s global generator (seed it with
    ``torch.manual_seed``) unless ``generator`` is given to
    :meth:`jitter`.

    **Required keys:** ``img`` (float tensor ``(3, H, W)`` in ``[0, 1]``).
    **Modified keys:** ``img``.

    Args:
        sigma (float): Half-width of the multiplicative range, in
            ``[0, 1]``. Defaults to 0.05.
        bias (float): Half-width of the additive range, in ``[0, 1]``.
            Defaults to 0.05.
        prob (float): Probability of jittering an image. Defaults to 1.0.

    Example:
        >>> t = HEDJitter(sigma=0.05, bias=0.05)
        >>> out = t(dict(img=torch.rand(3, 32, 32)))
        >>> out['img'].shape, float(out['img'].max()) <= 1.0
        (torch.Size([3, 32, 32]), True)
    """

    def __init__(self, sigma: float = 0.05, bias: float = 0.05,
                 prob: float = 1.0):
        self.sigma = _check_unit('sigma', sigma, 1.0)
        self.bias = _check_unit('bias', bias, 1.0)
        self.prob = _check_unit('prob', prob, 1.0)

    def jitter(self, img: torch.Tensor,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Jitter one ``(3, H, W)`` RGB tensor (with probability ``prob``).

        Args:
            img (torch.Tensor): RGB in ``[0, 1]``, shape ``(3, H, W)``.
            generator (torch.Generator, optional): Source of the draws.

        Returns:
            torch.Tensor: ``(3, H, W)`` in ``[0, 1]``; ``img`` itself when
            not applied.
        """
        _check_rgb(img, 'HEDJitter')
        if img.ndim != 3:
            raise ValueError(f'HEDJitter: img must be one image (3, H, W), '
                             f'got shape {tuple(img.shape)}.')
        draws = torch.rand(7, generator=generator, dtype=torch.float64)
        if draws[0] >= self.prob:
            return img
        alpha = 1.0 + self.sigma * (2.0 * draws[1:4] - 1.0)
        beta = self.bias * (2.0 * draws[4:7] - 1.0)
        return hed_jitter(img, alpha, beta)

    def transform(self, results: dict) -> dict:
        results['img'] = self.jitter(results['img'])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(sigma={self.sigma}, '
                f'bias={self.bias}, prob={self.prob})')
