"""Reading metadata files with errors that name the file and the fix."""
import json
import os.path as osp
from typing import Any


def load_json(path: str, key: str) -> Any:
    """Load a JSON metadata file.

    Args:
        path (str): File to read.
        key (str): Config key that names the file (for the error).

    Returns:
        Any: The parsed JSON.

    Raises:
        ValueError: If the file is missing or not valid JSON.

    Example:
        >>> load_json('data/synthetic_srh/meta/opensrh.json', 'meta_file')
    """
    if not osp.isfile(path):
        raise ValueError(f'{key} {path} does not exist. Check data_root and '
                         f'{key} (make a synthetic set with '
                         f'tools/make_synthetic_srh.py).')
    try:
        with open(path, 'r', encoding='utf-8') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'{key} {path} is not valid JSON ({err}). Repair or '
                         f'regenerate the file.') from err


def require_mapping(obj: Any, path: str, where: str, expected: str) -> dict:
    """Check that a metadata node is a JSON object.

    Args:
        obj (Any): The node.
        path (str): File it came from.
        where (str): Key path of the node inside the file.
        expected (str): Sketch of the expected structure.

    Returns:
        dict: ``obj`` itself.

    Raises:
        ValueError: If ``obj`` is not a dict.
    """
    if not isinstance(obj, dict):
        raise ValueError(f'{path}: {where} should be an object like '
                         f'{expected}, got {type(obj).__name__}. Fix the '
                         f'file.')
    return obj
