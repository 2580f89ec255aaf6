"""``AttributeExplainer``: HLSS embeddings explained through the
language-aligned attribute space.

Each HLSS level head ends in an attribute projection whose first ``A`` rows
are the text embeddings of the level's named attributes, so its first ``A``
outputs are similarities to those attributes. :class:`AttributeExplainer`
turns them into top-k attribute lists:

- patch: the patch's own patch-head similarities,
- slide: the mean over the slide's patches of the slide-head similarities,
- patient: the mean over the patient's patches of the patient-head
  similarities,

ranked by default *relative* to a reference bank (a z-score per attribute
against the bank's patches, :mod:`~hlss_plugin.interpret.ranking`), so the
offset every image shares does not give all items the same top-k.

The rest of the explanation lives next to this module:
:mod:`~hlss_plugin.interpret.scoring` (top-k, precision@k),
:mod:`~hlss_plugin.interpret.explain_config` (config helpers),
:mod:`~hlss_plugin.interpret.load_checkpoint` (models and checkpoints),
:mod:`~hlss_plugin.interpret.explain_data` (patches, ground truth),
:mod:`~hlss_plugin.interpret.explain_driver` (:func:`explain`) and
:mod:`~hlss_plugin.interpret.report` (``explain.md`` / ``explain.json``).
Their public names can still be imported from this module.
"""
import importlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .explain_error import ExplainError
from .ranking import check_ranking, rank_scores, reference_statistics
from .scoring import aggregate_by_group, top_k_attributes

#: Names that lived in this module before it was split, and where they are
#: now (``from hlss_plugin.interpret.attribute_explainer import explain``
#: keeps working; imported on first use to avoid an import cycle).
_MOVED = {
    'center_crop': 'scoring', 'aggregate_by_group': 'scoring',
    'top_k_attributes': 'scoring', 'precision_at_k': 'scoring',
    'chance_precision': 'scoring',
    'DETERMINISTIC_TRANSFORMS': 'explain_config',
    'DEFAULT_PIPELINE': 'explain_config',
    'view_size_from_config': 'explain_config',
    'eval_pipeline': 'explain_config', 'check_hlss_config': 'explain_config',
    'load_state_dict_strict': 'load_checkpoint',
    'build_models': 'load_checkpoint',
    'LEVEL_ORDER': 'explain_data', 'SYNTHETIC_TRUTH': 'explain_data',
    'select_patches': 'explain_data',
    'explain': 'explain_driver', 'explain_level_items': 'explain_driver',
    'summary_lines': 'report', 'markdown_lines': 'report',
    'write_report': 'report',
}


def __getattr__(name: str):
    """The names in :data:`_MOVED`, from their new modules."""
    if name in _MOVED:
        module = importlib.import_module(f'{__package__}.{_MOVED[name]}')
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


