"""Convert checkpoint contents to values a weights-only ``torch.load`` reads.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. That loader
rebuilds only tensors and a short list of Python values; anything else in the
pickle -- mmengine's ``HistoryBuffer`` (its pickle needs ``getattr``), numpy
arrays and numpy scalars -- makes the whole checkpoint unreadable.

:func:`to_plain` rewrites such values as *tagged dicts* made only of readable
values, and :func:`from_plain` turns the tags back into the original objects.
Readable ("plain") values are:

* leaves: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
  ``bytearray``, ``torch.Tensor``, ``torch.Size``, ``torch.dtype`` and
  ``torch.device``;
* containers of plain values: ``dict``, ``collections.OrderedDict``,
  ``collections.Counter`` (mmengine's ``MultiStepLR`` keeps its milestones in
  one), ``list``, ``tuple`` and ``set``.

Subclasses of these (``defaultdict``, named tuples, enums, ``ConfigDict``) are
pickled under their own class name and are *not* readable, so they are
refused like any other unknown object. ``bytes`` is not plain either: with
the pickle protocol ``torch.save`` uses, ``b''`` needs the global ``bytes``.

Tagged forms (the tag key is :data:`PLAIN_TAG`)::

    {'__hlss_type__': 'mmengine.HistoryBuffer', 'log_history': <ndarray tag>,
     'count_history': <ndarray tag>, 'max_length': int}
    {'__hlss_type__': 'numpy.ndarray', 'dtype': '<f8', 'data': Tensor}
    {'__hlss_type__': 'numpy.ndarray', 'dtype': '<U5', 'shape': (2,),
     'data': Tensor}          # str / bytes arrays: their raw bytes as uint8
    {'__hlss_type__': 'numpy.generic', 'dtype': '<i8', 'value': 3}
    {'__hlss_type__': 'bytes', 'data': bytearray(b'...')}

Both functions copy on write: a container whose contents need no change is
returned as the very same object (so a model ``state_dict`` keeps its
``_metadata`` and costs no copy), and the input is never modified.
"""
from collections import Counter, OrderedDict
from typing import Any, Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

#: Key that marks a dict written by :func:`to_plain` for a non-plain object.
PLAIN_TAG = '__hlss_type__'

_HISTORY_BUFFER = 'mmengine.HistoryBuffer'
_NDARRAY = 'numpy.ndarray'
_NUMPY_SCALAR = 'numpy.generic'
_BYTES = 'bytes'

# Exact types (not subclasses) that the weights-only unpickler rebuilds.
_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytearray,
                 torch.Size, torch.dtype, torch.device)
_MAPPINGS = (dict, OrderedDict, Counter)
# numpy dtype kinds stored as a tensor of that dtype / of their raw bytes.
_TENSOR_KINDS = 'biufc'
_RAW_KINDS = 'US'

_FIX = ('Store plain values there instead: tensors, Python numbers, str, '
        'None, or dict / OrderedDict / list / tuple / set of them (numpy '
        'arrays, numpy numbers, bytes and HistoryBuffer are converted for '
        'you), e.g. call `.tolist()`, `float(...)` or `dict(...)` before '
        'putting the value into the message hub or checkpoint meta.')


