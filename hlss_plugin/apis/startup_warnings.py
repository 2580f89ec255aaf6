"""Hide the start-up warnings of third-party libraries that say nothing
about the user's run, and only those.

Every tool calls :func:`filter_startup_warnings` first. Each filter matches
one known message (and, where it can, its category and module), so the
project's own warnings and any other library warning still show:

* mmcv-lite: ``Fail to import ``MultiScaleDeformableAttention`` ...``
  (a CUDA op of full mmcv that no config here uses), raised while
  ``mmpretrain`` is imported;
* mmengine ``set_multi_processing``: ``Setting OMP_NUM_THREADS ...`` and
  ``Setting MKL_NUM_THREADS ...`` (mmengine's own defaults for each
  dataloader worker process);
* torch ``DistributedDataParallel``: ```broadcast_buffers` is deprecated``
  (a ``FutureWarning`` for the ``broadcast_buffers=False`` that mmengine's
  wrappers pass on purpose).
"""
import warnings
from typing import List, Optional, Sequence, Tuple, Type

__all__ = ['STARTUP_WARNINGS', 'filter_startup_warnings']

#: ``(message regex, category, module regex)`` of each hidden warning; the
#: message is matched at its start (``warnings.filterwarnings`` semantics).
STARTUP_WARNINGS: Tuple[Tuple[str, Type[Warning], str], ...] = (
    (r'Fail to import ``MultiScaleDeformableAttention``', UserWarning,
     r'mmcv\.cnn\.bricks\.transformer'),
    (r'Setting OMP_NUM_THREADS environment variable for each process',
     UserWarning, r'mmengine\.utils\.dl_utils\.setup_env'),
    (r'Setting MKL_NUM_THREADS environment variable for each process',
     UserWarning, r'mmengine\.utils\.dl_utils\.setup_env'),
    # stacklevel=2: reported from the wrapper that builds the DDP module
    (r'`broadcast_buffers` is deprecated', FutureWarning, ''),
)


def filter_startup_warnings(
        replay: Optional[Sequence[warnings.WarningMessage]] = None
) -> List[warnings.WarningMessage]:
    """Install the filters of :data:`STARTUP_WARNINGS`; show the rest of
    ``replay``.

    A tool imports ``hlss_plugin`` (and with it mmpretrain and mmcv) before
    it can call this function, so it records the warnings of that import
    with ``warnings.catch_warnings(record=True)`` and hands them here: the
    known ones are dropped, every other one is shown as Python would have
    shown it (the active filters decide, so e.g. a ``DeprecationWarning``
    from a library stays hidden as usual).

    Args:
        replay (Sequence[warnings.WarningMessage], optional): Warnings
            recorded before the filters existed.

    Returns:
        list[warnings.WarningMessage]: The replayed warnings that were not
        one of :data:`STARTUP_WARNINGS` (shown unless a filter hides them).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter('always')
        ...     import hlss_plugin.apis  # noqa: F401
        >>> _ = filter_startup_warnings(caught)
    """
    for message, category, module in STARTUP_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category,
                                module=module)
    shown = []
    for record in replay or ():
        if any(issubclass(record.category, category)
               and _matches(message, str(record.message))
               for message, category, _ in STARTUP_WARNINGS):
            continue
        shown.append(record)
        warnings.warn_explicit(record.message, record.category,
                               record.filename, record.lineno,
                               source=record.source)
    return shown


def _matches(pattern: str, text: str) -> bool:
    import re
    return re.match(pattern, text) is not None
