"""Reading metadata files with errors that name the file and the fix."""
import json
import os.path as osp
from typing import Any, Dict, List


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
                         f'tools/misc/make_synthetic_srh.py).')
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


def check_splits(splits: Any, path: str) -> Dict[str, List[str]]:
    """Check a ``{split: [patient, ...]}`` mapping and return it as strings.

    Every split must be a list of patient ids, no split may name a patient
    twice, and no patient may be in two splits: a patient in both ``train``
    and ``val`` would be scored on patches the model trained on.

    Args:
        splits (Any): The parsed split file.
        path (str): File it came from (for the error).

    Returns:
        dict[str, list[str]]: ``{split: [patient ids]}``, in file order.

    Raises:
        ValueError: Naming the file, the patients and the fix.

    Example:
        >>> check_splits({'train': ['P1'], 'val': ['P2']}, 'split.json')
        {'train': ['P1'], 'val': ['P2']}
    """
    splits = require_mapping(splits, path, 'the top level',
                             '{"train": [...], "val": [...]}')
    out: Dict[str, List[str]] = {}
    where: Dict[str, List[str]] = {}
    for name, patients in splits.items():
        if not isinstance(patients, list):
            raise ValueError(
                f'{path}: split "{name}" should be a list of patient ids, '
                f'got {type(patients).__name__}. Fix the file, e.g. '
                f'{{"{name}": ["P1", "P2"]}}.')
        out[str(name)] = [str(p) for p in patients]
        for patient in out[str(name)]:
            where.setdefault(patient, []).append(str(name))
    repeated = {p: s for p, s in where.items() if len(s) > 1}
    if repeated:
        raise ValueError(
            f'{path}: ' + split_overlap_message(
                {p: ' and '.join(f'"{n}"' for n in s)
                 for p, s in repeated.items()}) +
            ' Remove the repeats from the split file (a repeat within one '
            'split would also double the patient\'s patches).')
    return out


def split_overlap_message(places: Dict[str, str]) -> str:
    """The shared text of "patient in several splits" errors.

    Args:
        places (dict[str, str]): ``{patient: where it is listed}``, e.g.
            ``{'P1': '"train" and "val"'}``.

    Returns:
        str: One sentence naming up to five patients, plus the fix.
    """
    shown = '; '.join(f'{p!r} in {w}' for p, w in list(places.items())[:5])
    more = f' (and {len(places) - 5} more)' if len(places) > 5 else ''
    return (f'{len(places)} patient(s) are listed more than once across the '
            f'splits: {shown}{more}. A patient must be in exactly one split '
            f'(otherwise validation scores patients the model trained on).')