def to_plain(obj: Any, path: str = 'obj') -> Any:
    """Return ``obj`` with every non-plain value replaced by a tagged dict.

    Args:
        obj (Any): A checkpoint or any part of it.
        path (str): How to name ``obj`` in error messages; nested values are
            named by appending ``['key']`` / ``[index]``. Defaults to
            ``'obj'``.

    Returns:
        Any: ``obj`` itself when it is already plain, else a copy where each
        ``HistoryBuffer``, numpy array, numpy scalar and ``bytes`` value is
        a tagged dict.

    Raises:
        ValueError: If some value is neither plain nor convertible (e.g. an
            object-dtype array, a ``defaultdict`` or a custom class), naming
            its path, or a dict already uses the reserved key
            :data:`PLAIN_TAG`.

    Example:
        >>> import numpy as np
        >>> from mmengine.logging import HistoryBuffer
        >>> hub = {'loss': HistoryBuffer([0.5, 0.25], [1, 1])}
        >>> plain = to_plain({'hub': hub, 'mean': np.float32(0.5)})
        >>> plain['hub']['loss']['__hlss_type__']
        'mmengine.HistoryBuffer'
        >>> plain['mean']
        {'__hlss_type__': 'numpy.generic', 'dtype': '<f4', 'value': 0.5}
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN_LEAVES:
        return obj
    if type(obj) in _MAPPINGS:
        if PLAIN_TAG in obj:
            raise ValueError(
                f'{path} uses the key {PLAIN_TAG!r}, which '
                'PlainCheckpointHook reserves to mark converted values. '
                'Rename that key.')
        for key in obj:
            _check_key(key, path)
        return _map_dict(obj, lambda k, v: to_plain(v, f'{path}[{k!r}]'))
    if type(obj) in (list, tuple):
        return _map_sequence(obj, lambda i, v: to_plain(v, f'{path}[{i}]'))
    if type(obj) is set:
        for item in obj:
            if type(item) not in _PLAIN_LEAVES and not _is_plain_tuple(item):
                raise ValueError(
                    f'{path} is a set holding a {_type_name(item)}, which '
                    'torch.load(weights_only=True) cannot read back. ' + _FIX)
        return obj
    if type(obj) is HistoryBuffer:
        return {
            PLAIN_TAG: _HISTORY_BUFFER,
            'log_history': _array_to_plain(obj._log_history,
                                           f'{path}._log_history'),
            'count_history': _array_to_plain(obj._count_history,
                                             f'{path}._count_history'),
            'max_length': int(obj.max_length),
        }
    if type(obj) is np.ndarray:
        return _array_to_plain(obj, path)
    if isinstance(obj, np.generic):
        return _numpy_scalar_to_plain(obj, path)
    if type(obj) is bytes:
        return {PLAIN_TAG: _BYTES, 'data': bytearray(obj)}
    raise ValueError(
        f'{path} is a {_type_name(obj)}, which torch.load(weights_only=True) '
        'cannot read back. ' + _FIX)


def from_plain(obj: Any, path: str = 'obj') -> Any:
    """Invert :func:`to_plain`: rebuild every tagged dict inside ``obj``.

    Values without a tag pass through unchanged, so checkpoints written
    without :func:`to_plain` (older plain checkpoints, weight-only files, or
    ones loaded with ``weights_only=False``) are accepted as they are.

    Args:
        obj (Any): A loaded checkpoint or any part of it.
        path (str): How to name ``obj`` in error messages. Defaults to
            ``'obj'``.

    Returns:
        Any: ``obj`` itself when it holds no tag, else a copy in which each
        tagged dict is the ``HistoryBuffer``, numpy array, numpy scalar or
        ``bytes`` value it was made from, with the same dtype, shape and
        values.

    Raises:
        ValueError: If a tagged dict names a type this version does not know
            or misses a field.

    Example:
        >>> import numpy as np
        >>> value = {'palette': np.arange(6, dtype=np.uint8).reshape(2, 3)}
        >>> back = from_plain(to_plain(value))
        >>> back['palette'].dtype, back['palette'].shape
        (dtype('uint8'), (2, 3))
    """
    if type(obj) in _MAPPINGS:
        if PLAIN_TAG in obj:
            return _from_tag(obj, path)
        return _map_dict(obj, lambda k, v: from_plain(v, f'{path}[{k!r}]'))
    if type(obj) in (list, tuple):
        return _map_sequence(obj, lambda i, v: from_plain(v, f'{path}[{i}]'))
    return obj


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f'{cls.__module__}.{cls.__qualname__}'


def _is_plain_tuple(obj: Any) -> bool:
    return type(obj) is tuple and all(
        type(item) in _PLAIN_LEAVES or _is_plain_tuple(item) for item in obj)


def _check_key(key: Any, path: str) -> None:
    if type(key) in _PLAIN_LEAVES or _is_plain_tuple(key):
        return
    raise ValueError(
        f'{path} has the key {key!r} of type {_type_name(key)}, which '
        'torch.load(weights_only=True) cannot read back. Use str, int, float, '
        'bool or tuples of them as dict keys, e.g. `int(key)` for a numpy '
        'integer.')


def _map_dict(obj: dict, fn: Callable[[Any, Any], Any]) -> dict:
    """Apply ``fn(key, value)`` to each value; copy only if one changed."""
    new_items = [(key, fn(key, value)) for key, value in obj.items()]
    if all(new is obj[key] for key, new in new_items):
        return obj
    out = type(obj)(dict(new_items))  # a Counter would count the pairs
    if hasattr(obj, '__dict__'):
        # Keep attributes such as a model state_dict's `_metadata`.
        out.__dict__.update(obj.__dict__)
    return out


def _map_sequence(obj, fn: Callable[[int, Any], Any]):
    """Apply ``fn(index, item)`` to each item; copy only if one changed."""
    new_items = [fn(index, item) for index, item in enumerate(obj)]
    if all(new is old for new, old in zip(new_items, obj)):
        return obj
    return type(obj)(new_items)


def _array_to_plain(array: np.ndarray, path: str) -> dict:
    dtype = array.dtype
    if dtype.kind in _TENSOR_KINDS:
        # torch only takes native byte order; the tag keeps the original.
        native = np.array(array, dtype=dtype.newbyteorder('='), order='C',
                          copy=True)
        try:
            data = torch.from_numpy(native)
        except TypeError as err:
            raise ValueError(
                f'{path} is a numpy array of dtype {dtype}, which torch '
                f'cannot hold ({err}). Cast it, e.g. `.astype(np.float64)`, '
                'before storing it.') from err
        return {PLAIN_TAG: _NDARRAY, 'dtype': dtype.str, 'data': data}
    if dtype.kind in _RAW_KINDS:
        raw = np.frombuffer(array.tobytes(), np.uint8)
        return {
            PLAIN_TAG: _NDARRAY,
            'dtype': dtype.str,
            'shape': tuple(array.shape),
            'data': torch.from_numpy(raw.copy()),
        }
    raise ValueError(
        f'{path} is a numpy array of dtype {dtype} (kind {dtype.kind!r}); '
        'only bool, integer, float, complex, str and bytes arrays can be '
        'stored in a weights-only checkpoint. ' + _FIX)


def _numpy_scalar_to_plain(scalar: np.generic, path: str) -> dict:
    value = scalar.item()
    if type(value) is bytes:
        value = bytearray(value)
    if scalar.dtype.kind not in _TENSOR_KINDS + _RAW_KINDS or \
            type(value) not in _PLAIN_LEAVES:
        raise ValueError(
            f'{path} is a {_type_name(scalar)}, a numpy scalar without an '
            'exact Python counterpart. ' + _FIX)
    return {PLAIN_TAG: _NUMPY_SCALAR, 'dtype': scalar.dtype.str,
            'value': value}


def _from_tag(tagged: dict, path: str) -> Any:
    kind = tagged[PLAIN_TAG]
    try:
        if kind == _HISTORY_BUFFER:
            return HistoryBuffer(
                log_history=_array_from_plain(tagged['log_history']),
                count_history=_array_from_plain(tagged['count_history']),
                max_length=tagged['max_length'])
        if kind == _NDARRAY:
            return _array_from_plain(tagged)
        if kind == _NUMPY_SCALAR:
            value = tagged['value']
            if type(value) is bytearray:
                value = bytes(value)
            return np.dtype(tagged['dtype']).type(value)
        if kind == _BYTES:
            return bytes(tagged['data'])
    except KeyError as err:
        raise ValueError(
            f'{path} is a {kind!r} record without the field {err}; the '
            'checkpoint is damaged or was edited by hand. Re-save it with '
            'PlainCheckpointHook enabled.') from err
    raise ValueError(
        f'{path} is tagged {PLAIN_TAG}={kind!r}, which this hlss_plugin does '
        f'not know (known: {_HISTORY_BUFFER!r}, {_NDARRAY!r}, '
        f'{_NUMPY_SCALAR!r}, {_BYTES!r}). Upgrade hlss_plugin to the version '
        'that wrote the checkpoint.')


def _array_from_plain(tagged: dict) -> np.ndarray:
    dtype = np.dtype(tagged['dtype'])
    data = tagged['data'].detach().cpu().numpy()
    if dtype.kind in _RAW_KINDS:
        return np.frombuffer(data.tobytes(), dtype).reshape(
            tagged['shape']).copy()
    return data.astype(dtype, copy=True)
