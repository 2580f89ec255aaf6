"""The op names of ``SRHAugment(ops=[dict(type=name, ...)])`` and a builder.
"""
from typing import Union

from .augment_op import AugmentOp
from .color import ColorJitter, RandomAutocontrast, RandomSolarize
from .crop import RandomResizedCrop
from .erasing import RandomErasing
from .filters import GaussianBlur, RandomSharpness
from .geometric import HorizontalFlip, RandomAffine, Resize, VerticalFlip
from .noise import GaussianNoise


#: Op name -> class, for ``SRHAugment(ops=[dict(type=name, ...)])``.
AUGMENT_OPS = {
    cls.name: cls
    for cls in (Resize, HorizontalFlip, VerticalFlip, GaussianNoise,
                ColorJitter, RandomAutocontrast, RandomSolarize,
                RandomSharpness, GaussianBlur, RandomAffine,
                RandomResizedCrop, RandomErasing)
}


def build_augment_op(cfg: Union[str, dict, AugmentOp]) -> AugmentOp:
    """Build an op from its name, a ``dict(type=name, **kwargs)`` or itself.

    Raises:
        ValueError: Unknown ``type`` (lists the valid names) or bad kwargs.

    Example:
        >>> build_augment_op(dict(type='gaussian_noise', std=0.05)).std
        (0.05, 0.05)
    """
    if isinstance(cfg, AugmentOp):
        return cfg
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'an augmentation op must be a name or a dict with '
                         f'"type" (one of {sorted(AUGMENT_OPS)}), got '
                         f'{cfg!r}.')
    kwargs = dict(cfg)
    name = kwargs.pop('type')
    if name not in AUGMENT_OPS:
        raise ValueError(f'unknown augmentation op {name!r}; valid names: '
                         f'{sorted(AUGMENT_OPS)}.')
    try:
        return AUGMENT_OPS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f'bad arguments for augmentation op {name!r}: '
                         f'{err}. See the docstring of '
                         f'{AUGMENT_OPS[name].__name__}.') from err
