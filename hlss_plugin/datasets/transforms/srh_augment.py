"""``SRHAugment``: the HiDisc/HLSS-style SRH augmentation as one transform.

Randomness is split from computation (see
:mod:`~hlss_plugin.datasets.transforms.augment_ops`):
:meth:`SRHAugment.sample_plan` draws which ops fire and their parameters for
``n`` samples, :func:`apply_plan` applies such a plan to one image
``(C, H, W)`` or a batch ``(B, C, H, W)``. The per-sample pipeline uses
``n = 1``; a batched GPU data preprocessor can call the same two functions
with ``n = B`` and a CUDA generator.

:data:`RECIPES` names the op lists: ``'default'`` (this plugin's, crop
first, :data:`DEFAULT_OPS`) and ``'published'`` (the published HLSS recipe:
bicubic resize to 224, then :data:`PUBLISHED_OPS` in order, each at 0.5).
"""
import numbers
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .augment_ops import (AUGMENT_OPS, AugmentOp, Params, RandomResizedCrop,
                          Resize, build_augment_op, select_params)

#: Strong ops of the ``'default'`` recipe (each fires with ``rand_prob``,
#: 0.3), in the order they run, after the flips; the resized crop is moved
#: first (see :class:`SRHAugment`).
DEFAULT_OPS = (
    dict(type='random_resized_crop', size=224, scale=(0.08, 1.0)),
    dict(type='gaussian_noise', std=(0.01, 0.1)),
    dict(type='color_jitter', brightness=0.2, contrast=0.2, saturation=0.2,
         hue=0.1),
    dict(type='autocontrast'),
    dict(type='solarize', threshold=0.2),
    dict(type='sharpness', factor=2.0),
    dict(type='gaussian_blur', kernel_size=5, sigma=(1.0, 1.0)),
    dict(type='erasing', scale=(0.02, 0.33), ratio=(0.3, 3.3)),
    dict(type='affine', degrees=10.0, translate=(0.1, 0.1)),
)

#: Strong ops of the ``'published'`` recipe: the training augmentation of
#: the published HLSS code (``train_augmentation`` of its
#: ``train_hlss_attr3levels.yaml``, each op applied with probability
#: ``rand_prob`` = 0.5, the default of its ``get_srh_aug_list``), in its
#: order, with torchvision's default arguments where it gives none:
#: ``color_jitter`` is torchvision's ``ColorJitter()``, which changes
#: nothing; the noise std is U(0.01, 0.1); ``random_resized_crop`` and
#: ``erasing`` use torchvision's default scale / ratio.
PUBLISHED_OPS = (
    dict(type='hflip'),
    dict(type='vflip'),
    dict(type='gaussian_noise', std=(0.01, 0.1)),
    dict(type='color_jitter', brightness=0, contrast=0, saturation=0, hue=0),
    dict(type='autocontrast'),
    dict(type='solarize', threshold=0.2),
    dict(type='sharpness', factor=2.0),
    dict(type='gaussian_blur', kernel_size=5, sigma=1.0),
    dict(type='affine', degrees=10.0, translate=(0.1, 0.3)),
    dict(type='random_resized_crop', size=224, scale=(0.08, 1.0),
         ratio=(3.0 / 4.0, 4.0 / 3.0)),
    dict(type='erasing', scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0),
)

#: Named settings of :class:`SRHAugment` (``recipe=name``); explicit
#: arguments override single entries.
#:
#: * ``'default'``: this plugin's recipe (crop first for speed, then the
#:   flips at 0.5 and :data:`DEFAULT_OPS` at 0.3).
#: * ``'published'``: the published HLSS recipe: a bicubic resize of the
#:   whole patch to 224 x 224 (always), then :data:`PUBLISHED_OPS` in their
#:   order, each at 0.5.
RECIPES = {
    'default': dict(base_ops=('hflip', 'vflip'), base_prob=0.5,
                    ops=DEFAULT_OPS, rand_prob=0.3, crop_first=True),
    'published': dict(
        base_ops=(dict(type='resize', size=224, interpolation='bicubic',
                       antialias=False), ),
        base_prob=1.0, ops=PUBLISHED_OPS, rand_prob=0.5, crop_first=False),
}

