"""Running only the late layers: cache the residual stream entering layer ``start`` once, then
score any edit of layers ``>= start`` by running ``blocks[start:]``, ``ln_final`` on the CLS row and
``W_proj`` — the same numbers as the full forward at a fraction of its cost. Used by every method
that evaluates many head edits on one image set (AAT's searches, Head Pursuit's editing table, the
organism's ground truth)."""
from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from .interventions import Intervention
from .model.hooked_clip import hook_layer


class _Stop(Exception):
    """Ends a forward pass once the wanted activation is stored."""


@torch.no_grad()
def residual_at(model, pixels: Tensor, layer: int) -> Tensor:
    """The residual stream entering ``layer`` ``[b, p, d]``; the blocks after it are not run."""
    stored = []

    def grab(resid, hook):
        stored.append(resid)
        raise _Stop

    try:
        model.run_with_hooks(pixels, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", grab)])
    except _Stop:
        pass
    return stored[0]


def batched_pixels(model, images: Any, batch_size: int = 64) -> Tensor:
    """Images (or pixels) -> checked pixels ``[N, c, S, S]``, made ``batch_size`` at a time."""
    if len(images) == 0:
        raise ValueError("no images given (an empty set)")
    return torch.cat([model.to_pixels(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


class LateRunner:
    """Image embeddings under edits of layers ``>= start``. ``chunks``: pixel batches
    ``[b, c, S, S]`` (their residuals entering ``start`` are cached, ``resid [N, p, d_model]``)."""

    def __init__(self, model, chunks: Iterable[Tensor], start: int, batch_size: int = 64):
        if not 0 <= start < model.cfg.n_layers:
            raise ValueError(f"start layer {start} out of range: the model has {model.cfg.n_layers} layers")
        self.model, self.start, self.batch_size = model, start, batch_size
        self.resid = torch.cat([residual_at(model, chunk, start) for chunk in chunks])

    def run(self, resid: Tensor) -> Tensor:
        """``resid [b, p, d]`` entering ``start`` -> unnormalised image embeddings ``[b, d_embed]``,
        with whatever hooks are active (differentiable)."""
        model = self.model
        for block in model.blocks[self.start:]:
            resid = block(resid)
        pooled = model.ln_final(resid[:, :1])[:, 0]  # LayerNorm is per position: the CLS row suffices
        return model.hook_image_embed(pooled @ model.W_proj)

    @torch.no_grad()
    def advance(self, start: int) -> None:
        """Move the cache on to the residual entering ``start`` (not before the current one) by
        running the blocks in between, with whatever hooks are active (none, to stay exact)."""
        if not self.start <= start < self.model.cfg.n_layers:
            raise ValueError(f"cannot advance from layer {self.start} to {start}: only forward, within the "
                             f"model's {self.model.cfg.n_layers} layers")
        blocks = self.model.blocks[self.start:start]
        parts = []
        for resid in self.resid.split(self.batch_size):
            for block in blocks:
                resid = block(resid)
            parts.append(resid)
        self.resid, self.start = torch.cat(parts), start

    @torch.no_grad()
    def embed(self, interventions: Iterable[Intervention] = ()) -> Tensor:
        """Unit image embeddings ``[N, d_embed]`` (float32) under ``interventions`` (layers >= start;
        an edit of an earlier layer, which the cached residual has already passed, raises)."""
        model = self.model
        hooks = [hook for intervention in interventions for hook in intervention.hooks(model)]
        early = sorted({name for name, _ in hooks if hook_layer(name) < self.start})
        if early:
            raise ValueError(f"the late runner starts at layer {self.start}, so it cannot apply edits at {early}: "
                             "start it at the earliest edited layer")
        with model.hooks(fwd_hooks=hooks):
            out = torch.cat([self.run(chunk) for chunk in self.resid.split(self.batch_size)])
        return F.normalize(out.float(), dim=-1)