class AttributeExplainer:
    """Attribute similarities and top-k explanations of one HLSS model.

    Args:
        model (nn.Module): An HLSS-like model: ``data_preprocessor``,
            ``extract_feat(inputs) -> (N, C)``, ``levels`` and ``heads``
            whose ``forward`` returns ``(z, s)`` and which carry
            ``attribute_names`` / ``num_attributes``. Put in eval mode.
        batch_size (int): Patches per forward pass. Defaults to 32.
        ranking (str): ``'relative'``: rank attributes by their z-score
            against the reference bank (:meth:`fit_reference`; formula in
            :mod:`~hlss_plugin.interpret.ranking`), ``'raw'``: by the raw
            similarity. Defaults to ``'relative'``.

    Example:
        >>> explainer = AttributeExplainer(model)   # ranking='relative'
        >>> explainer.fit_reference(train_images)   # bank statistics
        >>> sims = explainer.similarities(images)   # {level: (N, A)}
        >>> keys, top = explainer.explain_level('slide', sims['slide'],
        ...                                     slide_ids, k=5)
        >>> top[0][0]    # best attribute of the first slide, its z-score
        ('high vascularity', 2.31...)
    """

    def __init__(self, model: torch.nn.Module, batch_size: int = 32,
                 ranking: str = 'relative'):
        heads = getattr(model, 'heads', None)
        levels = tuple(getattr(model, 'levels', ()))
        if heads is None or not levels:
            raise ExplainError(
                f'explain needs an HLSS model with text-aligned heads '
                f'(model.heads per level); got {type(model).__name__}.')
        for level in levels:
            names = getattr(heads[level], 'attribute_names', None)
            if not names or len(names) != heads[level].num_attributes:
                raise ExplainError(
                    f'the {level} head has no attribute names; build it '
                    f'through HLSS (heads=dict({level}=dict(attributes=...)))'
                    f' so its outputs are tied to named attributes.')
        if int(batch_size) < 1:
            raise ExplainError(f'batch_size must be >= 1, got {batch_size}.')
        try:
            self.ranking = check_ranking(ranking)
        except ValueError as exc:
            raise ExplainError(str(exc)) from exc
        self.model = model.eval()
        self.levels = levels
        self.batch_size = int(batch_size)
        #: ``{level: (mean, std)}`` of the reference bank, ``(A,)`` each.
        self.reference: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    def attribute_names(self, level: str) -> List[str]:
        """Names of the ``A`` attributes of ``level`` in head-row order."""
        return list(self.model.heads[level].attribute_names)

    @torch.no_grad()
    def similarities(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Similarities of every image to every level's named attributes.

        Args:
            images (Tensor): ``(N, C, H, W)`` pipeline outputs, before
                the model's data preprocessor, which is applied here in
                its evaluation mode (``training=False``); e.g. raw
                ``uint16`` ``(N, 2, H, W)`` patches for
                ``SRHBatchAugmentPreprocessor``, which converts them (third
                channel) and normalises them without augmenting.

        Returns:
            dict[str, Tensor]: ``{level: (N, A_level)}``: the first ``A``
            head outputs (the rows tied to named attributes).
        """
        out: Dict[str, List[torch.Tensor]] = {lv: [] for lv in self.levels}
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size]
            data = self.model.data_preprocessor(
                {'inputs': batch, 'data_samples': None}, False)
            feats = self.model.extract_feat(data['inputs'])
            for level in self.levels:
                head = self.model.heads[level]
                _, s = head(feats)
                out[level].append(s[:, :head.num_attributes].float().cpu())
        return {lv: torch.cat(v) for lv, v in out.items()}

    def fit_reference(self, images: torch.Tensor
                      ) -> Dict[str, torch.Tensor]:
        """Take the relative ranking's statistics from a bank of patches.

        Args:
            images (Tensor): ``(M, C, H, W)`` reference patches (e.g. the
                training split), as for :meth:`similarities`; ``M >= 2``.

        Returns:
            dict[str, Tensor]: The bank's ``{level: (M, A)}`` similarities.
        """
        bank = self.similarities(images)
        self.set_reference(bank)
        return bank

    def set_reference(self, bank: Mapping[str, torch.Tensor]) -> None:
        """Per-attribute mean and std of every level from bank similarities.

        Args:
            bank (Mapping[str, Tensor]): ``{level: (M, A)}``, e.g. from
                :meth:`similarities` on reference patches.

        Raises:
            ExplainError: A level missing, or fewer than 2 bank patches.
        """
        reference = {}
        for level in self.levels:
            if level not in bank:
                raise ExplainError(f'reference bank has no {level!r} '
                                   f'similarities (levels {list(bank)}).')
            try:
                reference[level] = reference_statistics(bank[level])
            except ValueError as exc:
                raise ExplainError(f'{level} reference bank: {exc}') from exc
        self.reference = reference

    def level_scores(self, level: str, patch_scores: torch.Tensor,
                     groups: Optional[Sequence] = None
                     ) -> Tuple[list, torch.Tensor, torch.Tensor]:
        """Items of a level with their similarities and ranking scores.

        Args:
            level (str): The head whose scores these are.
            patch_scores (Tensor): ``(N, A)`` per-patch similarities from
                :meth:`similarities`.
            groups (Sequence, optional): ``N`` group keys (slide or patient
                id per patch); None: every patch is its own item.

        Returns:
            tuple[list, Tensor, Tensor]: Item keys (group keys, or patch
            positions), their ``(G, A)`` (mean) similarities and ``(G, A)``
            ranking scores (:func:`~hlss_plugin.interpret.ranking.
            rank_scores` with :attr:`ranking`; a group's relative score is
            the z-score of its mean similarity = the mean of its patches').

        Raises:
            ExplainError: ``ranking='relative'`` before
                :meth:`fit_reference` / :meth:`set_reference`.
        """
        if groups is None:
            keys, scores = list(range(patch_scores.shape[0])), patch_scores
        else:
            keys, scores = aggregate_by_group(patch_scores, groups)
        if self.ranking == 'relative' and level not in self.reference:
            raise ExplainError(
                f'ranking="relative" needs reference statistics of the '
                f'{level} head: call fit_reference(bank_images) first, or '
                f'use ranking="raw".')
        ranked = rank_scores(scores, self.ranking, self.reference.get(level))
        return keys, scores, ranked

    def explain_level(self, level: str, patch_scores: torch.Tensor,
                      groups: Optional[Sequence] = None,
                      k: int = 5) -> Tuple[list, List[List[Tuple[str,
                                                                 float]]]]:
        """Top-k attributes per item of a level (by :attr:`ranking`).

        Args:
            level (str): The head whose scores these are.
            patch_scores (Tensor): ``(N, A)`` per-patch similarities from
                :meth:`similarities`.
            groups (Sequence, optional): ``N`` group keys (slide or patient
                id per patch); None: every patch is its own item.
            k (int): Attributes per item.

        Returns:
            tuple[list, list]: Item keys (group keys, or patch positions)
            and their top-k ``(name, score)`` lists; the score is the
            ranking score (z-score for ``'relative'``, mean similarity for
            ``'raw'``).
        """
        keys, _, ranked = self.level_scores(level, patch_scores, groups)
        return keys, top_k_attributes(ranked, self.attribute_names(level), k)
