"""Patch-, slide- and patient-level kNN accuracy of a frozen encoder."""
import logging
import math
import warnings
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from ...utils.arg_checks import check_int
from ..functional.hierarchical_scores import (LEVELS, check_aggregation,
                                              hierarchical_metrics,
                                              metric_keys)
from ..functional.knn import DEFAULT_MAX_BYTES, knn_scores

#: Fields every data sample must carry (see :meth:`process`).
REQUIRED_FIELDS = ('feats', 'gt_label', 'slide_idx', 'patient_idx',
                   'knn_role', 'knn_id')
_PACK_HINT = ("use HierarchicalKNNDataset and PackInputs(algorithm_keys=["
              "'patient', 'slide', 'patient_idx', 'slide_idx', 'knn_role', "
              "'knn_id']) in the val/test pipeline, and a model whose "
              "predict mode sets 'feats' (e.g. HLSS)")


def _as_int(value) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.reshape(-1)[0])
    return int(value)


@METRICS.register_module()
class HierarchicalKNNMetric(BaseMetric):
    """Weighted kNN accuracy at the patch, slide and patient level.

    One val/test loop runs over a :class:`HierarchicalKNNDataset`, whose
    items are the *bank* (e.g. the train split) and the *queries* (the val
    split). Every sample's embedding ``feats`` is stored; at the end the
    queries are classified by weighted kNN against the bank
    (:func:`~hlss_plugin.evaluation.functional.knn_scores`) and the patch
    scores are aggregated to slides and patients
    (:func:`~hlss_plugin.evaluation.functional.hierarchical_metrics`).

    ``aggregation`` chooses how a patch's kNN votes become the
    probabilities that patch metrics rank and slides / patients sum
    (:func:`~hlss_plugin.evaluation.functional.patch_probabilities`):

    * ``'sum'`` (default): L1-normalised votes, summed per slide / patient.
    * ``'published'``: softmax of the L1-normalised votes, summed per slide
      / patient, as the HiDisc (https://arxiv.org/abs/2303.01605) and HLSS
      (https://arxiv.org/abs/2403.14616) evaluation code does (k=200,
      T=0.07 there). Patch ``acc`` / ``topK`` / ``mca`` equal ``'sum'``'s;
      patch ``map`` and every slide / patient metric may differ. One
      remaining difference: that code computes ``mca`` with torchmetrics,
      which also averages in, with recall 0, a class absent from a level's
      labels but predicted there; here such a class is left out (identical
      whenever every class has a sample at that level, as on OpenSRH).

    Samples are identified by ``knn_id``: duplicates (the padding that
    mmengine's ``DefaultSampler`` adds under DDP, or anything else) are
    counted once, and samples are sorted by id, so 1 and N processes give
    the same metrics.

    Metric names: ``<level>/<key>`` for every level in ``levels`` and key in
    ``acc``, ``top2``, ``top3`` (per ``topk``), ``mca``, ``map`` (percent),
    e.g. ``patch/acc``, ``slide/mca``, ``patient/map``; with ``prefix``
    they become ``<prefix>/<level>/<key>``.

    After :meth:`compute_metrics` (on rank 0 only, like every mmengine
    metric), :attr:`last_results` holds everything tools need: per-level
    metrics with confusion matrices, the ``k`` used, the ``aggregation``,
    class names, query classes missing from the bank, the query scores (raw
    kNN votes) and every sample's embedding and ids.

    Args:
        k (int): Neighbours per query. A ``k`` larger than the bank is
            clipped to the bank size with a warning naming the config key
            (:meth:`effective_k`). Defaults to 200.
        temperature (float): Vote weight ``exp(sim / T)``. Defaults to 0.07.
        topk (Sequence[int]): Top-k accuracies. Defaults to ``(1, 2, 3)``.
        bank_role (str): ``knn_role`` value of the bank samples; every other
            role is a query. Defaults to ``'bank'``.
        levels (Sequence[str]): Levels to report. Defaults to
            ``('patch', 'slide', 'patient')``.
        device (str, optional): Where the kNN runs; defaults to CUDA when
            available, else the CPU.
        max_bytes (int): Memory budget of the kNN search. Defaults to
            512 MiB.
        collect_device (str): ``'cpu'`` or ``'gpu'`` for collecting results
            across ranks. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names.
        collect_dir (str, optional): Folder for CPU collection.
        aggregation (str): ``'sum'`` or ``'published'`` (see above).
            Defaults to ``'sum'``.

    Example:
        >>> val_evaluator = dict(type='HierarchicalKNNMetric', k=20)
        >>> # the HiDisc / HLSS protocol
        >>> val_evaluator = dict(type='HierarchicalKNNMetric', k=200,
        ...                      temperature=0.07, aggregation='published')
    """

    # '' (not None): metric names carry no prefix, and mmengine does not warn.
    default_prefix: Optional[str] = ''

    def __init__(self,
                 k: int = 200,
                 temperature: float = 0.07,
                 topk: Sequence[int] = (1, 2, 3),
                 bank_role: str = 'bank',
                 levels: Sequence[str] = LEVELS,
                 device: Optional[str] = None,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 aggregation: str = 'sum'):
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        name = self.__class__.__name__
        check_int('k', k, minimum=1, owner=name)
        if isinstance(temperature, bool) or not isinstance(
                temperature, (int, float)) or not temperature > 0 \
                or not math.isfinite(temperature):
            raise ValueError(f'{name}: temperature must be a number > 0, got '
                             f'{temperature!r}.')
        levels = tuple(levels)
        if not levels or any(lv not in LEVELS for lv in levels):
            raise ValueError(f'{name}: levels must be a non-empty subset of '
                             f'{LEVELS}, got {levels!r}.')
        if not isinstance(bank_role, str) or not bank_role:
            raise ValueError(f'{name}: bank_role must be a non-empty string, '
                             f'got {bank_role!r}.')
        try:
            self.aggregation = check_aggregation(aggregation)
        except ValueError as err:
            raise ValueError(f'{name}: {err}') from None
        self.k = k
        self.temperature = float(temperature)
        self.topk = tuple(topk)
        self.metric_keys = metric_keys(self.topk)  # validates topk
        self.bank_role = bank_role
        self.levels = levels
        self.device = device
        self.max_bytes = int(max_bytes)
        #: Config key of this metric (``'val_evaluator'``,
        #: ``'test_evaluator'``, ``'val_evaluator.1'``), named in messages;
        #: ``PreflightHook`` and ``tools/test.py`` set it.
        self.evaluator_key: Optional[str] = None
        #: The last evaluation's full results (rank 0), see the class doc.
        self.last_results: Optional[Dict] = None

    # ------------------------------------------------------------------- k
    @property
    def k_key(self) -> str:
        """str: The config key of ``k`` for messages, ``'<evaluator_key>.k'``
        (``'val_evaluator.k'`` while :attr:`evaluator_key` is unset)."""
        return f'{self.evaluator_key or "val_evaluator"}.k'

    def effective_k(self, num_bank: int, warn: bool = True) -> int:
        """The ``k`` used with a bank of ``num_bank`` patches.

        The one rule of this project (training validation, ``tools/test.py``
        and ``tools/benchmarks/benchmark.py``): a ``k`` larger than the bank is
        clipped to the bank size (every bank patch then votes), with a warning
        that names the config key (:attr:`k_key`) and the fix.
        ``PreflightHook`` calls this before the first training iteration, so
        the warning comes before any epoch is spent.

        Args:
            num_bank (int): Bank patches.
            warn (bool): Warn (``UserWarning`` and the log) when clipping.
                Defaults to True.

        Returns:
            int: ``min(k, num_bank)``.

        Example:
            >>> HierarchicalKNNMetric(k=200).effective_k(50, warn=False)
            50
        """
        if self.k <= num_bank:
            return self.k
        if warn:
            key = self.k_key
            named = (f'{key}={self.k}' if self.evaluator_key else
                     f'k={self.k} (val_evaluator.k in training, '
                     f'test_evaluator.k in tools/test.py)')
            msg = (f'{self.__class__.__name__}: {named} is larger than the '
                   f'kNN bank ({num_bank} patches); using k={num_bank} '
                   f'(every bank patch votes). Set k to at most {num_bank} '
                   f'(e.g. --cfg-options {key}={num_bank}) or use a larger '
                   f'bank split.')
            warnings.warn(msg, UserWarning)
            print_log(msg, logger='current', level=logging.WARNING)
        return num_bank

    # ------------------------------------------------------------- process
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each sample's embedding, label, hierarchy ids, role and id.

        Args:
            data_batch: The batch (unused).
            data_samples (Sequence[dict]): Model outputs as dicts, each with
                ``feats`` (``(C,)``), ``gt_label``, ``slide_idx``,
                ``patient_idx``, ``knn_role``, ``knn_id``; ``img_path``,
                ``patient`` and ``slide`` are kept when present.
        """
        for sample in data_samples:
            missing = [f for f in REQUIRED_FIELDS if f not in sample]
            if missing:
                raise ValueError(
                    f'{self.__class__.__name__}: a data sample lacks '
                    f'{missing} (it has {sorted(sample)}); {_PACK_HINT}.')
            feats = sample['feats']
            if not isinstance(feats, torch.Tensor):
                feats = torch.as_tensor(feats)
            self.results.append(dict(
                id=_as_int(sample['knn_id']),
                role=str(sample['knn_role']),
                feats=feats.detach().reshape(-1).float().cpu(),
                label=_as_int(sample['gt_label']),
                slide_idx=_as_int(sample['slide_idx']),
                patient_idx=_as_int(sample['patient_idx']),
                img_path=str(sample.get('img_path', '')),
                patient=str(sample.get('patient', '')),
                slide=str(sample.get('slide', ''))))

    # ------------------------------------------------------------- compute
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """kNN-classify the queries against the bank; metrics per level.

        Args:
            results (list[dict]): What :meth:`process` stored, from all
                ranks.

        Returns:
            dict[str, float]: ``{'<level>/<key>': value}`` in percent.

        Raises:
            ValueError: If the query or the bank split is empty, or a
                slide/patient mixes labels. A ``k`` larger than the bank is
                clipped to the bank size with a warning
                (:meth:`effective_k`).
        """
        name = self.__class__.__name__
        unique: Dict[int, dict] = {}
        for item in results:
            unique.setdefault(item['id'], item)
        items = [unique[i] for i in sorted(unique)]
        is_bank = torch.tensor([it['role'] == self.bank_role for it in items],
                               dtype=torch.bool)
        num_bank = int(is_bank.sum())
        num_query = len(items) - num_bank
        if num_query == 0:
            raise ValueError(
                f'{name}: the query (val) split is empty ({num_bank} bank '
                f'samples, no query); point the query dataset of '
                f'HierarchicalKNNDataset at a split with patches.')
        if num_bank == 0:
            raise ValueError(
                f'{name}: the bank split is empty (no sample has knn_role='
                f'{self.bank_role!r}); point the bank dataset of '
                f'HierarchicalKNNDataset at a split with patches (e.g. '
                f'train).')
        k = self.effective_k(num_bank)

        feats = torch.stack([it['feats'] for it in items])
        labels = torch.tensor([it['label'] for it in items])
        slides = torch.tensor([it['slide_idx'] for it in items])
        patients = torch.tensor([it['patient_idx'] for it in items])
        ids = torch.tensor([it['id'] for it in items])
        meta_classes = (self.dataset_meta or {}).get('classes')
        if meta_classes:
            classes = [str(c) for c in meta_classes]
        else:
            classes = [str(c) for c in range(int(labels.max()) + 1)]
        num_classes = len(classes)
        if int(labels.max()) >= num_classes:
            raise ValueError(f'{name}: label {int(labels.max())} is outside '
                             f'the {num_classes} classes of dataset_meta.')

        is_query = ~is_bank
        missing = sorted(set(labels[is_query].tolist()) -
                         set(labels[is_bank].tolist()))
        missing_names = [classes[c] for c in missing]
        if missing:
            msg = (f'{name}: query class(es) {missing_names} have no patch in '
                   f'the bank, so their queries cannot be classified '
                   f'correctly; add such patients to the bank split.')
            warnings.warn(msg, UserWarning)
            print_log(msg, logger='current', level=logging.WARNING)

        device = self.device or ('cuda' if torch.cuda.is_available() else
                                 'cpu')
        scores = knn_scores(feats[is_query], feats[is_bank], labels[is_bank],
                            num_classes, k=k,
                            temperature=self.temperature, device=device,
                            max_bytes=self.max_bytes).cpu()
        per_level = hierarchical_metrics(scores, labels[is_query],
                                         slides[is_query],
                                         patients[is_query], num_classes,
                                         topk=self.topk, levels=self.levels,
                                         aggregation=self.aggregation)
        self.last_results = dict(
            levels=per_level,
            k=k,
            aggregation=self.aggregation,
            classes=classes,
            missing_classes=missing_names,
            query_ids=ids[is_query],
            query_scores=scores,
            ids=ids,
            roles=[it['role'] for it in items],
            feats=feats,
            labels=labels,
            slide_idx=slides,
            patient_idx=patients,
            img_path=[it['img_path'] for it in items],
            patient=[it['patient'] for it in items],
            slide=[it['slide'] for it in items])
        return {f'{level}/{key}': per_level[level][key]
                for level in self.levels for key in self.metric_keys}
