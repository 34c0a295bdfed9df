"""Interpretability methods on decomposed head outputs."""
from .ccs import (EmbeddingJudge, KeywordJudge, LLMJudge, ccs_agreement, ccs_at_k, ccs_pruning, ccs_scores,
                  ccs_table, ccs_tiers)
from .somp import SOMP, logit_lens_scores
from .textspan import TextSpan, textspan_completeness, textspan_heads

__all__ = ["EmbeddingJudge", "KeywordJudge", "LLMJudge", "SOMP", "TextSpan", "ccs_agreement", "ccs_at_k",
           "ccs_pruning", "ccs_scores", "ccs_table", "ccs_tiers", "logit_lens_scores", "textspan_completeness",
           "textspan_heads"]
