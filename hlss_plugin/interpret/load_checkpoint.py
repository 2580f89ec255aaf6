"""Build an HLSS model from its config and load a checkpoint strictly.

The explanations compare a checkpoint with an untrained model of the same
config (same seeded random init, same text-initialised heads), so
:func:`build_models` returns both.
"""
import copy

import torch

from ..utils.checkpoint import (CheckpointReadError, read_checkpoint,
                                state_dict_diff, strip_ddp_prefix)
from ..utils.quiet_logs import quiet_logs
from .explain_config import check_hlss_config
from .explain_error import ExplainError


def load_state_dict_strict(model: torch.nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint`` into ``model``; every key must match.

    Accepts an mmengine checkpoint (``{'state_dict': ..., 'meta': ...,
    ...}``, as ``tools/train.py`` writes) or a bare state dict, read with
    ``torch.load(weights_only=True)``; a DDP ``module.`` prefix is removed.

    Args:
        model (nn.Module): The config's model, changed in place.
        checkpoint (str): Path of the checkpoint.

    Returns:
        dict: The checkpoint's ``meta`` (empty when it has none).

    Raises:
        ExplainError: Unreadable file, or missing / unexpected keys or
            shape mismatches (listed) against the config's model.

    Example:
        >>> torch.save({'state_dict': net.state_dict(), 'meta': {'epoch': 1}},
        ...            'net.pth')
        >>> load_state_dict_strict(net, 'net.pth')
        {'epoch': 1}
    """
    try:
        state, meta = read_checkpoint(checkpoint)
    except FileNotFoundError:
        raise ExplainError(
            f'checkpoint {checkpoint!r}: no such file.') from None
    except CheckpointReadError as exc:
        raise ExplainError(
            f'checkpoint {checkpoint}: cannot be read weights-only: '
            f'{exc.reason}. Pass a checkpoint a training run wrote (with '
            f'PlainCheckpointHook in custom_hooks), or save '
            f'{{"state_dict": model.state_dict()}}.') from None
    except ValueError:
        raise ExplainError(f'checkpoint {checkpoint}: expected an mmengine '
                           f'checkpoint with "state_dict" or a bare state '
                           f'dict of tensors.') from None
    state = strip_ddp_prefix(state)
    # a module's _extra_state (the augmentation step of the fast config's
    # preprocessor) is optional: checkpoints from before it load
    missing, unexpected, shape_diff = state_dict_diff(model.state_dict(),
                                                      state)
    shapes = [f'{k} {got} vs {want}' for k, got, want in shape_diff]
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (('missing keys', missing),
                           ('unexpected keys', unexpected),
                           ('shape mismatches (checkpoint vs config)',
                            shapes)):
            if keys:
                more = f' ... (+{len(keys) - 8})' if len(keys) > 8 else ''
                parts.append(f'{len(keys)} {what}: {keys[:8]}{more}')
        raise ExplainError(
            f'checkpoint {checkpoint} does not match the config\'s model; '
            + '; '.join(parts) + '. Use the config the checkpoint was '
            'trained with.')
    model.load_state_dict(state, strict=True)
    return dict(meta)


def build_models(cfg, checkpoint: str, seed: int = 0):
    """The config's model with random init (seeded) before and after
    loading ``checkpoint``.

    Args:
        cfg (Config): An HLSS config (see :func:`check_hlss_config`).
        checkpoint (str): A checkpoint of that config
            (:func:`load_state_dict_strict`).
        seed (int): Seed of the random init; the caller's RNG state is
            left as it was. Defaults to 0.

    Returns:
        tuple: ``(trained, untrained, meta)``: both models in eval mode and
        the checkpoint's ``meta``.

    Example:
        >>> trained, untrained, meta = build_models(cfg, 'epoch_6.pth')
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import hlss_plugin  # noqa: F401  (registers the model)
    init_default_scope('mmpretrain')
    check_hlss_config(cfg)
    with torch.random.fork_rng(), quiet_logs():  # caller's RNG untouched
        torch.manual_seed(seed)
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.init_weights()
    untrained = copy.deepcopy(model)
    meta = load_state_dict_strict(model, checkpoint)
    return model.eval(), untrained.eval(), meta
