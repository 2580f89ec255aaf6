"""``ExplainError``: bad input to the attribute explanations."""


class ExplainError(ValueError):
    """Bad input to :func:`~hlss_plugin.interpret.explain` (config,
    checkpoint, split, top-k); the message names what is wrong and how to
    fix it.

    Example:
        >>> raise ExplainError('top_k must be a positive int, got 0.')
        Traceback (most recent call last):
        ...
        ExplainError: top_k must be a positive int, got 0.
    """
