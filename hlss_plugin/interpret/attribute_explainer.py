"""``AttributeExplainer``: HLSS embeddings explained through the
language-aligned attribute space.

Each HLSS level head ends in an attribute projection whose first ``A`` rows
are the text embeddings of the level's named attributes, so its first ``A``
outputs are similarities to those attributes. :class:`AttributeExplainer`
turns them into top-k attribute lists:

- patch: the patch's own patch-head similarities,
- slide: the mean over the slide's patches of the slide-head similarities,
- patient: the mean over the patient's patches of the patient-head
  similarities.

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
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .explain_error import ExplainError
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

    Example:
        >>> explainer = AttributeExplainer(model)
        >>> sims = explainer.similarities(images)   # {level: (N, A)}
        >>> items = explainer.explain_level('slide', sims['slide'],
        ...                                 slide_ids, k=5)
    """

    def __init__(self, model: torch.nn.Module, batch_size: int = 32):
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
        self.model = model.eval()
        self.levels = levels
        self.batch_size = int(batch_size)

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

    def explain_level(self, level: str, patch_scores: torch.Tensor,
                      groups: Optional[Sequence] = None,
                      k: int = 5) -> Tuple[list, List[List[Tuple[str,
                                                                 float]]]]:
        """Top-k attributes per item of a level.

        Args:
            level (str): The head whose scores these are.
            patch_scores (Tensor): ``(N, A)`` per-patch similarities from
                :meth:`similarities`.
            groups (Sequence, optional): ``N`` group keys (slide or patient
                id per patch); None: every patch is its own item.
            k (int): Attributes per item.

        Returns:
            tuple[list, list]: Item keys (group keys, or patch positions)
            and their top-k ``(name, mean similarity)`` lists.
        """
        if groups is None:
            keys, scores = list(range(patch_scores.shape[0])), patch_scores
        else:
            keys, scores = aggregate_by_group(patch_scores, groups)
        return keys, top_k_attributes(scores, self.attribute_names(level), k)
