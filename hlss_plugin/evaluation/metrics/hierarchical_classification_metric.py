"""Patch / slide / patient metrics of a classifier's patch scores."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..functional import hierarchical_metrics

LEVELS = ('patch', 'slide', 'patient')


@METRICS.register_module()
class HierarchicalClassificationMetric(BaseMetric):
    """Accuracy, top-k, mean class accuracy and mAP at three levels.

    For classifiers (e.g. a linear probe: MMPretrain's ``ImageClassifier``
    on a frozen HLSS backbone). Each patch's ``pred_score`` is taken as its
    class scores; slide and patient scores are the sums of their patches'
    L1-normalised scores, re-normalised — the same aggregation as
    :class:`HierarchicalKNNMetric` with its default ``aggregation='sum'``,
    so the numbers compare directly.

    Data samples must carry ``pred_score``, ``gt_label``, ``slide_idx``,
    ``patient_idx`` (``PackInputs(algorithm_keys=['slide_idx',
    'patient_idx'])``) and ``sample_idx``; duplicates (DDP padding) are
    dropped by ``sample_idx``.

    Args:
        topk (Sequence[int]): Top-k accuracies. Defaults to ``(1, 2, 3)``.
        levels (Sequence[str]): Levels to report. Defaults to all three.
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Metric-name prefix.

    Example:
        >>> val_evaluator = dict(type='HierarchicalClassificationMetric')
    """

    def __init__(self,
                 topk: Sequence[int] = (1, 2, 3),
                 levels: Sequence[str] = LEVELS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = [lv for lv in levels if lv not in LEVELS]
        if unknown:
            raise ValueError(f'HierarchicalClassificationMetric: unknown '
                             f'levels {unknown}; choose from {LEVELS}.')
        self.topk = tuple(topk)
        self.levels = tuple(levels)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's scores, label and hierarchy ids."""
        for sample in data_samples:
            missing = [k for k in ('pred_score', 'gt_label', 'slide_idx',
                                   'patient_idx', 'sample_idx')
                       if k not in sample]
            if missing:
                raise ValueError(
                    f'HierarchicalClassificationMetric: data sample lacks '
                    f'{missing}; use a hierarchical dataset and '
                    f'PackInputs(algorithm_keys=["slide_idx", '
                    f'"patient_idx"]).')
            self.results.append(dict(
                score=sample['pred_score'].detach().float().cpu(),
                label=int(sample['gt_label'][0]),
                slide=int(sample['slide_idx']),
                patient=int(sample['patient_idx']),
                uid=int(sample['sample_idx'])))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Flat ``'<level>/<metric>'`` scalars."""
        unique = {r['uid']: r for r in results}
        if not unique:
            raise ValueError('HierarchicalClassificationMetric: no samples '
                             'were evaluated; the val split is empty.')
        rows = list(unique.values())
        scores = torch.stack([r['score'] for r in rows]).clamp_min(0)
        num_classes = scores.shape[1]
        metrics = hierarchical_metrics(
            scores, torch.tensor([r['label'] for r in rows]),
            torch.tensor([r['slide'] for r in rows]),
            torch.tensor([r['patient'] for r in rows]), num_classes,
            topk=self.topk, levels=self.levels)
        return {f'{level}/{name}': value
                for level, values in metrics.items()
                for name, value in values.items() if name != 'confusion'}
