"""Config helpers shared by the tools and the demo."""
import os.path as osp
from typing import Any, Iterator, List, Tuple

from mmengine.config import Config


def walk_config(node: Any, path: str) -> Iterator[Tuple[Any, Any, str]]:
    """Yield ``(container, key, path)`` for every entry under ``node``."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, (list, tuple)):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        child = f'{path}.{key}' if path else str(key)
        yield node, key, child
        yield from walk_config(value, child)


def set_data_root(cfg: Config, data_root: str) -> List[str]:
    """Set every ``data_root`` entry of ``cfg`` to ``data_root``.

    Args:
        cfg (Config): The config, changed in place.
        data_root (str): The new data root (an existing folder).

    Returns:
        list[str]: The config keys that were set, e.g.
        ``['data_root', 'train_dataloader.dataset.data_root']``.

    Raises:
        ValueError: If the folder does not exist or the config has no
            ``data_root`` entry to set.

    Example:
        >>> cfg = Config(dict(data_root='a', val=dict(dataset=dict(
        ...     data_root='a'))))
        >>> set_data_root(cfg, '.')
        ['data_root', 'val.dataset.data_root']
    """
    if not osp.isdir(data_root):
        raise ValueError(
            f'--data-root {data_root!r}: no such folder. Pass the folder '
            f'that holds the dataset (for OpenSRH: the one with meta/ and '
            f'studies/; make a synthetic one with '
            f'`python tools/misc/make_synthetic_srh.py {data_root}`).')
    keys = []
    for container, key, path in list(walk_config(cfg._cfg_dict, '')):
        if key == 'data_root' and isinstance(container, dict):
            container[key] = data_root
            keys.append(path)
    if not keys:
        raise ValueError(
            f'--data-root: the config {cfg.filename or ""} has no '
            f'`data_root` entry to set; set the dataset paths with '
            f'--cfg-options instead.')
    return keys
