"""The hooked CLIP vision tower, its config, text side and loading."""
from .config import HookedCLIPConfig
from .hooked_clip import HookedCLIP
from .loading import OfflineError, load
from .registry import list_models

__all__ = ["HookedCLIP", "HookedCLIPConfig", "OfflineError", "load", "list_models"]
