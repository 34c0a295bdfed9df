"""Known checkpoints: names, where they live, and their vision towers' architectures.

The architecture numbers are the real ones; the tests build checkpoints from them (with fewer layers
where the layer count is not what is tested) to check loading without downloading weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # "hf" (transformers CLIPModel layout), "open_clip" (hf-hub: repo) or "local"
    location: str  # hub id, hf-hub: id, or a folder inside the package data
    family: str
    layers: int
    width: int
    heads: int
    mlp: int
    patch: int
    image_size: int
    embed_dim: int
    act: str
    text_layers: int = 12
    text_width: int = 512
    text_heads: int = 8


def _openai(name, layers, width, heads, patch, size, embed, text_width, text_heads):
    return ModelSpec(name, "hf", name, "OpenAI", layers, width, heads, 4 * width, patch, size, embed,
                     "quick_gelu", 12, text_width, text_heads)


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in [
    _openai("openai/clip-vit-base-patch32", 12, 768, 12, 32, 224, 512, 512, 8),
    _openai("openai/clip-vit-base-patch16", 12, 768, 12, 16, 224, 512, 512, 8),
    _openai("openai/clip-vit-large-patch14", 24, 1024, 16, 14, 224, 768, 768, 12),
    _openai("openai/clip-vit-large-patch14-336", 24, 1024, 16, 14, 336, 768, 768, 12),
    ModelSpec("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "hf", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "LAION",
              12, 768, 12, 3072, 32, 224, 512, "gelu", 12, 512, 8),
    ModelSpec("laion/CLIP-ViT-L-14-laion2B-s32B-b82K", "hf", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", "LAION",
              24, 1024, 16, 4096, 14, 224, 768, "gelu", 12, 768, 12),
    ModelSpec("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "hf", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "LAION",
              32, 1280, 16, 5120, 14, 224, 1024, "gelu", 24, 1024, 16),
    ModelSpec("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "hf", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "LAION",
              48, 1664, 16, 8192, 14, 224, 1280, "gelu", 32, 1280, 20),
    ModelSpec("laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K", "hf", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
              "DataComp", 24, 1024, 16, 4096, 14, 224, 768, "gelu", 12, 768, 12),
    ModelSpec("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
              "LAION (open_clip files)", 12, 768, 12, 3072, 32, 224, 512, "gelu", 12, 512, 8),
    ModelSpec("hf-hub:laion/CLIP-ViT-B-16-laion2B-s34B-b88K", "open_clip", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
              "LAION (open_clip files)", 12, 768, 12, 3072, 16, 224, 512, "gelu", 12, 512, 8),
    ModelSpec("shapes-clip", "local", "shapes-clip", "clipinterp organism (data/shapes-clip)",
              6, 128, 4, 512, 8, 64, 128, "quick_gelu", 4, 128, 4),
]}

ALIASES = {
    "ViT-B-32": "openai/clip-vit-base-patch32",
    "ViT-B-16": "openai/clip-vit-base-patch16",
    "ViT-L-14": "openai/clip-vit-large-patch14",
    "ViT-L-14-336": "openai/clip-vit-large-patch14-336",
    "ViT-H-14": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
    "ViT-bigG-14": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
}


def list_models() -> pd.DataFrame:
    """The known checkpoints as a table (name, source, family and vision-tower architecture).
    ``clipinterp.load`` also takes any other hub id, local directory or open_clip file pair."""
    rows = [asdict(spec) for spec in MODELS.values()]
    for row in rows:
        row["aliases"] = ", ".join(a for a, target in ALIASES.items() if target == row["name"])
    return pd.DataFrame(rows).drop(columns=["location"])
