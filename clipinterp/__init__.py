"""clipinterp: what CLIP's attention heads do, measured exactly.

``load`` a CLIP vision tower as a hooked model, ``decompose`` its image embedding into heads,
layers and tokens, and run the head-level methods (TextSpan, CCS, Head Pursuit, AAT) on it.
"""
from . import interventions
from .decompose import Decomposition, decompose
from .effects import TotalEffects, total_effects
from .evaluation import recall_from_embeddings, retrieval_recall, zero_shot_accuracy
from .heads import head_name, parse_head, parse_heads
from .interventions import with_interventions
from .methods.aat import (AATResult, GeneticSearch, GradientSearch, PairedData, attention_ablation, evaluate_heads,
                          plot_head_scan, single_head_scan)
from .methods.ccs import (EmbeddingJudge, KeywordJudge, LLMJudge, ccs_agreement, ccs_at_k, ccs_pruning, ccs_scores,
                          ccs_table, ccs_tiers)
from .methods.pursuit import (concept_embeddings, describe_head, edit_heads, editing_table, head_pursuit,
                              plot_head_pursuit, random_control_sets, top_heads)
from .methods.somp import SOMP, logit_lens_scores
from .methods.textspan import TextSpan, textspan_completeness, textspan_heads
from .model import HookedCLIP, HookedCLIPConfig, OfflineError, list_models, load
from .spatial import spatial_maps
from .streaming import DecompositionStore, StoreMismatchError, decompose_dataset, load_decomposition
from .textbank import TextBank, load_bank, load_textspan_bank

__version__ = "0.1.0"
