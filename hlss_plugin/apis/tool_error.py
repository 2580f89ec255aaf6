"""The error every tool prints as one line, without a traceback."""

__all__ = ['ToolError']


class ToolError(Exception):
    """A problem with a tool's command line or config.

    The tools (``tools/train.py``, ``tools/test.py``, ...) catch it and exit
    with ``<tool>: error: <message>``; the message names the flag, config
    key or file and says how to fix it.

    Example:
        >>> raise ToolError("config file 'x.py' not found.")
        Traceback (most recent call last):
        ...
        hlss_plugin.apis.tool_error.ToolError: config file 'x.py' not found.
    """
