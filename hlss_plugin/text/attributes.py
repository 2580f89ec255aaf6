"""Histology attribute lists that tie each hierarchy level to language.

An attribute file is a JSON document::

    {"modality": "free text saying which images the file describes",
     "levels": {"patch":   {"attribute name": ["description", ...], ...},
                "slide":   {...},
                "patient": {...}}}

Each level maps attribute names to a list of short descriptions. A text tower
embeds every description once; the attribute embedding is the re-normalised
mean of its L2-normalised description embeddings
(:meth:`hlss_plugin.models.text_towers.BaseTextTower.embed_attributes`).

Two files ship with the package: ``'srh'`` (stimulated Raman histology of
brain tumours) and ``'he'`` (H&E whole-slide images of TCGA tumours). Like
the published HLSS recipe they hold :data:`SHIPPED_ATTRIBUTES_PER_LEVEL`
attributes per level with :data:`SHIPPED_DESCRIPTIONS_PER_ATTRIBUTE`
descriptions each. User files may be smaller: the validator only requires at
least one attribute per level and at least one description per attribute.
"""
import json
import os.path as osp
from typing import Any, Dict, List, Mapping, Sequence, Tuple

__all__ = [
    'ATTRIBUTE_LEVELS', 'SHIPPED_ATTRIBUTE_FILES',
    'SHIPPED_ATTRIBUTES_PER_LEVEL', 'SHIPPED_DESCRIPTIONS_PER_ATTRIBUTE',
    'attribute_file_path', 'load_attributes', 'validate_attributes'
]

#: Hierarchy levels every attribute file must define, finest first.
ATTRIBUTE_LEVELS: Tuple[str, ...] = ('patch', 'slide', 'patient')

#: Short names of the attribute files shipped in ``hlss_plugin/text``.
SHIPPED_ATTRIBUTE_FILES: Dict[str, str] = {
    'srh': 'srh_attributes.json',
    'he': 'he_attributes.json',
}

#: Attributes per level in each shipped file (the HLSS recipe's size). Not
#: required of user files.
SHIPPED_ATTRIBUTES_PER_LEVEL = 128

#: Descriptions per attribute in each shipped file. Not required of user
#: files.
SHIPPED_DESCRIPTIONS_PER_ATTRIBUTE = 4

_TOP_LEVEL_KEYS = ('modality', 'levels')

Attributes = Dict[str, Dict[str, List[str]]]


class _KeyRecordingDict(dict):
    """A dict that remembers keys that occurred more than once in the JSON.

    ``json`` keeps the last value of a repeated key silently; the validator
    reads :attr:`duplicates` to refuse such files instead.
    """

    duplicates: List[str]


def _record_pairs(pairs: Sequence[Tuple[str, Any]]) -> _KeyRecordingDict:
    out = _KeyRecordingDict()
    out.duplicates = []
    for key, value in pairs:
        if key in out and key not in out.duplicates:
            out.duplicates.append(key)
        out[key] = value
    return out


def attribute_file_path(source: str) -> str:
    """Resolve ``source`` to the path of an attribute JSON file.

    Args:
        source (str): ``'srh'`` or ``'he'`` for a shipped file, otherwise the
            path of a JSON file.

    Returns:
        str: An existing file path.

    Raises:
        ValueError: If ``source`` is neither a shipped name nor a file.

    Example:
        >>> attribute_file_path('srh').endswith('srh_attributes.json')
        True
    """
    if not isinstance(source, str) or not source:
        raise ValueError(
            f'attribute source must be a non-empty string, got {source!r}. '
            f'Use one of {sorted(SHIPPED_ATTRIBUTE_FILES)} or the path of a '
            f'JSON attribute file.')
    if source in SHIPPED_ATTRIBUTE_FILES:
        return osp.join(osp.dirname(osp.abspath(__file__)),
                        SHIPPED_ATTRIBUTE_FILES[source])
    if not osp.isfile(source):
        raise ValueError(
            f'attribute source {source!r} is neither a shipped attribute set '
            f'({sorted(SHIPPED_ATTRIBUTE_FILES)}) nor an existing file. Pass '
            f'one of those names or the path of a JSON attribute file.')
    return source