#: Ops that change the spatial size (run with probability 1, or as the
#: crop-first crop) and whose ``size`` ``SRHAugment(crop_size=...)`` sets.
_SIZE_OPS = ('random_resized_crop', 'resize')

#: Modes of :func:`apply_plan`.
APPLY_MODES = ('gather', 'dense')


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


@TRANSFORMS.register_module()
class SRHAugment(BaseTransform):
    """Random SRH view augmentation (HiDisc / HLSS style), from a recipe.

    Two recipes (:data:`RECIPES`):

    * ``recipe='default'`` (this plugin's, laid out for speed): base ops
      horizontal and vertical flip, each at ``base_prob`` 0.5; then
      :data:`DEFAULT_OPS`, each at ``rand_prob`` 0.3: ``random_resized_crop``
      (224, scale 0.08-1), ``gaussian_noise`` (std 0.01-0.1),
      ``color_jitter`` (0.2, 0.2, 0.2, hue 0.1), ``autocontrast``,
      ``solarize`` (threshold 0.2), ``sharpness`` (2.0), ``gaussian_blur``
      (kernel 5, sigma 1), ``erasing`` (scale 0.02-0.33), ``affine`` (10
      deg, translate 0.1). The crop runs **first** (``crop_first=True``),
      so every later op works on the (smaller) output size. Where it does
      not fire, a plain ``size`` crop (random position, or centre with
      ``crop_fallback='center'``) is taken instead, so all views have the
      same size and can be batched.
    * ``recipe='published'`` (the published HLSS training augmentation):
      a bicubic resize of the whole patch to 224 x 224 (base op ``resize``,
      ``base_prob`` 1), then :data:`PUBLISHED_OPS` in the published order,
      each at ``rand_prob`` 0.5: ``hflip``, ``vflip``, ``gaussian_noise``
      (std 0.01-0.1), ``color_jitter`` (torchvision's ``ColorJitter()``:
      identity), ``autocontrast``, ``solarize`` (0.2), ``sharpness`` (2),
      ``gaussian_blur`` (kernel 5, sigma 1), ``affine`` (10 deg, translate
      0.1 of the width, 0.3 of the height), ``random_resized_crop`` (224,
      scale 0.08-1, ratio 3/4-4/3), ``erasing`` (scale 0.02-0.33, ratio
      0.3-3.3, value 0). Nothing is reordered (``crop_first=False``): the
      crop acts on the 224 px image like any other op.

    ``ops``, ``rand_prob``, ``base_ops``, ``base_prob`` and ``crop_first``
    default to the recipe's values; any of them given explicitly overrides
    that value only. Ops that change the spatial size (``resize``, or
    ``random_resized_crop`` when it is not run first on a different size)
    must fire with probability 1, so that all views keep one size.

    Random numbers: with ``seed=None`` the global torch RNG is used (seeded
    per DataLoader worker by PyTorch). With an int ``seed`` the transform
    owns a generator, created lazily in each process; in a DataLoader
    worker it mixes in ``torch.initial_seed()`` so workers and epochs
    differ while staying reproducible.

    **Required keys:** ``img`` (float tensor ``(C, H, W)``, 3 channels for
    the colour ops). **Modified keys:** ``img``, ``img_shape``.
    **Added keys:** ``aug_applied`` (list of op names, only if ``record``).

    Args:
        ops (list[dict] | None): Strong ops as
            ``dict(type=name, prob=p (optional), **op_kwargs)``; ``None``
            for the recipe's, ``[]`` for none. Valid names: ``resize,
            hflip, vflip, gaussian_noise, color_jitter, autocontrast,
            solarize, sharpness, gaussian_blur, affine, random_resized_crop,
            erasing``.
        rand_prob (float, optional): Probability of each strong op.
            Defaults to the recipe's (0.3 ``'default'``, 0.5
            ``'published'``).
        base_ops (Sequence[str | dict], optional): Ops run before the strong
            ops, each at ``base_prob``. Defaults to the recipe's
            (``('hflip', 'vflip')`` / ``(dict(type='resize', size=224),)``).
        base_prob (float, optional): Probability of each base op. Defaults
            to the recipe's (0.5 / 1.0).
        seed (int, optional): See "Random numbers". Defaults to None.
        record (bool): Store fired op names in ``results['aug_applied']``.
            Defaults to False.
        crop_fallback (str): ``'random'`` (default) or ``'center'`` position
            of the plain crop used when the resized crop does not fire (only
            with ``crop_first``).
        crop_size (int, optional): Sets the ``size`` of the
            ``random_resized_crop`` and ``resize`` ops, i.e. the view size
            (e.g. 96 for quick CPU runs), keeping every other op. Defaults
            to None (the ops' own sizes).
        recipe (str): ``'default'`` or ``'published'``, see above. Defaults
            to ``'default'``.
        crop_first (bool, optional): Move a ``random_resized_crop`` op to
            the front (with the plain-crop fallback). Defaults to the
            recipe's (True / False).

    Example:
        >>> aug = SRHAugment(seed=0, record=True)
        >>> out = aug(dict(img=torch.rand(3, 300, 300)))
        >>> out['img'].shape
        torch.Size([3, 224, 224])
        >>> aug = SRHAugment(recipe='published', seed=0)
        >>> [op.name for op, p in aug.steps][:3], aug.rand_prob
        (['resize', 'hflip', 'vflip'], 0.5)
        >>> aug(dict(img=torch.rand(3, 300, 300)))['img'].shape
        torch.Size([3, 224, 224])
    """

    def __init__(self,
                 ops: Optional[Sequence[Union[str, dict]]] = None,
                 rand_prob: Optional[float] = None,
                 base_ops: Optional[Sequence[Union[str, dict]]] = None,
                 base_prob: Optional[float] = None,
                 seed: Optional[int] = None,
                 record: bool = False,
                 crop_fallback: str = 'random',
                 crop_size: Optional[int] = None,
                 recipe: str = 'default',
                 crop_first: Optional[bool] = None):
        if recipe not in RECIPES:
            raise ValueError(f'SRHAugment: unknown recipe {recipe!r}; valid '
                             f'recipes: {sorted(RECIPES)}.')
        given = dict(ops=ops, rand_prob=rand_prob, base_ops=base_ops,
                     base_prob=base_prob, crop_first=crop_first)
        cfg = {k: RECIPES[recipe][k] if v is None else v
               for k, v in given.items()}
        for name in ('rand_prob', 'base_prob'):
            p = cfg[name]
            if (isinstance(p, bool) or not isinstance(p, numbers.Real)
                    or not 0.0 <= p <= 1.0):
                raise ValueError(f'SRHAugment: {name} must be a probability '
                                 f'in [0, 1], got {p!r}.')
        if crop_fallback not in ('random', 'center'):
            raise ValueError(f'SRHAugment: crop_fallback must be "random" or '
                             f'"center", got {crop_fallback!r}.')
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f'SRHAugment: seed must be an int or None, got '
                             f'{seed!r}.')
        self.recipe = recipe
        self.rand_prob = float(cfg['rand_prob'])
        self.base_prob = float(cfg['base_prob'])
        self.crop_first = bool(cfg['crop_first'])
        self.seed = seed
        self.record = record
        self.crop_fallback = crop_fallback

        base_ops, ops = cfg['base_ops'], cfg['ops']
        if crop_size is not None:
            base_ops, ops = self._with_crop_size((base_ops, ops), crop_size)
        steps = [self._build(c, self.base_prob) for c in base_ops]
        steps += [self._build(c, self.rand_prob) for c in ops]
        for op, p in steps:
            if isinstance(op, Resize) and p != 1.0:
                raise ValueError(
                    f'SRHAugment: the resize op must run with probability 1 '
                    f'(all views need one size), got prob {p}; set its '
                    f'"prob" (or base_prob) to 1.0.')
        crops = [s for s in steps if isinstance(s[0], RandomResizedCrop)]
        if self.crop_first:
            if len(crops) > 1:
                raise ValueError('SRHAugment: give at most one '
                                 'random_resized_crop op (it fixes the '
                                 'output size of every view).')
            # the crop runs first; the rest keep their order
            steps = crops + [s for s in steps if s not in crops]
        self.steps = steps
        self._probs = torch.tensor([p for _, p in self.steps])
        self._generator = None
        self._generator_pid = None

    @staticmethod
    def _with_crop_size(op_lists, crop_size: int) -> list:
        """``op_lists`` with ``size=crop_size`` in every ``resize`` and
        ``random_resized_crop`` op."""
        if (isinstance(crop_size, bool) or not isinstance(crop_size, int)
                or crop_size < 1):
            raise ValueError(f'SRHAugment: crop_size must be a positive int, '
                             f'got {crop_size!r}.')
        out, found = [], False
        for ops in op_lists:
            new = []
            for cfg in ops:
                name = cfg.get('type') if isinstance(cfg, dict) else cfg
                if name in _SIZE_OPS:
                    cfg = dict(cfg) if isinstance(cfg, dict) else dict(
                        type=name)
                    cfg['size'] = crop_size
                    found = True
                new.append(cfg)
            out.append(new)
        if not found:
            raise ValueError('SRHAugment: crop_size needs a '
                             'random_resized_crop (or resize) op in ops or '
                             'base_ops; add one or drop crop_size.')
        return out

    @staticmethod
    def _build(cfg, default_prob: float):
        if isinstance(cfg, dict):
            cfg = dict(cfg)
            prob = float(cfg.pop('prob', default_prob))
        else:
            prob = default_prob
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'SRHAugment: op prob must be in [0, 1], got '
                             f'{prob} for {cfg!r}.')
        if isinstance(cfg, str) and cfg not in AUGMENT_OPS:
            raise ValueError(f'SRHAugment: unknown op {cfg!r}; valid names: '
                             f'{sorted(AUGMENT_OPS)}.')
        return build_augment_op(cfg), prob

    # --------------------------------------------------------------- random
    @property
    def generator(self) -> Optional[torch.Generator]:
        """This process's generator (``None``: global RNG, ``seed=None``)."""
        if self.seed is None:
            return None
        if self._generator is None or self._generator_pid != os.getpid():
            seed = self.seed
            if torch.utils.data.get_worker_info() is not None:
                seed = (seed * 1_000_003 + torch.initial_seed()) % (2**63)
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_pid = os.getpid()
        return self._generator

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_generator'] = None
        state['_generator_pid'] = None
        return state

    def sample_plan(self, generator: Optional[torch.Generator], n: int,
                    shape: Sequence[int],
                    sync_free: bool = False) -> List[PlannedOp]:
        """Draw which ops fire and their params for ``n`` samples.

        By default the fire masks are read on the host once
        (``fire.any(0).tolist()``, one GPU sync) so that ops that fired for
        no sample draw no params (``params=None``). With ``sync_free=True``
        nothing is read on the host: params are drawn for **every** op (and
        the crop's resized and plain boxes are both drawn and combined with
        ``torch.where``). The fire masks and parameter distributions are the
        same, but the random stream differs from the default one (it draws
        params also for ops that fired for no sample, and for ``n = 1``
        both crop boxes): from the first such op on, the same generator
        state gives different plans in the two settings (identical plans
        when every op fired for some sample and ``n > 1``).

        Args:
            generator (torch.Generator, optional): Source of randomness (its
                device is where params are created); ``None`` for the global
                CPU generator.
            n (int): Number of samples (batch size; 1 per-sample).
            shape (Sequence[int]): Input ``(C, H, W)``.
            sync_free (bool): Never read the device (pair with
                ``apply_plan(mode='dense')``); every ``PlannedOp.params`` is
                then a dict. Defaults to False.

        Returns:
            list[PlannedOp]: Pass it to :func:`apply_plan`.

        Example:
            >>> plan = SRHAugment().sample_plan(None, 8, (3, 300, 300))
            >>> [p.name for p in plan][:3]
            ['random_resized_crop', 'hflip', 'vflip']
            >>> plan = SRHAugment().sample_plan(None, 8, (3, 300, 300),
            ...                                 sync_free=True)
            >>> all(p.params is not None for p in plan)
            True
        """
        device = generator.device if generator is not None else None
        shape = tuple(shape)
        u = torch.rand(n, len(self.steps), generator=generator, device=device)
        if sync_free:
            # compare with Python floats: no (blocking) copy of the probs to
            # the device; same float32 comparison, same masks
            fire = torch.stack([u[:, j] < p
                                for j, (_, p) in enumerate(self.steps)], 1)
            fire_any = [True] * len(self.steps)
        else:
            probs = self._probs if device is None else self._probs.to(device)
            fire = u < probs
            fire_any = fire.any(dim=0).tolist()  # one sync for all ops
        plan = []
        for j, (op, prob) in enumerate(self.steps):
            mask = fire[:, j]
            if self.crop_first and isinstance(op, RandomResizedCrop):
                params = self._crop_params(op, generator, n, shape, mask,
                                           fire_any[j], sync_free)
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
                params = (op.sample(generator, n, shape)
                          if fire_any[j] else None)
                plan.append(PlannedOp(op.name, op, mask, params, mask))
            shape = tuple(op.output_shape(shape))
        return plan

    def _crop_params(self, op: RandomResizedCrop, generator, n, shape,
                     resized: torch.Tensor, any_resized: bool,
                     sync_free: bool = False) -> Params:
        """Resized-crop boxes where ``resized``, plain crops elsewhere
        (``sync_free``: always both, combined on the device)."""
        random_pos = self.crop_fallback == 'random'
        if not sync_free and (n == 1 or not any_resized):
            return (op.sample(generator, n, shape) if any_resized else
                    op.sample_plain(generator, n, shape, random_pos))
        box = op.sample(generator, n, shape)['box']
        plain = op.sample_plain(generator, n, shape, random_pos)['box']
        return {'box': torch.where(resized.view(-1, 1), box, plain)}

    # ------------------------------------------------------------ transform
    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, torch.Tensor) or not img.is_floating_point() \
                or img.ndim != 3:
            what = (f'{img.dtype} {tuple(img.shape)}' if isinstance(
                img, torch.Tensor) else type(img).__name__)
            raise ValueError(
                f'SRHAugment expects results["img"] as a float tensor '
                f'(C, H, W) in [0, 1]; got {what}. Put LoadSRHPatch + '
                f'SRHThirdChannel (or LoadPatchImage / '
                f'LoadH5Patch) before it.')
        plan = self.sample_plan(self.generator, 1, img.shape)
        out = apply_plan(img, plan)
        results['img'] = out
        results['img_shape'] = tuple(out.shape[-2:])
        if self.record:
            results['aug_applied'] = [p.name for p in plan if bool(p.fired[0])]
        return results

    def __repr__(self) -> str:
        steps = ', '.join(f'{op.name}@{p:g}' for op, p in self.steps)
        return (f'{self.__class__.__name__}(steps=[{steps}], '
                f'recipe={self.recipe!r}, crop_first={self.crop_first}, '
                f'seed={self.seed}, record={self.record}, '
                f'crop_fallback={self.crop_fallback!r})')
