"""Read a checkpoint's state dict safely (``weights_only=True``)."""
import os.path as osp
from typing import Dict

import torch


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
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{who}checkpoint {path!r} not found; pass the .pth '
            f'file a training run wrote (e.g. work_dirs/<config>/'
            f'epoch_N.pth).')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many types here
        raise ValueError(
            f'{who}checkpoint {path} cannot be read with '
            f'torch.load(weights_only=True) ({type(err).__name__}: {err}). '
            f'Use a checkpoint written with PlainCheckpointHook (every hlss '
            f'config has it) or a plain state dict.') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f'{who}checkpoint {path} holds no state dict '
            f'(expected {{"state_dict": {{name: tensor}}}} or '
            f'{{name: tensor}}).')
    return state
