"""Read checkpoints safely (``weights_only=True``) with one-line errors,
and compare their state dicts with a model's: the one home of both for the
package and the tools (``tools/test.py``, ``--resume``, the explanations,
``BackboneEmbedder`` / ``HLSSPretrained`` and ``CLIPResNet``)."""
import os.path as osp
import pickle
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple

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


class CheckpointReadError(ValueError):
    """A file ``torch.load(weights_only=True)`` cannot read.

    Attributes:
        path (str): The file.
        reason (str): Why, in one clause (:func:`describe_load_error`), for
            callers that word their own message.
    """

    def __init__(self, message: str, path: str, reason: str):
        super().__init__(message)
        self.path = path
        self.reason = reason


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
        CheckpointReadError: (a ``ValueError``) If the file cannot be read
            weights-only (never with torch's advice to turn
            ``weights_only`` off).

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
        reason = describe_load_error(err)
        raise CheckpointReadError(
            f'{who}{path} is not a readable checkpoint: {reason}. '
            f'Checkpoints are only read weights-only '
            f'(torch.load(weights_only=True)); {fix}.', path, reason) from None


def read_checkpoint(path: str, owner: str = ''
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a checkpoint's state dict and ``meta`` weights-only.

    Args:
        path (str): A checkpoint ``{'state_dict': {name: tensor},
            'meta': {...}, ...}`` (mmengine's format) or a plain
            ``{name: tensor}`` file.
        owner (str): Name put before error messages (e.g. the model).

    Returns:
        tuple: ``(state_dict, meta)``: the state dict, keys as stored, and
        the checkpoint's ``meta`` (``{}`` for a plain file or none).

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CheckpointReadError: (a ``ValueError``) If the file cannot be read
            weights-only.
        ValueError: If the file holds no state dict.

    Example:
        >>> torch.save({'state_dict': {'w': torch.ones(1)},
        ...             'meta': {'epoch': 3}}, 'c.pth')
        >>> read_checkpoint('c.pth')
        ({'w': tensor([1.])}, {'epoch': 3})
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
    meta = ckpt.get('meta') if state is not ckpt else None
    return state, dict(meta) if isinstance(meta, dict) else {}


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
    return read_checkpoint(path, owner)[0]


def strip_prefix(state: Mapping[str, torch.Tensor],
                 prefix: str) -> Dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix``, with ``prefix`` removed.

    Args:
        state (Mapping[str, Tensor]): A state dict.
        prefix (str): e.g. ``'backbone.'``; ``''`` keeps every entry.

    Returns:
        dict[str, Tensor]: The entries whose key starts with ``prefix``.

    Example:
        >>> strip_prefix({'backbone.w': torch.ones(1), 'neck.w':
        ...               torch.ones(1)}, 'backbone.')
        {'w': tensor([1.])}
    """
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}


def strip_ddp_prefix(state: Mapping[str, torch.Tensor]
                     ) -> Dict[str, torch.Tensor]:
    """Remove the ``module.`` that a DDP-wrapped save puts before every key
    (only when every key has it).

    Example:
        >>> strip_ddp_prefix({'module.w': torch.ones(1)})
        {'w': tensor([1.])}
    """
    if state and all(k.startswith('module.') for k in state):
        return strip_prefix(state, 'module.')
    return dict(state)


class StateDictDiff(NamedTuple):
    """How a checkpoint's state dict differs from a model's.

    Attributes:
        missing (list[str]): Model keys the checkpoint lacks, sorted.
        unexpected (list[str]): Checkpoint keys the model lacks, sorted.
        shapes (list[tuple]): ``(key, checkpoint_shape, model_shape)`` of
            the common keys whose shapes differ, sorted by key.
    """
    missing: List[str]
    unexpected: List[str]
    shapes: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def state_dict_diff(expected: Mapping[str, Any],
                    state: Mapping[str, Any],
                    optional_extra_state: bool = True) -> StateDictDiff:
    """Compare a checkpoint's state dict with a model's, key by key.

    Args:
        expected (Mapping[str, Tensor]): ``model.state_dict()``.
        state (Mapping[str, Tensor]): The checkpoint's state dict (prefixes
            already removed).
        optional_extra_state (bool): A missing ``..._extra_state`` key (e.g.
            the augmentation step of ``SRHBatchAugmentPreprocessor``, which
            older checkpoints lack) is not reported. Defaults to True.

    Returns:
        StateDictDiff: Missing, unexpected and differently shaped keys; it
        is false when the two match.

    Example:
        >>> diff = state_dict_diff({'w': torch.ones(2), 'b': torch.ones(1)},
        ...                        {'w': torch.ones(3), 'x': torch.ones(1)})
        >>> diff.missing, diff.unexpected, diff.shapes
        (['b'], ['x'], [('w', (3,), (2,))])
    """
    missing = sorted(k for k in set(expected) - set(state)
                     if not (optional_extra_state
                             and k.endswith('_extra_state')))
    unexpected = sorted(set(state) - set(expected))
    shapes = [(k, tuple(state[k].shape), tuple(expected[k].shape))
              for k in sorted(set(state) & set(expected))
              if isinstance(state[k], torch.Tensor)
              and isinstance(expected[k], torch.Tensor)
              and state[k].shape != expected[k].shape]
    return StateDictDiff(missing, unexpected, shapes)


def listing(items: Sequence[str], limit: int = 10) -> str:
    """``'a, b, c ... (N in all)'``: at most ``limit`` items, for messages.

    Example:
        >>> listing(['a', 'b', 'c'], limit=2)
        'a, b ... (3 in all)'
    """
    items = list(items)
    more = f' ... ({len(items)} in all)' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more


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
    missing, unexpected, shape_diff = state_dict_diff(expected, state)
    shapes = [f'{k} (checkpoint {got}, model {want})'
              for k, got, want in shape_diff]
    parts = []
    if missing:
        parts.append(f'missing keys: {listing(missing)}')
    if unexpected:
        parts.append(f'unexpected keys: {listing(unexpected)}')
    if shapes:
        parts.append(f'shape mismatch: {listing(shapes)}')
    return '; '.join(parts)
