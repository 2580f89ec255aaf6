"""Apply a sampled plan to one image or a batch, in two modes."""
from typing import Sequence

import torch

from .ops import select_params
from .plan import PlannedOp

#: Modes of :func:`apply_plan`.
APPLY_MODES = ('gather', 'dense')


def apply_plan(img: torch.Tensor, plan: Sequence[PlannedOp],
               mode: str = 'gather') -> torch.Tensor:
    """Apply a sampled plan to ``(C, H, W)`` (``n = 1``) or ``(B, C, H, W)``.

    For each op, the samples in ``mask`` are transformed with their own
    params; the others pass unchanged. ``img`` is not modified. Two modes
    give the same result (up to float rounding, normally bit-exact):

    * ``'gather'`` (default): per op, ``mask.all()`` / ``mask.any()`` and a
      boolean gather/scatter ``x[mask] = op(x[mask])``, so only the chosen
      samples are computed. Each of these reads the mask on the host: on a
      GPU that is a host-device synchronisation (about 4 per op).
    * ``'dense'``: per op with params, ``y = op.apply_dense(x)`` on the
      **whole** batch (params exist for all ``n`` samples whenever the op
      fired for any) and ``x = torch.where(mask, y, x)``; an op that
      changes the spatial size (a crop-first crop or a ``resize``, whose
      masks are all True) gives ``y`` directly. Nothing is read on the
      host, by ``apply_plan`` or by the ops' ``apply_dense``
      (``color_jitter`` computes each of its parts at each order position
      on the whole batch and selects with ``torch.where``; the crop and
      erasing use their batched code also for ``n = 1``), so on a GPU
      applying the plan never synchronises. The cost: every op with params
      runs on every sample (about ``1 / rand_prob`` times the op work,
      ``color_jitter`` about 4 times more again). Results equal
      ``'gather'`` up to float rounding (bit-exact on the CPU for
      ``n > 1``, except that where gather applies the crop to a single
      image, ``n = 1`` or a ``crop_first=False`` crop that fired for one
      sample, it uses ``interpolate`` instead of ``grid_sample``: within
      about 3e-5). Use
      ``sample_plan(..., sync_free=True)`` so that sampling does not
      synchronise either.

    Args:
        img (Tensor): Float image(s) in ``[0, 1]``.
        plan (list[PlannedOp]): From :meth:`SRHAugment.sample_plan` with
            ``n`` equal to the batch size.
        mode (str): ``'gather'`` or ``'dense'``. Defaults to ``'gather'``.

    Returns:
        Tensor: Augmented image(s), same dtype; the spatial size is the crop
        size when the plan holds a crop.

    Raises:
        ValueError: ``mode`` is not ``'gather'`` or ``'dense'``.

    Example:
        >>> from hlss_plugin.augmentation import SRHAugment
        >>> aug = SRHAugment(ops=[dict(type='random_resized_crop', size=8)])
        >>> x = torch.rand(4, 3, 16, 16)
        >>> apply_plan(x, aug.sample_plan(None, 4, x.shape[1:])).shape
        torch.Size([4, 3, 8, 8])
        >>> plan = aug.sample_plan(None, 4, x.shape[1:])
        >>> apply_plan(x, plan, mode='dense').shape
        torch.Size([4, 3, 8, 8])
    """
    if mode not in APPLY_MODES:
        raise ValueError(f'apply_plan: mode must be one of {APPLY_MODES} '
                         f'("dense" avoids host-device syncs on a GPU), got '
                         f'{mode!r}.')
    single = img.ndim == 3
    x = img.unsqueeze(0) if single else img
    if mode == 'dense':
        for step in plan:
            if step.params is None:  # fired for no sample
                continue
            y = step.op.apply_dense(x, step.params)
            if y.shape != x.shape:  # resizes (the crop): mask is all True
                x = y
            else:
                mask = step.mask.to(x.device)
                x = torch.where(mask.view(-1, 1, 1, 1), y, x)
        return x[0] if single else x
    owned = False
    for step in plan:
        if step.params is None:
            continue
        mask = step.mask.to(x.device)
        if bool(mask.all()):
            x = step.op.apply(x, step.params)
            owned = True
        elif bool(mask.any()):
            if not owned:
                x = x.clone()
                owned = True
            x[mask] = step.op.apply(x[mask], select_params(step.params, mask))
    return x[0] if single else x
