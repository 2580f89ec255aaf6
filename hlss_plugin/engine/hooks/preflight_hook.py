"""Hook that checks, before the first iteration, what evaluation will need."""
import copy
import itertools
import logging
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS, TRANSFORMS

from hlss_plugin.datasets.base_hierarchical_dataset import \
    BaseHierarchicalDataset
from hlss_plugin.datasets.hierarchical_knn_dataset import (
    ROLES, HierarchicalKNNDataset, split_source)
from hlss_plugin.augmentation.ops import RandomResizedCrop, Resize
from hlss_plugin.errors import BadPatchError
from hlss_plugin.evaluation.metrics.hierarchical_knn_metric import \
    HierarchicalKNNMetric
from hlss_plugin.utils.config import walk_config

#: Transforms that fix the view size, and the key that sets it.
VIEW_TRANSFORMS = {'SRHAugment': 'crop_size', 'CenterCropTensor': 'size',
                   'ResizeTensor': 'size'}

#: ``(path, (height, width))`` of a patch; ``(key, (h, w), type)`` of a view.
Patch = Tuple[str, Tuple[int, int]]
View = Tuple[str, Tuple[int, int], str]


class PreflightError(ValueError):
    """What :class:`PreflightHook` found; the tools print it as one error."""


def hierarchical_datasets(dataset: Any) -> List[BaseHierarchicalDataset]:
    """The hierarchical datasets in ``dataset`` (wrappers searched)."""
    if isinstance(dataset, BaseHierarchicalDataset):
        return [dataset]
    inner = list(getattr(dataset, 'datasets', None) or [])
    if getattr(dataset, 'dataset', None) is not None:
        inner.append(dataset.dataset)
    return [d for x in inner for d in hierarchical_datasets(x)]


def view_sizes(cfg: Any, roots: Sequence[str]) -> List[View]:
    """Every view size the config's transforms produce under ``roots``.

    ``SRHAugment`` (its ``resize`` / ``random_resized_crop`` size, set by
    ``crop_size``), ``CenterCropTensor`` and ``ResizeTensor`` (``size``).

    Args:
        cfg (Config | dict): The config.
        roots (Sequence[str]): Top-level keys to search, e.g.
            ``('train_dataloader', 'model')``.

    Returns:
        list[tuple]: ``(config key, (h, w), transform type)``, e.g.
        ``('val_dataloader.dataset.pipeline.2.size', (224, 224),
        'CenterCropTensor')``.

    Example:
        >>> view_sizes(dict(v=dict(pipeline=[dict(type='CenterCropTensor',
        ...                                        size=32)])), ['v'])
        [('v.pipeline.0.size', (32, 32), 'CenterCropTensor')]
    """
    found = []
    for root in roots:
        node = cfg.get(root, None)
        for container, key, path in walk_config(node, root):
            value = container[key]
            if not (isinstance(value, dict)
                    and value.get('type') in VIEW_TRANSFORMS):
                continue
            kind = value['type']
            transform = TRANSFORMS.build(copy.deepcopy(dict(value)))
            if kind == 'SRHAugment':
                sizes = [op.size for op, _ in transform.steps
                         if isinstance(op, (Resize, RandomResizedCrop))]
                if not sizes:
                    continue
                size = (max(s[0] for s in sizes), max(s[1] for s in sizes))
            else:
                size = tuple(transform.size)
            found.append((f'{path}.{VIEW_TRANSFORMS[kind]}', size, kind))
    return found


