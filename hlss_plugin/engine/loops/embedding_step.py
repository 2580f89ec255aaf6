"""One evaluation step of any model: its own ``predict``, or backbone
embeddings attached to the data samples."""
from typing import List, Sequence

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner.amp import autocast
from mmpretrain.models.necks import GlobalAveragePooling
from mmpretrain.structures import DataSample

from ...models.utils.embedding_predict_mixin import attach_feats

__all__ = ['uses_predict', 'pooled_backbone_feats', 'embed_batch',
           'run_embedding_iter']

#: The pooling of ``BackboneEmbedder``'s default neck and of
#: ``HLSSAuxWrapper``'s default ``pool`` (parameter-free, shared).
_GAP = GlobalAveragePooling()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP-style wrapper (``.module``), else ``model``."""
    return model.module if is_model_wrapper(model) else model


def uses_predict(model: torch.nn.Module, owner: str) -> bool:
    """Whether ``model`` evaluates itself through ``mode='predict'``.

    mmengine's ``val_step`` / ``test_step`` call ``forward(mode='predict')``,
    which MMPretrain models (``ImageClassifier``, ``HLSS``, ``HiDisc``,
    ``HLSSAuxWrapper`` and ``BackboneEmbedder`` through
    ``EmbeddingPredictMixin``) route to a ``predict`` method; MMPretrain's
    ``BaseSelfSupervisor`` has no ``predict`` and raises on that mode. So a
    callable ``predict`` on the unwrapped model is the test. A model
    without one needs a ``backbone`` module to be embedded instead.

    Args:
        model (nn.Module): The runner's model (a DDP wrapper is unwrapped).
        owner (str): Name used in the error message (the loop's class).

    Returns:
        bool: True to use the model's own ``val_step`` / ``test_step``;
        False to embed with :func:`embed_batch`.

    Raises:
        ValueError: When the model has neither ``predict`` nor a
            ``backbone`` module.

    Example:
        >>> embedder = MODELS.build(dict(type='BackboneEmbedder',
        ...     backbone=dict(type='ResNet', depth=18)))
        >>> uses_predict(embedder, 'EmbeddingValLoop')
        True
        >>> uses_predict(embedder.backbone, 'EmbeddingValLoop')
        Traceback (most recent call last):
        ValueError: EmbeddingValLoop: the model ResNet has neither ...
    """
    module = _unwrap(model)
    if callable(getattr(module, 'predict', None)):
        return True
    if isinstance(getattr(module, 'backbone', None), torch.nn.Module):
        return False
    raise ValueError(
        f'{owner}: the model {type(module).__name__} has neither a '
        f'predict() method (mode="predict") nor a `backbone` module, so its '
        f'embeddings cannot be evaluated. Give it a backbone, mix '
        f'EmbeddingPredictMixin into its class, or evaluate its checkpoint '
        f'with BackboneEmbedder (tools/benchmarks/benchmark.py); to train '
        f'without validation set val_dataloader = val_cfg = val_evaluator = '
        f'None.')


def pooled_backbone_feats(backbone: torch.nn.Module,
                          inputs: torch.Tensor) -> torch.Tensor:
    """Embeddings ``(N, C)`` from the last output of ``backbone``.

    A 4-D last output ``(N, C, H, W)`` (ResNet stages) is globally average
    pooled with MMPretrain's ``GlobalAveragePooling``, exactly as
    ``BackboneEmbedder`` (``tools/benchmarks/benchmark.py``) and
    ``HLSSAuxWrapper`` pool by default, so the values match theirs for the
    same weights. A 2-D last output ``(N, C)`` (backbones that pool
    themselves: ViT class token, ``CLIPResNet``) is used as it is.

    Args:
        backbone (nn.Module): Returns a tensor or a tuple of them.
        inputs (Tensor): ``(N, 3, H, W)`` preprocessed images.

    Returns:
        Tensor: ``(N, C)``.

    Raises:
        ValueError: For a last output that is neither 2-D nor 4-D.

    Example:
        >>> backbone = MODELS.build(dict(type='ResNet', depth=18))
        >>> pooled_backbone_feats(backbone, torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 512])
    """
    outputs = backbone(inputs)
    if isinstance(outputs, (tuple, list)):
        outputs = outputs[-1]
    if outputs.dim() == 4:
        return _GAP((outputs, ))[-1]
    if outputs.dim() == 2:
        return outputs
    raise ValueError(
        f'{type(backbone).__name__} returned a last output of shape '
        f'{tuple(outputs.shape)}; embedding needs (N, C, H, W) (average '
        f'pooled) or (N, C). Make the backbone pool (e.g. ViT '
        f"out_type='cls_token'), or give the model a predict() mode "
        f'(HLSSAuxWrapper with pool=...).')


def embed_batch(model: torch.nn.Module,
                data_batch: dict) -> List[DataSample]:
    """Embed a val/test batch with the model's preprocessor and backbone.

    Runs ``model.data_preprocessor(data_batch, training=False)`` (for an
    MMPretrain algorithm its ``SelfSupDataPreprocessor``, which takes the
    stacked ``(B, C, H, W)`` batch of ``default_collate`` as well as a list
    of views; of a list the first view is used), then
    :func:`pooled_backbone_feats`, and stores each row in its data sample's
    ``feats`` (what ``HierarchicalKNNMetric`` reads), as
    ``EmbeddingPredictMixin.predict`` does. Call it under ``torch.no_grad()``
    with the model in eval mode (the loops do). Necks and projectors are
    not used: MMPretrain's ``extract_feat`` is the backbone alone, and the
    pooled backbone output is what every method is compared on.

    Args:
        model (nn.Module): Model (or DDP wrapper) with a ``backbone`` and a
            ``data_preprocessor``.
        data_batch (dict): ``inputs`` and ``data_samples`` from the
            dataloader.

    Returns:
        list[DataSample]: The batch's samples (new ones when it has none),
        each with ``feats`` ``(C,)``.

    Example:
        >>> samples = embed_batch(simclr, next(iter(val_dataloader)))
        >>> samples[0].feats.shape
        torch.Size([2048])
    """
    module = _unwrap(model)
    data = module.data_preprocessor(data_batch, False)
    inputs = data['inputs']
    if isinstance(inputs, (list, tuple)):
        inputs = inputs[0]
    feats = pooled_backbone_feats(module.backbone, inputs)
    return attach_feats(feats, data.get('data_samples', None), 'embed_batch')


def run_embedding_iter(loop, stage: str, idx: int,
                       data_batch: Sequence[dict]) -> None:
    """``ValLoop.run_iter`` / ``TestLoop.run_iter`` with
    :func:`embed_batch` in place of ``model.val_step`` / ``test_step``.

    Calls the ``before_<stage>_iter`` / ``after_<stage>_iter`` hooks, runs
    under the loop's ``fp16`` autocast and feeds the samples to the loop's
    evaluator. There are no losses to record. Across ranks each process
    embeds its own shard; mmengine's evaluator gathers the results before
    computing the metrics.

    Args:
        loop (ValLoop | TestLoop): The calling loop.
        stage (str): ``'val'`` or ``'test'``.
        idx (int): Batch index.
        data_batch (dict): Batch from the dataloader.
    """
    runner = loop.runner
    runner.call_hook(f'before_{stage}_iter', batch_idx=idx,
                     data_batch=data_batch)
    with autocast(enabled=loop.fp16):
        outputs = embed_batch(runner.model, data_batch)
    loop.evaluator.process(data_samples=outputs, data_batch=data_batch)
    runner.call_hook(f'after_{stage}_iter', batch_idx=idx,
                     data_batch=data_batch, outputs=outputs)
