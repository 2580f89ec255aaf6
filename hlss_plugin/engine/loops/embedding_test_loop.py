"""Test loop that evaluates embeddings of any model."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import TestLoop
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from .embedding_step import run_embedding_iter, uses_predict

__all__ = ['EmbeddingTestLoop']


@LOOPS.register_module()
class EmbeddingTestLoop(TestLoop):
    """mmengine's ``TestLoop`` for models with or without ``mode='predict'``.

    The test counterpart of :class:`EmbeddingValLoop`: a model with a
    callable ``predict`` is tested exactly as by ``TestLoop``; any other
    model with a ``backbone`` is embedded (data preprocessor with
    ``training=False``, backbone, global average pooling of the last
    output, ``feats`` on each data sample) and the samples go to the
    evaluator. A model with neither raises a ``ValueError`` when the loop
    is built, before any batch is read. ``tools/test.py`` uses it to test
    the checkpoints of the MMPretrain baseline configs.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Test dataloader or its config.
        evaluator (Evaluator | dict | list): Evaluator or its config.
        fp16 (bool): Test under autocast. Defaults to False.

    Example:
        >>> # in a config whose model cannot predict (e.g. type='SimCLR')
        >>> test_cfg = dict(type='EmbeddingTestLoop')
        >>> test_evaluator = dict(type='HierarchicalKNNMetric', k=200)
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False) -> None:
        self.predicts = uses_predict(runner.model, type(self).__name__)
        super().__init__(runner, dataloader, evaluator, fp16)

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        """Test one batch: ``TestLoop.run_iter`` or the embedding step.

        Args:
            idx (int): Batch index.
            data_batch (dict): Batch from the dataloader.
        """
        if self.predicts:
            super().run_iter(idx, data_batch)
        else:
            run_embedding_iter(self, 'test', idx, data_batch)