def load_attributes(source: str) -> Attributes:
    """Load and validate an attribute file.

    Args:
        source (str): ``'srh'``, ``'he'`` or the path of a JSON file in the
            format described in this module's docstring.

    Returns:
        dict: ``{level: {attribute: [description, ...]}}`` with the levels in
        :data:`ATTRIBUTE_LEVELS` order, attributes in file order, and names
        and descriptions stripped of surrounding whitespace.

    Raises:
        ValueError: If the source cannot be found, is not valid JSON, or fails
            :func:`validate_attributes`; the message names the file.

    Example:
        >>> attrs = load_attributes('srh')
        >>> sorted(attrs)
        ['patch', 'patient', 'slide']
        >>> len(attrs['patch']), len(attrs['patch']['high cell density'])
        (128, 4)
    """
    path = attribute_file_path(source)
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f, object_pairs_hook=_record_pairs)
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not valid JSON ({exc}). Fix the syntax of '
                         f'the attribute file.') from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f'{path}: not UTF-8 text ({exc}). Save the '
                         f'attribute file as UTF-8.') from exc
    return validate_attributes(data, where=path)


def _check_no_duplicate_keys(obj: Mapping, where: str, what: str) -> None:
    duplicates = getattr(obj, 'duplicates', None)
    if duplicates:
        raise ValueError(f'{where}: duplicate {what} {duplicates!r}; JSON '
                         f'would silently keep only the last one. Merge or '
                         f'rename them.')


def _norm(text: str) -> str:
    """Comparison key for duplicate checks: case and spacing ignored."""
    return ' '.join(text.split()).casefold()


def _validate_level(level: str, attributes: Any,
                    where: str) -> Dict[str, List[str]]:
    here = f'{where}: level {level!r}'
    if not isinstance(attributes, Mapping):
        raise ValueError(f'{here} must map attribute names to description '
                         f'lists, got {type(attributes).__name__}.')
    if not attributes:
        raise ValueError(f'{here} has no attributes; add at least one.')
    _check_no_duplicate_keys(attributes, here, 'attribute names')
    out: Dict[str, List[str]] = {}
    seen_names: Dict[str, str] = {}
    # Description (normalised) -> attribute of this level that uses it.
    level_texts: Dict[str, str] = {}
    for position, (name, descriptions) in enumerate(attributes.items()):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f'{here} has an empty attribute name {name!r} '
                             f'(attribute {position} of the level); give '
                             f'the attribute a name.')
        name = name.strip()
        at = f'{here}, attribute {name!r}'
        if _norm(name) in seen_names:
            raise ValueError(
                f'{at} duplicates attribute {seen_names[_norm(name)]!r} '
                f'(names are compared ignoring case and spacing); merge or '
                f'rename them.')
        seen_names[_norm(name)] = name
        if not isinstance(descriptions, list):
            raise ValueError(f'{at}: expected a list of description strings, '
                             f'got {type(descriptions).__name__}.')
        if not descriptions:
            raise ValueError(f'{at} has an empty description list; give it '
                             f'at least one description.')
        cleaned: List[str] = []
        seen_texts: Dict[str, int] = {}
        for i, text in enumerate(descriptions):
            if not isinstance(text, str):
                raise ValueError(f'{at}, description {i}: expected a string, '
                                 f'got {type(text).__name__}; write the '
                                 f'description as a JSON string.')
            if not text.strip():
                raise ValueError(f'{at}, description {i} is empty or only '
                                 f'whitespace; write a description or '
                                 f'remove the entry.')
            key = _norm(text)
            if key in seen_texts:
                raise ValueError(
                    f'{at}: description {i} {text.strip()!r} repeats '
                    f'description {seen_texts[key]} (compared ignoring case '
                    f'and spacing); remove or reword it.')
            if key in level_texts:
                raise ValueError(
                    f'{at}: description {i} {text.strip()!r} is also a '
                    f'description of attribute {level_texts[key]!r} '
                    f'(compared ignoring case and spacing); a description '
                    f'shared by two attributes makes their embeddings '
                    f'alike, so reword it or keep it in one attribute.')
            seen_texts[key] = i
            cleaned.append(text.strip())
        for key in seen_texts:
            level_texts[key] = name
        out[name] = cleaned
    return out


