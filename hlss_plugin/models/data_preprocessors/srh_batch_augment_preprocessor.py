"""``SRHBatchAugmentPreprocessor``: the SRH augmentation set as batched
tensor ops on the training device."""
import contextlib
import logging
import numbers
from typing import List, Optional, Sequence, Union

import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.model import ImgDataPreprocessor
from mmpretrain.registry import MODELS, TRANSFORMS

from ...augmentation import (APPLY_MODES, PlannedOp, SRHAugment, apply_plan,
                             srh_third_channel)
from ...utils.seed_mix import mix_seed

# Layout of the checkpointed state: int64 [version, base seed, step].
_STATE_VERSION = 1
_NOT_DRAWN = -1  # base seed slot before ``seed=None`` drew one


def _autocast_off(device: torch.device):
    """A context that disables autocast on ``device`` (no-op if the device
    type has no autocast)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


def _check_stats(mean, std) -> None:
    if (mean is None) != (std is None):
        raise ValueError(
            f'SRHBatchAugmentPreprocessor: give both mean and std (1 or 3 '
            f'values each) or neither (no normalisation); got mean={mean!r}, '
            f'std={std!r}.')
    for name, value in (('mean', mean), ('std', std)):
        if value is None:
            continue
        if (not isinstance(value, (list, tuple)) or len(value) not in (1, 3)
                or not all(isinstance(v, numbers.Real) for v in value)):
            raise ValueError(
                f'SRHBatchAugmentPreprocessor: {name} must be a list of 1 or '
                f'3 numbers (per channel, for images in [0, 1]), got '
                f'{value!r}.')
    if std is not None and any(v <= 0 for v in std):
        raise ValueError(f'SRHBatchAugmentPreprocessor: std values must be '
                         f'> 0, got {std!r}.')


def _build_augment(augment) -> SRHAugment:
    if isinstance(augment, SRHAugment):
        aug = augment
    elif augment is None or isinstance(augment, dict):
        cfg = dict(type='SRHAugment')
        cfg.update(augment or {})
        aug = TRANSFORMS.build(cfg)
        if not isinstance(aug, SRHAugment):
            raise ValueError(
                f'SRHBatchAugmentPreprocessor: augment must configure '
                f'SRHAugment (its plan functions run batched), got type '
                f'{cfg["type"]!r}.')
    else:
        raise ValueError(
            f'SRHBatchAugmentPreprocessor: augment must be a dict like '
            f"dict(type='SRHAugment', recipe='published'), an SRHAugment or "
            f'None (defaults), got {type(augment).__name__}.')
    if aug.seed is not None:
        raise ValueError(
            'SRHBatchAugmentPreprocessor: drop `seed` from augment; the '
            'preprocessor draws the parameters with its own device '
            'generator (set the preprocessor\'s `seed` instead).')
    return aug


@MODELS.register_module()
class SRHBatchAugmentPreprocessor(ImgDataPreprocessor):
    """Convert, build the SRH third channel and augment a batch of raw
    patches on the training device, with per-sample random parameters.

    The DataLoader workers only decode (``LoadSRHPatchRaw``, optionally a
    ``CenterCropTensor`` pre-crop) and pack one ``uint16`` patch per sample;
    this module then

    1. moves the batch to the model's device (``non_blocking``; pair with
       ``pin_memory=True``),
    2. converts it to float there: ``srh_third_channel(x, base, max_value)``
       (exactly :class:`SRHThirdChannel`'s formula) or, with
       ``third_channel=False``, ``x / max_value``,
    3. when ``training``: draws ``num_views`` views per sample with
       :meth:`SRHAugment.sample_plan` (``n = B``, a generator on the
       device) and :func:`apply_plan`, i.e. the same ops, parameter ranges
       and probabilities as the per-sample ``MultiView(SRHAugment)``
       pipeline,
    4. normalises with ``mean`` / ``std`` and optionally makes the result
       ``channels_last``.

    It returns what ``SelfSupDataPreprocessor`` returns for the per-sample
    path: ``{'inputs': [V tensors (B, C, h, w)], 'data_samples': ...}``
    when training, and ``{'inputs': (B, C, H, W), ...}`` (no augmentation)
    for validation / testing.

    Autocast is switched off while augmenting (``affine_grid`` would
    otherwise build the sampling grid in bf16/fp16); the views are float32
    and autocast casts them for the model.

    Random numbers: one ``torch.Generator`` on the device, re-seeded at the
    start of every training batch with ``mix_seed(base, rank, step)`` (a
    splitmix64 hash, :func:`~hlss_plugin.utils.seed_mix.mix_seed`), where
    ``step`` counts the training batches this module has augmented and
    ``base`` is ``seed`` or, with ``seed=None``, a draw from the global
    torch RNG (seeded by the Runner from ``randomness.seed``) at the first
    training batch. The views of step ``k`` thus depend only on ``(base,
    rank, k)``: ranks draw different parameters, a run is reproducible, and
    re-seeding is host-side (no device sync). ``step`` and ``base`` are
    checkpointed with the model (``data_preprocessor._extra_state``, an
    int64 tensor ``[version, base, step]``, see :meth:`get_extra_state`),
    so ``resume=True`` continues the augmentation stream exactly; loading
    an older checkpoint without that entry (also with ``strict=True``)
    warns once and keeps the current count. Validation / test batches do
    not count.

    Args:
        augment (dict | SRHAugment, optional): The augmentation, as the
            ``SRHAugment`` config of the per-sample view pipeline (``type``
            may be omitted; ``seed`` is not allowed, see above), recipe
            included: ``dict(recipe='published')`` runs the published HLSS
            recipe (bicubic resize of the whole patch to 224, then its ops
            in order, each at 0.5) batched. Defaults to None
            (``SRHAugment`` defaults: ``recipe='default'``, 224 px crop
            first, ``rand_prob`` 0.3).
        num_views (int): Views per sample. Defaults to 2.
        third_channel (bool): Inputs are raw ``[CH2, CH3]`` patches and get
            ``[CH3 - CH2 + base, CH2, CH3] / max_value`` clamped to
            ``[0, 1]``. With False the inputs are divided by
            ``max_value`` only (e.g. ``max_value=1.0`` for float images
            already in ``[0, 1]``). Defaults to True.
        base (float): Offset of the third channel. Defaults to 5000.
        max_value (float): Raw-unit divisor. Defaults to 65535 (uint16).
        mean (Sequence[float], optional): Per-channel mean of ``[0, 1]``
            images (1 or 3 values). Defaults to None (no normalisation).
        std (Sequence[float], optional): Per-channel std, with ``mean``.
        channels_last (bool): Return ``torch.channels_last`` tensors (use
            with a channels-last model, see ``ChannelsLastHook``). Defaults
            to False.
        seed (int, optional): Base seed of the device generator. Defaults
            to None (drawn from the global torch RNG).
        non_blocking (bool): Asynchronous host-to-device copy. Defaults to
            True.
        record (bool): Keep the last training batch's plans (one list of
            :class:`PlannedOp` per view) in :attr:`last_plans`, for tests
            and debugging. Defaults to False.
        apply_mode (str): How :func:`apply_plan` applies each op:
            ``'gather'`` (default) computes an op only on the samples it
            fired for, via boolean indexing, which reads the mask on the
            host (about 4 host-device syncs per op and view on a GPU);
            ``'dense'`` draws the plans with ``sample_plan(...,
            sync_free=True)`` and computes every op on every sample,
            keeping the result with ``torch.where`` (about
            ``1 / rand_prob`` times the op work, ``color_jitter`` about 4x
            more again), so a training forward reads nothing on the host
            (no host-device sync; only the first batch with ``seed=None``
            draws the base seed with one ``item()``). The views of a dense
            plan equal the gather mode's views of that plan, but dense
            sampling uses a different random stream (it also draws params
            of ops that fired for no sample), so the two modes give
            different (equally distributed) views for the same seed. Meant
            for GPUs; measure both
            (``tools/benchmarks/benchmark_throughput.py --augment-mode``)
            before choosing.

    Example:
        >>> pre = SRHBatchAugmentPreprocessor(
        ...     augment=dict(rand_prob=0.3, crop_size=64),
        ...     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        >>> raw = torch.randint(0, 12000, (4, 2, 96, 96)).to(torch.uint16)
        >>> out = pre(dict(inputs=raw, data_samples=None), training=True)
        >>> [tuple(v.shape) for v in out['inputs']]
        [(4, 3, 64, 64), (4, 3, 64, 64)]
    """

    def __init__(self,
                 augment: Optional[Union[dict, SRHAugment]] = None,
                 num_views: int = 2,
                 third_channel: bool = True,
                 base: float = 5000.0,
                 max_value: float = 65535.0,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 channels_last: bool = False,
                 seed: Optional[int] = None,
                 non_blocking: bool = True,
                 record: bool = False,
                 apply_mode: str = 'gather'):
        _check_stats(mean, std)
        if apply_mode not in APPLY_MODES:
            raise ValueError(f'SRHBatchAugmentPreprocessor: apply_mode must '
                             f'be one of {APPLY_MODES} ("dense" avoids '
                             f'host-device syncs on a GPU), got '
                             f'{apply_mode!r}.')
        if (isinstance(num_views, bool) or not isinstance(num_views, int)
                or num_views < 1):
            raise ValueError(f'SRHBatchAugmentPreprocessor: num_views must '
                             f'be an int >= 1 (HLSS needs 2), got '
                             f'{num_views!r}.')
        if not isinstance(max_value, numbers.Real) or not max_value > 0:
            raise ValueError(f'SRHBatchAugmentPreprocessor: max_value must '
                             f'be > 0 (65535 for uint16 SRH), got '
                             f'{max_value!r}.')
        if not isinstance(base, numbers.Real):
            raise ValueError(f'SRHBatchAugmentPreprocessor: base must be a '
                             f'number, got {base!r}.')
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, int) or seed < 0):
            raise ValueError(f'SRHBatchAugmentPreprocessor: seed must be a '
                             f'non-negative int or None, got {seed!r}.')
        super().__init__(mean=mean, std=std, non_blocking=non_blocking)
        self.augment = _build_augment(augment)
        self.num_views = num_views
        self.third_channel = bool(third_channel)
        self.base = float(base)
        self.max_value = float(max_value)
        self.channels_last = bool(channels_last)
        self.seed = seed
        self.record = record
        self.apply_mode = apply_mode
        self.last_plans: Optional[List[List[PlannedOp]]] = None
        self._generator: Optional[torch.Generator] = None
        # Checkpointed (get_extra_state): training batches augmented so far
        # and the base seed (None until seed=None draws one).
        self._step = 0
        self._base_seed: Optional[int] = seed
        self._warned_legacy = False

    # --------------------------------------------------------------- random
    @property
    def step(self) -> int:
        """Training batches augmented so far (the next batch's step)."""
        return self._step

    def base_seed(self) -> int:
        """The base seed of the stream: ``seed``, or with ``seed=None`` a
        draw from the global torch RNG, made on first use and then kept (and
        checkpointed)."""
        if self._base_seed is None:
            self._base_seed = int(torch.randint(0, 2**62, (1, )).item())
        return self._base_seed

    def step_seed(self, step: Optional[int] = None) -> int:
        """``mix_seed(base_seed(), rank, step)``, in ``[0, 2**63)``.

        Args:
            step (int, optional): Defaults to :attr:`step`, the next one.
        """
        return mix_seed(self.base_seed(), get_rank(),
                        self._step if step is None else step)

    def generator(self, device: torch.device) -> torch.Generator:
        """The augmentation generator on ``device``; created on first use
        (or a device change) and then seeded for the current :attr:`step`.
        :meth:`forward` re-seeds it for every training batch
        (:meth:`start_step`)."""
        device = torch.device(device)
        gen = self._generator
        if gen is None or gen.device != device:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.step_seed())
            self._generator = gen
        return gen

    @torch.compiler.disable
    def start_step(self, device: torch.device) -> torch.Generator:
        """Seed the generator for :attr:`step` and count that step.

        ``manual_seed`` runs on the host for CPU and CUDA generators, so this
        adds no host-device synchronisation. Kept out of ``torch.compile``
        (mmengine's ``compile=True`` compiles the whole ``train_step``):
        the changing step count would otherwise force a recompilation.

        Args:
            device (torch.device): The device of the batch.

        Returns:
            torch.Generator: The generator, seeded with
            ``mix_seed(base, rank, step)`` of the step just started.
        """
        gen = self.generator(device)
        gen.manual_seed(self.step_seed())
        self._step += 1
        return gen

    # ----------------------------------------------------------- checkpoint
    def get_extra_state(self) -> torch.Tensor:
        """The state saved under ``data_preprocessor._extra_state``.

        A tensor rather than a dict, so that readers requiring a state dict
        of tensors (``read_state_dict``, ``tools/test.py``) accept it; it
        loads with ``torch.load(weights_only=True)``.

        Returns:
            Tensor: int64 ``(3, )``: ``[version (1), base seed (-1 while
            seed=None has not drawn one), step]``.

        Example:
            >>> pre = SRHBatchAugmentPreprocessor(seed=5)
            >>> pre.get_extra_state()
            tensor([1, 5, 0])
        """
        base = _NOT_DRAWN if self._base_seed is None else self._base_seed
        return torch.tensor([_STATE_VERSION, base, self._step],
                            dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        """Restore :attr:`step` and the drawn base seed from
        :meth:`get_extra_state`'s tensor. An explicit ``seed`` that differs
        from the checkpoint's base wins (with a warning).

        Raises:
            ValueError: If ``state`` is not such a tensor.
        """
        if not (isinstance(state, torch.Tensor) and state.dtype == torch.int64
                and tuple(state.shape) == (3, )):
            raise ValueError(
                f'SRHBatchAugmentPreprocessor: data_preprocessor._extra_state '
                f'must be the int64 tensor [version, base seed, step] that '
                f'get_extra_state() writes, got {state!r}. Load a checkpoint '
                f'written by this class, or delete that key from the state '
                f'dict to restart the augmentation stream at step 0.')
        version, base, step = state.tolist()  # once per load, not per step
        if version != _STATE_VERSION or base < _NOT_DRAWN or step < 0:
            raise ValueError(
                f'SRHBatchAugmentPreprocessor: data_preprocessor._extra_state '
                f'{[version, base, step]} is not [{_STATE_VERSION}, base '
                f'seed >= -1, step >= 0]; it was written by another version '
                f'of hlss_plugin. Delete that key from the state dict to '
                f'restart the augmentation stream at step 0.')
        if self.seed is None:
            self._base_seed = None if base == _NOT_DRAWN else base
        elif base not in (_NOT_DRAWN, self.seed):
            print_log(
                f'SRHBatchAugmentPreprocessor: the checkpoint\'s augmentation '
                f'stream had base seed {base}, the config sets seed='
                f'{self.seed}; using {self.seed} from step {step} (set '
                f'seed=None or {base} to continue the checkpoint\'s stream).',
                logger='current', level=logging.WARNING)
        self._step = step

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Accept state dicts without ``_extra_state`` (checkpoints written
        before the step was saved), also with ``strict=True``."""
        key = prefix + '_extra_state'
        legacy = key not in state_dict
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if not legacy:
            return
        if key in missing_keys:
            missing_keys.remove(key)
        if not self._warned_legacy:
            self._warned_legacy = True
            print_log(
                f'SRHBatchAugmentPreprocessor: the state dict has no '
                f'{key!r} (a checkpoint from before the augmentation step was '
                f'saved); the augmentation stream goes on from step '
                f'{self._step}, not from where that run stopped.',
                logger='current', level=logging.WARNING)

    # ---------------------------------------------------------------- steps
    def _stack(self, inputs) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            batch = inputs
        elif (isinstance(inputs, (list, tuple)) and inputs
              and all(isinstance(t, torch.Tensor) and t.ndim == 3
                      for t in inputs)):
            shapes = {tuple(t.shape) for t in inputs}
            if len(shapes) > 1:
                raise ValueError(
                    f'SRHBatchAugmentPreprocessor: the patches of a batch '
                    f'differ in shape ({sorted(shapes)}); pre-crop them to '
                    f'one size in the pipeline (CenterCropTensor).')
            batch = torch.stack(list(inputs))
        elif (isinstance(inputs, (list, tuple)) and inputs
              and isinstance(inputs[0], torch.Tensor)
              and inputs[0].ndim == 4):
            raise ValueError(
                'SRHBatchAugmentPreprocessor: got a list of view batches; '
                'it augments on the device itself, so remove MultiView / '
                'SRHAugment from the pipeline (LoadSRHPatchRaw + PackInputs '
                'is enough).')
        else:
            raise ValueError(
                f'SRHBatchAugmentPreprocessor: inputs must be one (B, C, H, '
                f'W) tensor (default_collate) or a list of (C, H, W) '
                f'tensors, got {type(inputs).__name__}.')
        if batch.ndim != 4:
            raise ValueError(f'SRHBatchAugmentPreprocessor: inputs must be '
                             f'(B, C, H, W), got shape {tuple(batch.shape)}.')
        if self.third_channel and batch.shape[1] != 2:
            raise ValueError(
                f'SRHBatchAugmentPreprocessor: third_channel=True needs raw '
                f'[CH2, CH3] patches (B, 2, H, W), got {batch.shape[1]} '
                f'channels. Load with LoadSRHPatchRaw (no SRHThirdChannel in '
                f'the pipeline), or set third_channel=False.')
        if batch.dtype == torch.bool or batch.is_complex():
            raise ValueError(f'SRHBatchAugmentPreprocessor: inputs must be '
                             f'integer or float, got {batch.dtype}.')
        return batch

    def to_unit(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw ``(B, C, H, W)`` (any real dtype) -> float32 in ``[0, 1]``.

        Example:
            >>> pre = SRHBatchAugmentPreprocessor()
            >>> raw = torch.tensor([1000, 4000], dtype=torch.uint16)
            >>> (pre.to_unit(raw.view(1, 2, 1, 1)).flatten() * 65535).round()
            tensor([8000., 1000., 4000.])
        """
        if self.third_channel:
            return srh_third_channel(batch.float(), self.base, self.max_value)
        return batch.float() / self.max_value  # never in place on inputs

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` into a new tensor (``channels_last`` if set).
        """
        fmt = (torch.channels_last
               if self.channels_last else torch.contiguous_format)
        if not self._enable_normalize:
            return x.contiguous(memory_format=fmt)
        out = torch.empty_like(x, memory_format=fmt)
        torch.sub(x, self.mean, out=out)
        return out.div_(self.std)

    def augment_views(self, x: torch.Tensor) -> List[torch.Tensor]:
        """``num_views`` augmented views of ``x`` ``(B, C, H, W)`` in
        ``[0, 1]``, each with its own per-sample plan (not normalised)."""
        gen = self.generator(x.device)
        shape = tuple(x.shape[1:])
        views, plans = [], []
        with _autocast_off(x.device):
            for _ in range(self.num_views):
                plan = self.augment.sample_plan(
                    gen, x.shape[0], shape,
                    sync_free=self.apply_mode == 'dense')
                views.append(apply_plan(x, plan, self.apply_mode))
                plans.append(plan)
        self.last_plans = plans if self.record else None
        return views

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess a collated batch.

        Args:
            data (dict): ``inputs`` (``(B, C, H, W)`` raw tensor, or a list
                of ``(C, H, W)``) and ``data_samples``.
            training (bool): Augment into ``num_views`` views, with the
                generator re-seeded for, and counting, the next :attr:`step`
                (evaluation batches leave the count alone).

        Returns:
            dict: ``inputs`` (list of V ``(B, C, h, w)`` float tensors when
            training, one ``(B, C, H, W)`` tensor otherwise) and
            ``data_samples``.
        """
        if not isinstance(data, dict) or 'inputs' not in data:
            raise ValueError(
                'SRHBatchAugmentPreprocessor: expected a dict with "inputs" '
                "from collate_fn=dict(type='default_collate'), got "
                f'{type(data).__name__}.')
        data = self.cast_data(data)
        x = self.to_unit(self._stack(data['inputs']))
        if training:
            self.start_step(x.device)  # views of step k: (base, rank, k)
            inputs = [self.normalize(v) for v in self.augment_views(x)]
        else:
            inputs = self.normalize(x)
        return {'inputs': inputs, 'data_samples': data.get('data_samples')}

    def extra_repr(self) -> str:
        return (f'augment={self.augment!r}, num_views={self.num_views}, '
                f'third_channel={self.third_channel}, base={self.base}, '
                f'max_value={self.max_value}, '
                f'channels_last={self.channels_last}, seed={self.seed}, '
                f'apply_mode={self.apply_mode!r}')
