"""Silence mmengine's INFO logs for a block."""
import contextlib
import logging


@contextlib.contextmanager
def quiet_logs():
    """Raise mmengine's current logger to WARNING inside the block.

    ``init_weights`` and the builders print every parameter at INFO; tools
    that build models in a loop use this to keep their output readable. The
    old level is restored on exit, also after an exception.

    Example:
        >>> with quiet_logs():
        ...     pass
    """
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
