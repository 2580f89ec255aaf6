"""Test loop that evaluates embeddings of any model."""
from mmengine.runner import TestLoop
from mmpretrain.registry import LOOPS

from .embedding_loop_mixin import EmbeddingLoopMixin

__all__ = ['EmbeddingTestLoop']


@LOOPS.register_module()
class EmbeddingTestLoop(EmbeddingLoopMixin, TestLoop):
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

    stage = 'test'
