"""Hook that records kNN accuracy, losses and collapse diagnostics per epoch
while a model trains (learning curves)."""
import copy
import json
import os
import os.path as osp
import random
import time
import types
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS, MODELS

from ...evaluation.functional.embedding_diagnostics import \
    embedding_diagnostics
from ...utils.arg_checks import check_int
from ..loops.embedding_step import embed_batch

__all__ = ['KNNCurveHook', 'read_curve']


def read_curve(path: str) -> List[dict]:
    """The records of a ``curve.jsonl`` written by :class:`KNNCurveHook`.

    Args:
        path (str): The file.

    Returns:
        list[dict]: One dict per line, in file order (empty lines skipped).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: For a line that is not JSON, naming the file and line.
    """
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{number}: not a JSON line ({err}); '
                                 f'the file is written by KNNCurveHook, one '
                                 f'record per line.') from None
    return records


class _RandomState:
    """Saves the Python, NumPy and torch (CPU and CUDA) RNG states on enter
    and restores them on exit, so an evaluation leaves training's random
    stream (augmentations, dataloader seeds) exactly as it found it."""

    def __enter__(self):
        self.state = (random.getstate(), np.random.get_state(),
                      torch.get_rng_state(),
                      torch.cuda.get_rng_state_all()
                      if torch.cuda.is_initialized() else None)
        return self

    def __exit__(self, *exc):
        py, npy, cpu, cuda = self.state
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        return False


