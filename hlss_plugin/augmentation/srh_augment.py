"""``SRHAugment``: the HiDisc/HLSS-style SRH augmentation as one transform.

Randomness is split from computation (see
:mod:`~hlss_plugin.augmentation.ops`):
:meth:`SRHAugment.sample_plan` (that is
:func:`~hlss_plugin.augmentation.plan.sample_plan`) draws which ops fire
and their parameters for ``n`` samples,
:func:`~hlss_plugin.augmentation.apply_plan.apply_plan` applies such a plan
to one image ``(C, H, W)`` or a batch ``(B, C, H, W)``. The per-sample
pipeline uses ``n = 1``; the batched data preprocessor
(``SRHBatchAugmentPreprocessor``) calls the same two functions with
``n = B`` and a device generator. The op lists are in
:mod:`~hlss_plugin.augmentation.recipes`.
"""
import numbers
import os
from typing import List, Optional, Sequence, Union

import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .apply_plan import apply_plan
from .ops import AUGMENT_OPS, RandomResizedCrop, Resize, build_augment_op
from .plan import CROP_FALLBACKS, PlannedOp, sample_plan
from .recipes import RECIPES, SIZE_OPS


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
        if crop_fallback not in CROP_FALLBACKS:
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
                if name in SIZE_OPS:
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
        return sample_plan(self.steps, generator, n, shape,
                           crop_first=self.crop_first,
                           crop_fallback=self.crop_fallback,
                           sync_free=sync_free, probs=self._probs)

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
