"""``mode='predict'`` for self-supervised algorithms: attach embeddings."""
from typing import List, Optional

import torch
from mmpretrain.structures import DataSample


class EmbeddingPredictMixin:
    """Adds a ``'predict'`` mode that attaches embeddings to data samples.

    MMPretrain's ``BaseSelfSupervisor.forward`` knows only ``'tensor'`` and
    ``'loss'``, so mmengine's val/test loops (which call
    ``model.val_step`` → ``forward(mode='predict')``) cannot evaluate a
    self-supervised model. Mixed in before the base class, this mixin
    routes ``'predict'`` to :meth:`predict`, which stores each sample's
    ``extract_feat`` embedding in ``feats`` — what evaluators such as
    ``HierarchicalKNNMetric`` read. :meth:`extract_feat` defaults to the
    pooled embedding ``neck(backbone(inputs))`` (last output), which suits
    algorithms whose neck pools (HLSS, HiDisc); override it otherwise.

    Example:
        >>> class MyAlgo(EmbeddingPredictMixin, BaseSelfSupervisor):
        ...     def loss(self, inputs, data_samples):
        ...         ...
        >>> # MyAlgo(...)(images, samples, mode='predict')[0].feats
    """

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled backbone embeddings ``(N, C)``: ``neck(backbone(x))``."""
        feats = self.neck(self.backbone(inputs))
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """``'tensor'``: embeddings; ``'loss'``: losses; ``'predict'``:
        data samples carrying their embedding in ``feats``."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Embed a batch and attach ``feats`` ``(C,)`` to each sample.

        Args:
            inputs (Tensor | list[Tensor]): ``(N, C, H, W)`` (the first view
                is used when a list is given).
            data_samples (list[DataSample], optional): Samples to fill; new
                ones are made when None.

        Returns:
            list[DataSample]: One per input, with ``feats`` set.
        """
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        return attach_feats(self.extract_feat(inputs), data_samples,
                            f'{type(self).__name__}.predict')


def attach_feats(feats: torch.Tensor,
                 data_samples: Optional[List[DataSample]],
                 owner: str) -> List[DataSample]:
    """Store row ``i`` of ``feats`` as ``data_samples[i].feats``.

    What evaluators such as ``HierarchicalKNNMetric`` read; shared by
    :meth:`EmbeddingPredictMixin.predict` and the embedding val/test loops.

    Args:
        feats (Tensor): ``(N, C)`` embeddings.
        data_samples (list[DataSample], optional): ``N`` samples to fill;
            new ones are made when None.
        owner (str): Name put before the error message.

    Returns:
        list[DataSample]: The samples, each with ``feats`` ``(C,)``.

    Raises:
        ValueError: If there are not ``N`` samples.

    Example:
        >>> attach_feats(torch.ones(2, 3), None, 'demo')[1].feats
        tensor([1., 1., 1.])
    """
    if data_samples is None:
        data_samples = [DataSample() for _ in range(feats.shape[0])]
    if len(data_samples) != feats.shape[0]:
        raise ValueError(f'{owner}: {len(data_samples)} data samples for '
                         f'{feats.shape[0]} inputs; the batch\'s inputs and '
                         f'data_samples must have one entry per image.')
    for sample, feat in zip(data_samples, feats):
        sample.set_field(feat, 'feats')
    return data_samples
