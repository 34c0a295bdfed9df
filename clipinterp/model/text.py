"""The checkpoint's own text tower and tokenizer, with an embedding cache keyed by model and text."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


class TextTower(nn.Module):
    """transformers' ``CLIPTextModelWithProjection`` plus its tokenizer.

    ``encode(texts) -> [n, d_embed]``; results are cached per text (the cache lives with the model,
    so it is keyed by model and text) and cleared whenever the weights' device or dtype changes.
    """

    def __init__(self, model: Optional[nn.Module], tokenizer, logit_scale: float = 100.0,
                 missing_reason: str = ""):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.logit_scale = float(logit_scale)
        self.missing_reason = missing_reason
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def available(self) -> bool:
        return self.model is not None and self.tokenizer is not None

    def _apply(self, fn, *args, **kwargs):  # .to()/.half() move the weights: drop stale embeddings
        self._cache.clear()
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Unnormalised text embeddings ``[n, d_embed]`` (float32, on the tower's device)."""
        if not self.available:
            raise RuntimeError(f"this model has no text tower: {self.missing_reason}")
        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of strings; wrap a single text in a list")
        texts = list(texts)
        if not texts:
            raise ValueError("no texts given (an empty list)")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is a {type(text).__name__}, not a str")
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        device = next(self.model.parameters()).device
        max_len = getattr(self.model.config, "max_position_embeddings", 77)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            tokens = self.tokenizer(chunk, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            out = self.model(input_ids=tokens["input_ids"].to(device),
                             attention_mask=tokens["attention_mask"].to(device))
            for text, emb in zip(chunk, out.text_embeds.float()):
                self._cache[text] = emb
        return torch.stack([self._cache[t] for t in texts])