def load_patch_size(dataset: Any, indices: Iterable[int],
                    policy: str = 'raise',
                    retries: int = 10) -> Optional[Patch]:
    """Read one patch of ``dataset`` and return its path and size.

    Runs the dataset's pipeline on the first of ``indices`` up to (and
    including) the transform that sets ``img`` (the loading transform).
    A :class:`BadPatchError` is raised under ``policy='raise'``; under
    ``'skip'`` the next index is tried (at most ``retries``).

    Args:
        dataset: A dataset with ``get_data_info`` and a ``pipeline``.
        indices (Iterable[int]): Candidate items, in order.
        policy (str): ``'raise'`` or ``'skip'``.
        retries (int): Items tried under ``'skip'``.

    Returns:
        tuple | None: ``(img_path, (height, width))``, or None when the
        pipeline has no loading transform (nothing to check).
    """
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms',
                         None)
    if not transforms:
        return None
    last = None
    for tried, idx in enumerate(indices):
        if tried >= max(1, retries):
            break
        info = dataset.get_data_info(idx)
        results = copy.deepcopy(info)
        try:
            for transform in transforms:
                results = transform(results)
                if results is None or 'img' in results:
                    break
        except BadPatchError as err:
            if policy != 'skip':
                raise
            last = err
            continue
        if not results or 'img' not in results:
            return None
        shape = results.get('img_shape')
        if shape is None:
            img = results['img']
            shape = (img.shape[-2:] if hasattr(img, 'dim') else
                     img.shape[:2])
        return str(info.get('img_path', f'item {idx}')), (int(shape[0]),
                                                          int(shape[1]))
    if last is not None:
        raise last
    return None


def patch_size_errors(where: str, patch: Optional[Patch],
                      views: Sequence[View]) -> List[str]:
    """Errors for the views larger than ``patch`` (one per view)."""
    if patch is None:
        return []
    path, (height, width) = patch
    errors = []
    for key, (h, w), kind in views:
        if h <= height and w <= width:
            continue
        most = min(height, width)
        errors.append(
            f'{where} patch {path} is {height}x{width} px, smaller than the '
            f'{h}x{w} px view set by {key} ({kind}); a patch must be at '
            f'least as large as every view (training would silently '
            f'upsample it, evaluation refuses it). Set {key} to at most '
            f'{most} (e.g. --cfg-options {key}={most}) or use patches of at '
            f'least {h}x{w} px.')
    return errors


def _indices_of_role(dataset: HierarchicalKNNDataset,
                     role: str) -> Iterable[int]:
    """Dataset indices of ``role``'s items, in order (a lazy scan starting
    where the role's items start without an ``indices`` subset)."""
    start = 0 if role == 'bank' else dataset.role_counts['bank']
    for i in itertools.chain(range(start, len(dataset)), range(start)):
        if dataset.get_data_info(i)['knn_role'] == role:
            yield i


def _policy_errors(readers: Sequence[Tuple[str, tuple, str]],
                   train: Sequence[BaseHierarchicalDataset]) -> List[str]:
    """Errors for evaluation datasets reading a training split with
    another ``on_bad_patch``; ``readers`` are ``(config key, split_source,
    policy)``."""
    errors = []
    for key, source, mine in readers:
        for other in train:
            if split_source(other) != source or other.on_bad_patch == mine:
                continue
            errors.append(
                f'train_dataloader.dataset reads split {other.split!r} of '
                f'{other.data_root} with on_bad_patch='
                f'{other.on_bad_patch!r}, but {key} reads the same split '
                f'with on_bad_patch={mine!r}; a split is read with one '
                f'policy (else a bad patch skipped in every epoch stops the '
                f'evaluation, or is skipped there only). Set '
                f'{key}.on_bad_patch={other.on_bad_patch!r} (e.g. '
                f'--cfg-options {key}.on_bad_patch={other.on_bad_patch}).')
    return errors


