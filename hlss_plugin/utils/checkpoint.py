"""Read checkpoints safely (``weights_only=True``) with one-line errors."""
import os.path as osp
import pickle
import re
from typing import Any, Dict, List, Mapping

import torch

#: What a checkpoint of this project is, for the fixes in error messages.
CHECKPOINT_HELP = ('pass a .pth file a training run wrote (e.g. '
                   'work_dirs/<config>/epoch_N.pth)')

_GLOBAL = re.compile(r'Unsupported global: GLOBAL ([\w.]+)')


def describe_load_error(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one short clause.

    torch's own message is many lines long and advises re-running with
    ``weights_only=False``, which would execute arbitrary code from the
    file; it is never passed on.

    Args:
        err (BaseException): What ``torch.load`` raised.

    Returns:
        str: e.g. ``'it is not a file written by torch.save (empty,
        truncated or another format)'``.

    Example:
        >>> describe_load_error(EOFError())
        'it is empty or truncated'
    """
    text = str(err)
    found = _GLOBAL.search(text)
    if found:
        return (f'it holds a pickled Python object ({found.group(1)}) that '
                f'a weights-only load refuses to run')
    if isinstance(err, EOFError):
        return 'it is empty or truncated'
    lowered = text.lower()
    if (isinstance(err, pickle.UnpicklingError)
            or 'zip archive' in lowered or 'magic number' in lowered
            or 'invalid load key' in lowered or 'weights only' in lowered):
        return ('it is not a file written by torch.save (truncated, '
                'corrupt or another format)')
    first = text.splitlines()[0][:200] if text else ''
    return f'{type(err).__name__}: {first}' if first else type(err).__name__


def load_weights_only(path: str, owner: str = '',
                      fix: str = CHECKPOINT_HELP) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with a
    one-line ``ValueError`` naming the file and the fix.

    Args:
        path (str): Checkpoint file.
        owner (str): Name put before error messages (e.g. ``'--resume'``).
        fix (str): What the user should do instead, ending the message.

    Returns:
        Any: The loaded object.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file cannot be read weights-only (never with
            torch's advice to turn ``weights_only`` off).

    Example:
        >>> torch.save({'w': torch.ones(1)}, 'c.pth')
        >>> load_weights_only('c.pth')
        {'w': tensor([1.])}
    """
    who = f'{owner}: ' if owner else ''
    if not osp.isfile(path):
        raise FileNotFoundError(f'{who}checkpoint {path!r} not found; {fix}.')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many types here
        raise ValueError(
            f'{who}{path} is not a readable checkpoint: '
            f'{describe_load_error(err)}. Checkpoints are only read '
            f'weights-only (torch.load(weights_only=True)); {fix}.') from None


def read_state_dict(path: str, owner: str = '') -> Dict[str, torch.Tensor]:
    """Read a checkpoint's state dict with ``torch.load(weights_only=True)``.

    Args:
        path (str): A checkpoint ``{'state_dict': {name: tensor}, ...}``
            (mmengine's format) or a plain ``{name: tensor}`` file.
        owner (str): Name put before error messages (e.g. the model).

    Returns:
        dict[str, Tensor]: The state dict, keys as stored.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file cannot be read weights-only or holds no
            state dict.

    Example:
        >>> torch.save({'state_dict': {'w': torch.ones(1)}}, 'c.pth')
        >>> read_state_dict('c.pth')
        {'w': tensor([1.])}
    """
    who = f'{owner}: ' if owner else ''
    ckpt = load_weights_only(
        path, owner,
        f'{CHECKPOINT_HELP}; one written with PlainCheckpointHook (every '
        f'hlss config has it) or a plain state dict')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f'{who}checkpoint {path} holds no state dict '
            f'(expected {{"state_dict": {{name: tensor}}}} or '
            f'{{name: tensor}}).')
    return state


def _listing(keys: List[str], limit: int = 10) -> str:
    more = f' ... ({len(keys)} in all)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def state_dict_mismatch(expected: Mapping[str, torch.Tensor],
                        state: Mapping[str, torch.Tensor]) -> str:
    """How a checkpoint's state dict differs from a model's, or ``''``.

    A module's ``_extra_state`` (e.g. the augmentation step of
    ``SRHBatchAugmentPreprocessor``) may be missing: older checkpoints lack
    it.

    Args:
        expected (Mapping[str, Tensor]): ``model.state_dict()``.
        state (Mapping[str, Tensor]): The checkpoint's state dict (any DDP
            ``module.`` prefix already removed).

    Returns:
        str: ``'missing keys: a, b; unexpected keys: c; shape mismatch: d
        (checkpoint (3,), model (4,))'`` (the parts that apply), or ``''``
        when they match.

    Example:
        >>> state_dict_mismatch({'w': torch.ones(2)}, {'w': torch.ones(3)})
        'shape mismatch: w (checkpoint (3,), model (2,))'
    """
    missing = sorted(k for k in set(expected) - set(state)
                     if not k.endswith('_extra_state'))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f'{k} (checkpoint {tuple(state[k].shape)}, model '
        f'{tuple(expected[k].shape)})' for k in set(state) & set(expected)
        if isinstance(state[k], torch.Tensor)
        and isinstance(expected[k], torch.Tensor)
        and state[k].shape != expected[k].shape)
    parts = []
    if missing:
        parts.append(f'missing keys: {_listing(missing)}')
    if unexpected:
        parts.append(f'unexpected keys: {_listing(unexpected)}')
    if shapes:
        parts.append(f'shape mismatch: {_listing(shapes)}')
    return '; '.join(parts)