@HOOKS.register_module()
class KNNCurveHook(Hook):
    """kNN accuracy, loss terms and collapse diagnostics per epoch.

    Every ``interval`` epochs (and after the last one), and once before the
    first iteration (the untrained network, ``epoch: 0``), the backbone of
    the model being trained is evaluated the way
    ``tools/benchmarks/benchmark.py`` evaluates checkpoints: each batch of
    ``dataloader`` (a ``HierarchicalKNNDataset``: bank + queries) goes
    through
    ``data_preprocessor`` (eval mode), the backbone and global average
    pooling (:func:`~hlss_plugin.engine.loops.embedding_step.embed_batch`,
    the embedding ``BackboneEmbedder`` computes for the same weights), and
    ``evaluator`` (``HierarchicalKNNMetric``) classifies the queries. The
    model is put in eval mode for this and back in its previous mode
    after; the Python, NumPy and torch random states are restored, so
    training draws the same augmentations with or without the hook.

    After every epoch one JSON line is appended to ``out_file`` (in the
    runner's ``work_dir``)::

        {"epoch": 2, "iter": 6,
         "losses": {"loss": 5.1, "loss_patch_hvc": 1.2, ...},
         "knn": {"patch": {"acc": 0.43, "mca": 0.40, ...}, ...},
         "diagnostics": {"std": 0.03, "effective_rank": 11.2, ...},
         "eval_s": 1.4}

    ``losses``: the mean over the epoch's iterations of every entry of the
    train step's outputs whose name contains ``'loss'`` (mmengine's
    convention; the per-level HLSS terms ``loss_<level>_hvc`` /
    ``loss_<level>_ha`` and the total ``loss``), so every iteration counts
    whatever ``LoggerHook``'s interval. ``knn`` (fractions in ``[0, 1]``,
    every metric key of the evaluator, e.g. ``acc``, ``top2``, ``mca``),
    ``diagnostics``
    (:func:`~hlss_plugin.evaluation.functional.embedding_diagnostics` of
    all evaluated embeddings, bank and queries) and ``eval_s`` (seconds the
    evaluation took) are present on evaluated epochs only. The epoch-0 line
    has no ``losses``. A fresh run (epoch 0) truncates the file; a resumed
    one appends. Only the main process writes; under DDP every rank embeds
    its shard and the evaluator gathers them.

    Args:
        dataloader (dict): kNN dataloader config (built with
            ``Runner.build_dataloader``), e.g. ``test_dataloader`` of
            ``_base_/datasets/opensrh_knn_eval.py``.
        evaluator (dict | list): Evaluator / metric config, e.g.
            ``dict(type='HierarchicalKNNMetric', k=20)``.
        interval (int): Evaluate every ``interval`` epochs. Defaults to 1.
        data_preprocessor (dict, optional): Preprocessor for evaluation;
            None uses the model's own. ``tools/benchmarks/benchmark.py``
            passes the shared one it evaluates checkpoints with.
        eval_at_start (bool): Evaluate before training (epoch 0). Defaults
            to True.
        out_file (str): File name in ``work_dir``. Defaults to
            ``'curve.jsonl'``.

    Attributes:
        eval_seconds (float): Seconds spent evaluating so far (to subtract
            from the training time).

    Example:
        >>> custom_hooks = [dict(
        ...     type='KNNCurveHook', interval=2,
        ...     dataloader={{_base_.test_dataloader}},
        ...     evaluator=dict(type='HierarchicalKNNMetric', k=20))]
    """

    priority = 'LOW'

    def __init__(self,
                 dataloader: dict,
                 evaluator: Union[dict, list],
                 interval: int = 1,
                 data_preprocessor: Optional[dict] = None,
                 eval_at_start: bool = True,
                 out_file: str = 'curve.jsonl'):
        name = type(self).__name__
        check_int('interval', interval, minimum=1, owner=name)  # epochs
        if not isinstance(dataloader, dict) or 'dataset' not in dataloader:
            raise ValueError(
                f'{name}: dataloader must be a dataloader config dict with a '
                f'dataset (e.g. test_dataloader of _base_/datasets/'
                f'opensrh_knn_eval.py), got {type(dataloader).__name__}.')
        if not isinstance(evaluator, (dict, list)):
            raise ValueError(
                f'{name}: evaluator must be a metric config dict (or a list '
                f'of them), e.g. dict(type="HierarchicalKNNMetric", k=20); '
                f'got {evaluator!r}.')
        if data_preprocessor is not None and not isinstance(
                data_preprocessor, dict):
            raise ValueError(f'{name}: data_preprocessor must be a config '
                             f'dict or None (the model\'s own), got '
                             f'{type(data_preprocessor).__name__}.')
        if not isinstance(out_file, str) or not out_file or \
                osp.isabs(out_file):
            raise ValueError(f'{name}: out_file must be a file name relative '
                             f'to work_dir, got {out_file!r}.')
        self.dataloader_cfg = copy.deepcopy(dataloader)
        self.evaluator_cfg = copy.deepcopy(evaluator)
        self.interval = interval
        self.preprocessor_cfg = copy.deepcopy(data_preprocessor)
        self.eval_at_start = bool(eval_at_start)
        self.out_file = out_file
        self.eval_seconds = 0.0
        self._loader = None
        self._evaluator = None
        self._preprocessor = None
        self._sums: Dict[str, float] = {}
        self._count = 0

    # ------------------------------------------------------------- helpers
    @property
    def path(self) -> Optional[str]:
        """``work_dir/out_file`` once the run started, else None."""
        return getattr(self, '_path', None)

    def _model(self, runner) -> torch.nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _build(self, runner) -> None:
        from mmengine.runner import Runner
        self._loader = Runner.build_dataloader(
            copy.deepcopy(self.dataloader_cfg), seed=runner.seed)
        self._evaluator = Evaluator(copy.deepcopy(self.evaluator_cfg))
        self._evaluator.dataset_meta = getattr(self._loader.dataset,
                                               'metainfo', None)
        if self.preprocessor_cfg is not None:
            self._preprocessor = MODELS.build(
                copy.deepcopy(self.preprocessor_cfg))

    def _embedder(self, runner):
        """What ``embed_batch`` reads: a preprocessor and a backbone."""
        model = self._model(runner)
        backbone = getattr(model, 'backbone', None)
        if not isinstance(backbone, torch.nn.Module):
            raise ValueError(
                f'{type(self).__name__}: the model {type(model).__name__} '
                f'has no `backbone` module to evaluate; use the hook with '
                f'an algorithm that has one (HLSS, HiDisc, MMPretrain\'s '
                f'SimCLR, ..., HLSSAuxWrapper).')
        if self._preprocessor is None:
            return model
        device = next(backbone.parameters()).device
        self._preprocessor.to(device)
        return types.SimpleNamespace(data_preprocessor=self._preprocessor,
                                     backbone=backbone)

    def evaluate(self, runner) -> dict:
        """Embed the kNN data with the current backbone and score it.

        Returns:
            dict: ``knn`` (``{level: {key: fraction}}``), ``diagnostics``
            and ``eval_s``.
        """
        start = time.perf_counter()
        model = self._model(runner)
        was_training = model.training
        with _RandomState():
            if self._loader is None:
                self._build(runner)
            embedder = self._embedder(runner)
            model.eval()
            try:
                with torch.no_grad():
                    for batch in self._loader:
                        self._evaluator.process(
                            data_samples=embed_batch(embedder, batch),
                            data_batch=batch)
                metrics = self._evaluator.evaluate(
                    len(self._loader.dataset))
            finally:
                model.train(was_training)
        knn: Dict[str, Dict[str, float]] = {}
        for key, value in metrics.items():
            level, _, name = key.rpartition('/')
            knn.setdefault(level or 'all', {})[name] = float(value) / 100.0
        record = dict(knn=knn)
        feats = None
        for metric in self._evaluator.metrics:
            results = getattr(metric, 'last_results', None) or {}
            if results.get('feats') is not None:
                feats = results['feats']
        if feats is not None:
            record['diagnostics'] = embedding_diagnostics(feats)
        seconds = time.perf_counter() - start
        self.eval_seconds += seconds
        record['eval_s'] = seconds
        return record

    def _write(self, record: dict) -> None:
        if self.path is not None and is_main_process():
            with open(self.path, 'a') as f:
                f.write(json.dumps(record) + '\n')

    def _due(self, runner) -> bool:
        return (self.every_n_epochs(runner, self.interval)
                or self.is_last_train_epoch(runner))

    # --------------------------------------------------------------- hooks
    def before_train(self, runner) -> None:
        """Open ``out_file`` (truncated on a fresh run); evaluate epoch 0."""
        self._path = osp.join(runner.work_dir, self.out_file)
        if is_main_process():
            os.makedirs(runner.work_dir, exist_ok=True)
            if runner.epoch == 0:
                open(self._path, 'w').close()
        self._sums, self._count = {}, 0
        if self.eval_at_start and runner.epoch == 0:
            self._write(dict(epoch=0, iter=int(runner.iter),
                             **self.evaluate(runner)))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Add the iteration's loss terms to the epoch's sums."""
        for key, value in (outputs or {}).items():
            if 'loss' not in key:
                continue
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.item()
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
        self._count += 1

    def after_train_epoch(self, runner) -> None:
        """Write the epoch's mean losses, and its evaluation when due."""
        # the loop counts the epoch after this hook: runner.epoch + 1 done
        record = dict(epoch=int(runner.epoch) + 1, iter=int(runner.iter),
                      losses={k: v / max(self._count, 1)
                              for k, v in self._sums.items()})
        self._sums, self._count = {}, 0
        if self._due(runner):
            record.update(self.evaluate(runner))
        self._write(record)