@HOOKS.register_module()
class PreflightHook(Hook):
    """Check, before the first training iteration, what validation and
    testing will need, so that nothing fails after the epochs are spent.

    In ``before_train`` (and ``before_test`` for ``tools/test.py``; in
    ``before_val`` for a run that only validates) it checks:

    * the evaluation dataset: it was built (so its metadata, split files and
      patient labels were read and checked by the dataset layer), it is not
      empty, and a :class:`HierarchicalKNNDataset` keeps bank *and* query
      items after any ``indices`` subset;
    * ``k`` of every :class:`HierarchicalKNNMetric` against the bank size:
      one rule everywhere, ``k`` is clipped to the bank with a warning that
      names the key in use (``val_evaluator.k`` here, ``test_evaluator.k``
      when testing; :meth:`HierarchicalKNNMetric.effective_k`); the hook
      also tells each metric its key, for its own messages;
    * patch size against every view size: one patch per split is read (the
      first training item, the first bank and the first query item) and must
      be at least as large as every ``SRHAugment`` view (its ``resize`` /
      ``random_resized_crop`` size), ``CenterCropTensor`` and
      ``ResizeTensor`` size of that stage's config (training:
      ``train_dataloader`` and ``model``, e.g. the fast config's
      ``model.data_preprocessor.augment``; evaluation: ``val_dataloader`` /
      ``test_dataloader``). A smaller patch would be upsampled silently in
      training and refused by ``CenterCropTensor`` in evaluation, so it is
      an error naming the patch, its size and the key;
    * one bad-patch policy per split: a kNN bank (or query) that reads the
      same split of the same files as the training dataset must have the
      same ``on_bad_patch``. With ``'skip'`` for training and ``'raise'``
      for the bank, one corrupt training patch would be skipped for every
      epoch and then stop the validation; the mismatch is an error naming
      both keys.

    Reading a patch obeys the dataset's ``on_bad_patch``: a corrupt first
    patch under ``'raise'`` stops the run here, before training.

    Problems are raised together as one :class:`PreflightError`
    (a ``ValueError``); ``tools/train.py`` and ``tools/test.py`` print it
    without a traceback. ``default_hooks.preflight`` in
    ``_base_/default_runtime.py`` sets the hook up for every config;
    ``default_hooks.preflight.enabled=False`` turns it off (mmengine refuses
    None for a default hook it does not know). Every rank runs the same
    checks, so all ranks stop together under DDP.

    Args:
        enabled (bool): Run the checks. Defaults to True.

    Example:
        >>> default_hooks = dict(preflight=dict(type='PreflightHook'))
    """

    priority = 'VERY_HIGH'

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self._val_checked = not self.enabled

    # ------------------------------------------------------------- stages
    def before_train(self, runner) -> None:
        """Check the training data and the validation loop."""
        if not self.enabled:
            return
        cfg = runner.cfg
        train = hierarchical_datasets(runner.train_dataloader.dataset)
        errors = []
        views = view_sizes(cfg, ('train_dataloader', 'model'))
        for dataset in train[:1]:
            errors += patch_size_errors(
                f'training (train_dataloader.dataset, split '
                f'{getattr(dataset, "split", None)!r})',
                self._first_patch(dataset, range(len(dataset)),
                                  dataset.on_bad_patch,
                                  dataset.max_bad_patch_retries),
                views)
        loop = runner.val_loop
        if loop is not None:
            errors += self.check_eval(cfg, 'val', loop, train)
            self._val_checked = True
        self._raise(errors)

    def before_val(self, runner) -> None:
        """Check the validation loop of a run that did not train first."""
        if not self._val_checked:
            self._val_checked = True
            self._raise(self.check_eval(runner.cfg, 'val', runner.val_loop))

    def before_test(self, runner) -> None:
        """Check the test loop."""
        if not self.enabled:
            return
        self._raise(self.check_eval(runner.cfg, 'test', runner.test_loop))

    # ------------------------------------------------------------- checks
    def check_eval(self, cfg: Any, stage: str, loop: Any,
                   train: Sequence[BaseHierarchicalDataset] = ()
                   ) -> List[str]:
        """Check a val / test loop; return the problems found.

        Args:
            cfg (Config): The runner's config (for key names and views).
            stage (str): ``'val'`` or ``'test'``.
            loop: The built loop (``dataloader``, ``evaluator``).
            train (Sequence[BaseHierarchicalDataset]): The training
                datasets, for the bad-patch policy check.

        Returns:
            list[str]: Error messages (empty when all is well).
        """
        loader_key, eval_key = f'{stage}_dataloader', f'{stage}_evaluator'
        dataset = loop.dataloader.dataset
        metrics = self._name_metrics(cfg, eval_key, loop.evaluator)
        if len(dataset) == 0:
            return [f'{loader_key}.dataset has no items; point it at a '
                    f'split with patches (check its indices).']
        views = view_sizes(cfg, (loader_key, ))
        if not isinstance(dataset, HierarchicalKNNDataset):
            policy = getattr(dataset, 'on_bad_patch', 'raise')
            errors = []
            if isinstance(dataset, BaseHierarchicalDataset):
                errors += _policy_errors(
                    [(f'{loader_key}.dataset', split_source(dataset),
                      policy)], train)
            return errors + patch_size_errors(
                f'{stage} ({loader_key}.dataset)',
                self._first_patch(dataset, range(len(dataset)), policy,
                                  getattr(dataset, 'max_bad_patch_retries',
                                          10)), views)
        dataset.full_init()
        counts = dataset.role_counts
        empty = [role for role in ROLES if counts[role] == 0]
        if empty:
            return [f'{loader_key}.dataset (HierarchicalKNNDataset) keeps '
                    f'no {" and no ".join(empty)} item after its indices '
                    f'({dataset._indices!r}); kNN evaluation needs both. '
                    f'Drop {loader_key}.dataset.indices or keep items of '
                    f'both splits.']
        for metric in metrics:
            metric.effective_k(counts['bank'])  # warns now, not at the end
        errors = _policy_errors(
            [(f'{loader_key}.dataset.{role}', dataset.split_sources.get(role),
              dataset.on_bad_patch.get(role, 'raise')) for role in ROLES],
            train)
        for role in ROLES:
            policy = dataset.on_bad_patch.get(role, 'raise')
            errors += patch_size_errors(
                f'{stage} {role} ({loader_key}.dataset.{role}, split '
                f'{dataset.split_names.get(role)!r})',
                self._first_patch(
                    dataset, _indices_of_role(dataset, role), policy,
                    dataset.max_bad_patch_retries.get(role, 10)), views)
        if not errors:
            k = ', '.join(
                f'{m.evaluator_key}.k={m.effective_k(counts["bank"], False)}'
                for m in metrics)
            print_log(
                f'PreflightHook: {loader_key} ready: bank {counts["bank"]} '
                f'patches (split {dataset.split_names.get("bank")!r}, '
                f'on_bad_patch={dataset.on_bad_patch.get("bank")!r}), query '
                f'{counts["query"]} (split '
                f'{dataset.split_names.get("query")!r}, on_bad_patch='
                f'{dataset.on_bad_patch.get("query")!r})'
                + (f', {k}' if k else ''), logger='current',
                level=logging.INFO)
        return errors

    @staticmethod
    def _name_metrics(cfg: Any, eval_key: str,
                      evaluator: Any) -> List[HierarchicalKNNMetric]:
        """Tell each kNN metric its config key; return those metrics."""
        listed = isinstance(cfg.get(eval_key, None), (list, tuple))
        found = []
        for i, metric in enumerate(getattr(evaluator, 'metrics', [])):
            if isinstance(metric, HierarchicalKNNMetric):
                metric.evaluator_key = f'{eval_key}.{i}' if listed else \
                    eval_key
                found.append(metric)
        return found

    @staticmethod
    def _first_patch(dataset, indices, policy, retries) -> Optional[Patch]:
        try:
            return load_patch_size(dataset, indices, policy, retries)
        except BadPatchError as err:
            raise PreflightError(
                f'PreflightHook: reading a patch before training failed: '
                f'{err} (on_bad_patch={policy!r}; with "skip" the next '
                f'patch is tried).') from err

    @staticmethod
    def _raise(errors: List[str]) -> None:
        if not errors:
            return
        if len(errors) == 1:
            raise PreflightError(f'PreflightHook: {errors[0]}')
        raise PreflightError('PreflightHook found ' + str(len(errors)) +
                             ' problems: ' + ' | '.join(
                                 f'({i}) {e}'
                                 for i, e in enumerate(errors, 1)))
