"""Validation loop that evaluates embeddings of any model."""
from mmengine.runner import ValLoop
from mmpretrain.registry import LOOPS

from .embedding_loop_mixin import EmbeddingLoopMixin

__all__ = ['EmbeddingValLoop']


@LOOPS.register_module()
class EmbeddingValLoop(EmbeddingLoopMixin, ValLoop):
    """mmengine's ``ValLoop`` for models with or without ``mode='predict'``.

    A model that can predict (a callable ``predict`` on the unwrapped
    model: HLSS, HiDisc, ``HLSSAuxWrapper``, ``BackboneEmbedder``,
    ``ImageClassifier``) is validated exactly as by ``ValLoop``. Any other
    model with a ``backbone`` (MMPretrain's SimCLR, MoCoV3, BYOL, SimSiam,
    BarlowTwins, whose ``forward`` knows only ``'tensor'`` and ``'loss'``)
    is embedded instead: its data preprocessor in eval mode
    (``training=False``), the backbone, global average pooling of the last
    output, the result stored in each data sample's ``feats`` (see
    :func:`~hlss_plugin.engine.loops.embedding_step.embed_batch`) and
    passed to the evaluator (``HierarchicalKNNMetric``). The embeddings
    equal ``BackboneEmbedder``'s (``tools/benchmarks/benchmark.py``) for the
    same weights. Under DDP each rank embeds its shard and the evaluator
    gathers the results. The check runs when the loop is built (at the start of
    training), so a model that can do neither stops at once with a
    ``ValueError`` instead of at its first validation.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Validation dataloader or its config.
        evaluator (Evaluator | dict | list): Evaluator or its config.
        fp16 (bool): Validate under autocast. Defaults to False.

    Example:
        >>> # in a config whose model cannot predict (e.g. type='SimCLR')
        >>> val_cfg = dict(type='EmbeddingValLoop')
        >>> val_evaluator = dict(type='HierarchicalKNNMetric', k=200)
    """

    stage = 'val'