def validate_attributes(data: Any, where: str = '<attributes>') -> Attributes:
    """Check a parsed attribute document and return its levels.

    Checks, each with a ``ValueError`` naming ``where`` and the level /
    attribute at fault: the document is an object whose only keys are
    ``'modality'`` (optional string) and ``'levels'``; ``levels`` holds exactly
    the levels of :data:`ATTRIBUTE_LEVELS` (none missing, none unknown); each
    level maps non-empty, unique attribute names to non-empty lists of
    non-empty strings without repeats, and no description is shared by two
    attributes of the same level (levels may reuse each other's wording).
    Repeated JSON keys are caught when the document was parsed by
    :func:`load_attributes` (which records them); names and descriptions are
    compared ignoring case and spacing. Sizes are not checked: the shipped
    files have :data:`SHIPPED_ATTRIBUTES_PER_LEVEL` attributes per level, a
    user file may have fewer.

    Args:
        data (Any): The parsed JSON document.
        where (str): Where the document came from (file path), used in error
            messages. Defaults to ``'<attributes>'``.

    Returns:
        dict: ``{level: {attribute: [description, ...]}}``, levels in
        :data:`ATTRIBUTE_LEVELS` order, whitespace stripped.

    Raises:
        ValueError: On the first problem found.

    Example:
        >>> doc = {'levels': {lv: {'dense': ['many nuclei']}
        ...                   for lv in ('patch', 'slide', 'patient')}}
        >>> validate_attributes(doc)['slide']
        {'dense': ['many nuclei']}
    """
    if not isinstance(data, Mapping):
        raise ValueError(f'{where}: expected a JSON object with keys '
                         f'{list(_TOP_LEVEL_KEYS)}, got '
                         f'{type(data).__name__}.')
    _check_no_duplicate_keys(data, where, 'top-level keys')
    unknown = [k for k in data if k not in _TOP_LEVEL_KEYS]
    if unknown:
        raise ValueError(f'{where}: unknown top-level keys {unknown}; only '
                         f'{list(_TOP_LEVEL_KEYS)} are allowed (attributes go '
                         f'under "levels").')
    if 'modality' in data and not isinstance(data['modality'], str):
        raise ValueError(f'{where}: "modality" must be a string describing '
                         f'the images, got {type(data["modality"]).__name__}.')
    if 'levels' not in data:
        raise ValueError(f'{where}: missing "levels"; add an object with the '
                         f'levels {list(ATTRIBUTE_LEVELS)}.')
    levels = data['levels']
    if not isinstance(levels, Mapping):
        raise ValueError(f'{where}: "levels" must be an object with the '
                         f'levels {list(ATTRIBUTE_LEVELS)}, got '
                         f'{type(levels).__name__}.')
    _check_no_duplicate_keys(levels, f'{where}: "levels"', 'levels')
    unknown = [k for k in levels if k not in ATTRIBUTE_LEVELS]
    if unknown:
        raise ValueError(f'{where}: unknown levels {unknown}; the levels are '
                         f'{list(ATTRIBUTE_LEVELS)}.')
    missing = [lv for lv in ATTRIBUTE_LEVELS if lv not in levels]
    if missing:
        raise ValueError(f'{where}: missing levels {missing}; every attribute '
                         f'file must define {list(ATTRIBUTE_LEVELS)}.')
    return {
        level: _validate_level(level, levels[level], where)
        for level in ATTRIBUTE_LEVELS
    }
