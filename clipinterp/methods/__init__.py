"""Interpretability methods on decomposed head outputs."""
from .ccs import (EmbeddingJudge, KeywordJudge, LLMJudge, ccs_agreement, ccs_at_k, ccs_pruning, ccs_scores,
                  ccs_table, ccs_tiers)
from .pursuit import (concept_embeddings, describe_head, edit_heads, editing_table, head_pursuit, plot_head_pursuit,
                      random_control_sets, top_heads)
from .somp import SOMP, logit_lens_scores
from .textspan import TextSpan, textspan_completeness, textspan_heads

__all__ = ["EmbeddingJudge", "KeywordJudge", "LLMJudge", "SOMP", "TextSpan", "ccs_agreement", "ccs_at_k",
           "ccs_pruning", "ccs_scores", "ccs_table", "ccs_tiers", "concept_embeddings", "describe_head", "edit_heads",
           "editing_table", "head_pursuit", "logit_lens_scores", "plot_head_pursuit", "random_control_sets",
           "textspan_completeness", "textspan_heads", "top_heads"]
