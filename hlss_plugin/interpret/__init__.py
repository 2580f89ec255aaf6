"""Interpretability through HLSS's language-aligned attribute space."""
from .attribute_explainer import (AttributeExplainer, ExplainError,
                                  aggregate_by_group, center_crop,
                                  chance_precision, explain, markdown_lines,
                                  precision_at_k, summary_lines,
                                  top_k_attributes, view_size_from_config,
                                  write_report)

__all__ = [
    'AttributeExplainer', 'ExplainError', 'aggregate_by_group',
    'center_crop', 'chance_precision', 'explain', 'markdown_lines',
    'precision_at_k', 'summary_lines', 'top_k_attributes',
    'view_size_from_config', 'write_report'
]
