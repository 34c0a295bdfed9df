"""Configuration of a hooked CLIP vision tower.

Carries the fields TransformerLens's ``ActivationCache`` and ``patching`` read (``n_layers``,
``n_heads``, ``d_model``, ``d_head``, ``d_mlp``, ``normalization_type``, ``attn_only``, ``device``,
``n_key_value_heads``, ...) plus the vision-specific ones (image and patch size, projection width).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

ACTIVATIONS = ("quick_gelu", "gelu")


@dataclass
class HookedCLIPConfig:
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    d_embed: int  # width of the joint image-text space (the projection's output)
    image_size: int
    patch_size: int
    act_fn: str = "quick_gelu"
    n_channels: int = 3
    eps: float = 1e-5
    d_head: int = 0  # filled from d_model / n_heads when left 0
    model_name: str = "custom"
    source: str = "custom"  # "hf", "open_clip" or "custom"
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    device: Optional[str] = None
    dtype: Any = None
    # Fields TransformerLens reads; fixed for CLIP towers.
    normalization_type: str = "LN"
    attn_only: bool = False
    n_key_value_heads: Optional[int] = None
    positional_embedding_type: str = "standard"
    final_rms: bool = False
    default_prepend_bos: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.act_fn not in ACTIVATIONS:
            raise ValueError(f"act_fn must be one of {ACTIVATIONS}, got {self.act_fn!r}")
        if self.d_head == 0:
            if self.d_model % self.n_heads:
                raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
            self.d_head = self.d_model // self.n_heads
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def n_ctx(self) -> int:
        """Token positions: the CLS token plus one per patch."""
        return self.grid_size**2 + 1

    def to_dict(self) -> dict:
        out = asdict(self)
        out["dtype"] = str(self.dtype) if self.dtype is not None else None
        return out
