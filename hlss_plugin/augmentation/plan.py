"""Augmentation plans: which ops fire for each sample, with their params.

A plan is a list of :class:`PlannedOp`, one per op of an op list, drawn
for ``n`` samples at once by :func:`sample_plan` from one generator (the
generator is the whole random stream: the same generator state gives the
same plan). :func:`~hlss_plugin.augmentation.apply_plan.apply_plan`
applies it. The per-sample transform
(:class:`~hlss_plugin.augmentation.srh_augment.SRHAugment`) draws with
``n = 1``, the batched preprocessor with ``n = B`` and a device generator.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from .ops import AugmentOp, Params, RandomResizedCrop

#: ``(op, probability)`` pairs, in the order they run.
Steps = Sequence[Tuple[AugmentOp, float]]

#: Positions of the plain crop taken where a crop-first resized crop does
#: not fire.
CROP_FALLBACKS = ('random', 'center')


@dataclass
class PlannedOp:
    """One op of a sampled augmentation plan for ``n`` samples.

    Attributes:
        name (str): Op name.
        op (AugmentOp): The op.
        mask (Tensor): ``(n,)`` bool, samples the op is applied to.
        params (dict | None): Params for all ``n`` samples (``None`` when
            ``mask`` is all False; never ``None`` in a plan drawn with
            ``sync_free=True``).
        fired (Tensor): ``(n,)`` bool, samples where the op counts as
            applied (equal to ``mask``, except for the crop of a
            ``crop_first`` plan, which always runs but only counts where the
            *resized* crop was drawn).
    """

    name: str
    op: AugmentOp
    mask: torch.Tensor
    params: Optional[Params]
    fired: torch.Tensor


def sample_plan(steps: Steps,
                generator: Optional[torch.Generator],
                n: int,
                shape: Sequence[int],
                crop_first: bool = False,
                crop_fallback: str = 'random',
                sync_free: bool = False,
                probs: Optional[torch.Tensor] = None) -> List[PlannedOp]:
    """Draw which of ``steps`` fire and their params for ``n`` samples.

    One ``(n, len(steps))`` uniform draw decides the fire masks (``u <
    prob``); then each op that fired for some sample draws its params, in
    step order. With ``crop_first``, a ``random_resized_crop`` step always
    runs (mask all True): resized boxes where it fired, plain
    ``size`` boxes (``crop_fallback`` position) elsewhere. See
    :meth:`SRHAugment.sample_plan
    <hlss_plugin.augmentation.srh_augment.SRHAugment.sample_plan>` for
    ``sync_free`` and the random stream.

    Args:
        steps (Sequence[tuple[AugmentOp, float]]): Ops and probabilities in
            run order (a crop-first crop already moved to the front).
        generator (torch.Generator, optional): Source of randomness (its
            device is where params are created); ``None`` for the global CPU
            generator.
        n (int): Number of samples.
        shape (Sequence[int]): Input ``(C, H, W)``.
        crop_first (bool): Treat ``random_resized_crop`` steps as the
            crop-first crop. Defaults to False.
        crop_fallback (str): ``'random'`` or ``'center'`` position of the
            plain crop. Defaults to ``'random'``.
        sync_free (bool): Never read the device. Defaults to False.
        probs (Tensor, optional): ``(len(steps),)`` float32 probabilities
            (a cached copy of the step probabilities). Defaults to None
            (built from ``steps``).

    Returns:
        list[PlannedOp]: One entry per step.

    Raises:
        ValueError: An op that changes the spatial size fires with
            probability below 1 (views would differ in size).

    Example:
        >>> from hlss_plugin.augmentation.ops import HorizontalFlip
        >>> plan = sample_plan([(HorizontalFlip(), 0.5)], None, 4, (3, 8, 8))
        >>> plan[0].mask.shape
        torch.Size([4])
    """
    device = generator.device if generator is not None else None
    shape = tuple(shape)
    if probs is None:
        probs = torch.tensor([p for _, p in steps])
    u = torch.rand(n, len(steps), generator=generator, device=device)
    if sync_free:
        # compare with Python floats: no (blocking) copy of the probs to
        # the device; same float32 comparison, same masks
        fire = torch.stack([u[:, j] < p for j, (_, p) in enumerate(steps)],
                           1)
        fire_any = [True] * len(steps)
    else:
        probs = probs if device is None else probs.to(device)
        fire = u < probs
        fire_any = fire.any(dim=0).tolist()  # one sync for all ops
    plan = []
    for j, (op, prob) in enumerate(steps):
        mask = fire[:, j]
        if crop_first and isinstance(op, RandomResizedCrop):
            params = _crop_params(op, generator, n, shape, mask,
                                  fire_any[j], sync_free, crop_fallback)
            plan.append(PlannedOp(op.name, op, torch.ones_like(mask),
                                  params, mask))
        else:
            if prob < 1.0 and tuple(op.output_shape(shape)) != shape:
                raise ValueError(
                    f'SRHAugment: {op.name} would turn {shape} images '
                    f'into {tuple(op.output_shape(shape))} but fires '
                    f'with probability {prob}, so views would differ '
                    f'in size. Resize to its size before it (e.g. '
                    f'recipe="published" with crop_size), give it prob '
                    f'1.0, or use crop_first=True.')
            params = (op.sample(generator, n, shape) if fire_any[j] else
                      None)
            plan.append(PlannedOp(op.name, op, mask, params, mask))
        shape = tuple(op.output_shape(shape))
    return plan


def _crop_params(op: RandomResizedCrop, generator, n, shape,
                 resized: torch.Tensor, any_resized: bool,
                 sync_free: bool = False,
                 crop_fallback: str = 'random') -> Params:
    """Resized-crop boxes where ``resized``, plain crops elsewhere
    (``sync_free``: always both, combined on the device)."""
    random_pos = crop_fallback == 'random'
    if not sync_free and (n == 1 or not any_resized):
        return (op.sample(generator, n, shape) if any_resized else
                op.sample_plain(generator, n, shape, random_pos))
    box = op.sample(generator, n, shape)['box']
    plain = op.sample_plain(generator, n, shape, random_pos)['box']
    return {'box': torch.where(resized.view(-1, 1), box, plain)}
