"""Exceptions shared by the data layer."""


class BadPatchError(ValueError):
    """A single patch file is missing, corrupt or has the wrong format.

    Loading transforms raise it; hierarchical datasets catch it and apply their
    ``on_bad_patch`` policy (``'raise'`` or ``'skip'``).

    Args:
        path (str): The offending file.
        reason (str): What is wrong and how to fix it.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f'{self.path}: {reason}')
