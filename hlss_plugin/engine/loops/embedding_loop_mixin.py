"""What ``EmbeddingValLoop`` and ``EmbeddingTestLoop`` share."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from torch.utils.data import DataLoader

from .embedding_step import run_embedding_iter, uses_predict


class EmbeddingLoopMixin:
    """Put before mmengine's ``ValLoop`` / ``TestLoop``: models that predict
    run the base loop's ``run_iter``; others are embedded
    (:func:`~hlss_plugin.engine.loops.embedding_step.run_embedding_iter`).

    Subclasses set ``stage`` (``'val'`` or ``'test'``: the hooks called).
    Which path a model takes is decided when the loop is built, so a model
    that can do neither fails at once with a ``ValueError``.

    Example:
        >>> class MyValLoop(EmbeddingLoopMixin, ValLoop):
        ...     stage = 'val'
    """

    stage = ''

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False) -> None:
        self.predicts = uses_predict(runner.model, type(self).__name__)
        super().__init__(runner, dataloader, evaluator, fp16)

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        """Evaluate one batch: the base loop's ``run_iter`` or the
        embedding step.

        Args:
            idx (int): Batch index.
            data_batch (dict): Batch from the dataloader.
        """
        if self.predicts:
            super().run_iter(idx, data_batch)
        else:
            run_embedding_iter(self, self.stage, idx, data_batch)
