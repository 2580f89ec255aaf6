"""Interpretability through HLSS's language-aligned attribute space."""
from .attribute_explainer import AttributeExplainer
from .explain_config import view_size_from_config
from .explain_driver import explain
from .explain_error import ExplainError
from .ranking import RANKINGS, rank_scores, reference_statistics
from .report import markdown_lines, summary_lines, write_report
from .scoring import (aggregate_by_group, center_crop, chance_precision,
                      distinct_top_k, precision_at_k, top_k_attributes)

__all__ = [
    'AttributeExplainer', 'ExplainError', 'RANKINGS', 'aggregate_by_group',
    'center_crop', 'chance_precision', 'distinct_top_k', 'explain',
    'markdown_lines', 'precision_at_k', 'rank_scores',
    'reference_statistics', 'summary_lines', 'top_k_attributes',
    'view_size_from_config', 'write_report'
]
