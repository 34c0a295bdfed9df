"""clipinterp: what CLIP's attention heads do, measured exactly."""
from .heads import head_name, parse_head, parse_heads
from .model import HookedCLIP, HookedCLIPConfig, OfflineError, list_models, load

__version__ = "0.1.0"
