"""clipinterp: what CLIP's attention heads do, measured exactly."""
from . import interventions
from .decompose import Decomposition, decompose
from .evaluation import recall_from_embeddings, retrieval_recall, zero_shot_accuracy
from .heads import head_name, parse_head, parse_heads
from .interventions import with_interventions
from .model import HookedCLIP, HookedCLIPConfig, OfflineError, list_models, load

__version__ = "0.1.0"
