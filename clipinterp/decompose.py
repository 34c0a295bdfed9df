"""Exact direct-effect decomposition of the image embedding.

The final CLS residual is a sum of parts: ``x = e + sum_l (sum_h r_lh + b_O^l) + sum_l m_l``
(``e``: ``hook_embed`` at CLS; ``r_lh``: head ``h`` of layer ``l`` at CLS, ``z W_O^h``; ``m_l``:
the MLP's output, its bias included). With each image's own final-LayerNorm mean ``mu`` and scale
``sigma`` the embedding ``(gamma * (x - mu) / sigma + beta) @ P`` is linear in the parts, so it
splits exactly. Two conventions place ``mu`` and ``beta``:

* ``"split"`` (TextSpan, Gandelsman et al. 2024): each of the ``n = 2L + 1`` layer-level parts gets
  ``[gamma * (part - mu / n) / sigma + beta / n] @ P``; a layer's share is split equally over its
  heads (and their source tokens), and so is the out-projection bias ``b_O``. ``bias`` is zero.
* ``"centered"`` (TransformerLens): each part is centred by its own mean,
  ``[gamma * (part - mean(part)) / sigma] @ P``; ``beta @ P`` and the attention biases go to ``bias``.

Both sum to the image embedding; per-head values differ. ``normalize=True`` divides everything by the
embedding's norm, so the parts sum to the unit embedding and their dot products with a unit text
embedding are additive shares of the cosine similarity.

Per-token contributions use the CLS query row only: ``a[h, t] * v[t, h] @ (W_O^h gamma P) / sigma``,
never a ``[batch, tokens, tokens, heads, width]`` tensor.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from .heads import HeadLike, parse_heads

CONVENTIONS = ("split", "centered")
_TENSORS = ("heads", "mlps", "embed", "bias", "norms", "tokens")


@dataclass
class Decomposition:
    """Direct contributions to the image embedding (or, after :meth:`project`, to text scores).

    ``heads [N, L, H, d]``, ``mlps [N, L, d]``, ``embed [N, d]``, ``bias [N, d]``,
    ``tokens [N, len(token_layers), H, T, d]`` or None, ``norms [N]`` (the embeddings' norms).
    ``d`` is ``d_embed``, or the number of texts after ``project`` (then ``projected`` is True).
    """

    heads: torch.Tensor
    mlps: torch.Tensor
    embed: torch.Tensor
    bias: torch.Tensor
    norms: torch.Tensor
    convention: str = "split"
    normalized: bool = False
    tokens: Optional[torch.Tensor] = None
    token_layers: list[int] = field(default_factory=list)
    model_name: str = ""
    projected: bool = False

    @property
    def n_images(self) -> int:
        return self.heads.shape[0]

    @property
    def n_layers(self) -> int:
        return self.heads.shape[1]

    @property
    def n_heads(self) -> int:
        return self.heads.shape[2]

    def total(self) -> torch.Tensor:
        """Sum of all parts ``[N, d]``: the image embedding (unit if ``normalized``)."""
        return self.heads.sum((1, 2)) + self.mlps.sum(1) + self.embed + self.bias

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Decomposition":
        """Apply ``fn`` to every tensor whose last axis is the embedding width."""
        changed = {name: fn(getattr(self, name)) for name in ("heads", "mlps", "embed", "bias")}
        if self.tokens is not None:
            changed["tokens"] = fn(self.tokens)
        return replace(self, **changed)

    def project(self, text_embeddings: torch.Tensor) -> "Decomposition":
        """Each part's contribution to each text's score: ``part @ text_embeddings.T``, so every
        ``d``-axis becomes an ``M``-axis (``heads [N, L, H, M]``, ...). ``text_embeddings [M, d]``."""
        if self.projected:
            raise ValueError("this decomposition is projected already (its last axis is texts): project the "
                             "unprojected one")
        if text_embeddings.ndim == 1:
            text_embeddings = text_embeddings[None]
        if text_embeddings.shape[-1] != self.heads.shape[-1]:
            raise ValueError(f"text embeddings have width {text_embeddings.shape[-1]}, the decomposition has "
                             f"{self.heads.shape[-1]} (the model's joint space)")
        directions = text_embeddings.to(self.heads.device, self.heads.dtype).T
        return replace(self._map(lambda t: t @ directions), projected=True)

    def mean_ablate(self, heads: Union[HeadLike, Iterable[HeadLike], None] = None,
                    layers: Optional[Iterable[int]] = None, mlps: Union[bool, Iterable[int], None] = None,
                    embed: bool = False, reference: Optional["Decomposition"] = None) -> "Decomposition":
        """Replace parts by their mean over ``reference``'s images (default: these images): a
        post-hoc direct-effect ablation. ``heads``: heads by name; ``layers``: whole attention
        layers; ``mlps``: MLP layers, or True for all; ``embed``: the embedding term. ``reference``
        must come from the same model with the same settings (convention, normalisation, projection)."""
        reference = reference or self
        mine, theirs = self._settings(), reference._settings()
        if mine != theirs:
            raise ValueError(f"the reference decomposition does not match this one: {theirs} against {mine}; "
                             "decompose the reference images with the same model and settings")
        if self.model_name and reference.model_name and self.model_name != reference.model_name:
            warnings.warn(f"the reference decomposition comes from {reference.model_name!r}, this one from "
                          f"{self.model_name!r}: mean-ablating with another model's parts is meaningless unless "
                          "the two names denote the same weights", stacklevel=2)
        L, H = self.n_layers, self.n_heads
        chosen = set(parse_heads(heads, L, H))
        for layer in layers or []:
            _check_layer(layer, L)
            chosen.update((layer, h) for h in range(H))
        mlp_layers = range(L) if mlps is True else list(mlps or [])
        out = replace(self, heads=self.heads.clone(), mlps=self.mlps.clone(), embed=self.embed.clone(), tokens=None,
                      token_layers=[])
        if chosen:
            idx = torch.tensor(sorted(chosen))
            out.heads[:, idx[:, 0], idx[:, 1]] = reference.heads[:, idx[:, 0], idx[:, 1]].mean(0)
        for layer in mlp_layers:
            _check_layer(layer, L)
            out.mlps[:, layer] = reference.mlps[:, layer].mean(0)
        if embed:
            out.embed[:] = reference.embed.mean(0)
        return out

    def _settings(self) -> dict[str, Any]:
        """What must agree for two decompositions' parts to be interchangeable (the model's name is
        checked apart: two names can denote the same weights)."""
        return {"convention": self.convention, "normalized": self.normalized, "parts": tuple(self.heads.shape[1:])}

    def to(self, device: Union[str, torch.device]) -> "Decomposition":
        return replace(self, **{n: getattr(self, n).to(device) for n in _TENSORS if getattr(self, n) is not None})

    def save(self, path: Union[str, Path]) -> None:
        """One safetensors file with the tensors and the settings as metadata."""
        from safetensors.torch import save_file

        tensors = {n: getattr(self, n).contiguous().cpu() for n in _TENSORS if getattr(self, n) is not None}
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _TENSORS}
        save_file(tensors, str(path), metadata={"clipinterp": json.dumps(meta)})

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Decomposition":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["clipinterp"])
        return cls(**load_file(str(path)), **meta)

    def __repr__(self) -> str:
        tok = f", tokens for layers {self.token_layers}" if self.tokens is not None else ""
        return (f"Decomposition({self.n_images} images, {self.n_layers} layers x {self.n_heads} heads, "
                f"width {self.heads.shape[-1]}, convention={self.convention!r}, normalized={self.normalized}{tok})")


def _check_layer(layer: int, n_layers: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer!r} out of range: the model has {n_layers} layers (0..{n_layers - 1})")


def _capture_hooks(model, token_layers: Sequence[int], store: dict) -> list:
    """Hooks that keep only what the decomposition needs: the CLS row (and for token layers the
    values and the CLS query's attention row). Rows are copied, so that the full activations they
    come from are freed as the forward pass moves on."""
    def keep(key, take):
        def hook(x, hook):
            store[key] = take(x).clone()
        return hook

    cls = lambda x: x[:, 0]  # noqa: E731
    hooks = [("hook_embed", keep("embed", cls)), ("ln_final.hook_scale", keep("sigma", lambda x: x[:, 0, 0]))]
    for layer in range(model.cfg.n_layers):
        b = f"blocks.{layer}."
        hooks += [(b + "attn.hook_z", keep(("z", layer), cls)), (b + "hook_mlp_out", keep(("mlp", layer), cls))]
    for layer in token_layers:
        b = f"blocks.{layer}.attn."
        hooks += [(b + "hook_v", keep(("v", layer), lambda x: x)),
                  (b + "hook_pattern", keep(("a", layer), lambda x: x[:, :, 0]))]
    return hooks


@torch.no_grad()
def _decompose_batch(model, pixels: torch.Tensor, convention: str, normalize: bool,
                     token_layers: Sequence[int]) -> Decomposition:
    cfg, store = model.cfg, {}
    emb = model.run_with_hooks(pixels, fwd_hooks=_capture_hooks(model, token_layers, store))
    gamma, beta, P = model.ln_final.w, model.ln_final.b, model.W_proj
    sigma = store["sigma"][:, None]  # [N, 1]
    L, H, n_parts = cfg.n_layers, cfg.n_heads, 2 * cfg.n_layers + 1
    centered = convention == "centered"

    def lin(part: torch.Tensor) -> torch.Tensor:
        """The final LN, made linear with each image's statistics, then the projection (no mean or
        beta terms): ``[N, ..., d_model] -> [N, ..., d_embed]``."""
        if centered:
            part = part - part.mean(-1, keepdim=True)
        s = sigma.reshape(sigma.shape[0], *([1] * (part.ndim - 2)), 1)
        return (part * gamma / s) @ P

    W_O = torch.stack([block.attn.W_O for block in model.blocks])  # [L, H, k, d]
    b_O = torch.stack([block.attn.b_O for block in model.blocks])  # [L, d]
    z = torch.stack([store[("z", layer)] for layer in range(L)], 1)  # [N, L, H, k]
    heads = lin(torch.einsum("nlhk,lhkd->nlhd", z, W_O))
    mlps = lin(torch.stack([store[("mlp", layer)] for layer in range(L)], 1))
    embed = lin(store["embed"])
    if centered:
        bias = lin(b_O.sum(0).expand(len(pixels), -1)) + beta @ P
        shared = None
    else:
        # per image: (beta - gamma * mu / sigma) @ P, shared out over the parts
        mu = sum(t.mean(-1) for t in [store["embed"], *(store[("mlp", i)] for i in range(L))]) \
            + torch.einsum("nlhk,lhkd->nd", z, W_O).mean(-1) + b_O.sum(0).mean()
        shared = (beta - gamma * (mu[:, None] / sigma)) @ P  # [N, d_embed]
        heads = heads + (lin(b_O[None].expand(len(pixels), -1, -1)) / H)[:, :, None] + shared[:, None, None] / (n_parts * H)
        mlps = mlps + shared[:, None] / n_parts
        embed = embed + shared / n_parts
        bias = torch.zeros_like(embed)
    tokens = None
    if token_layers:
        gamma_P = gamma[:, None] * P  # [d, e]
        per_layer = []
        for layer in token_layers:
            W = W_O[layer] - W_O[layer].mean(-1, keepdim=True) if centered else W_O[layer]  # [H, k, d]
            a, v = store[("a", layer)], store[("v", layer)]  # [N, H, T], [N, T, H, k]
            tok = torch.einsum("nht,nthk,hke->nhte", a, v, W @ gamma_P) / sigma[:, :, None, None]
            if not centered:
                T = tok.shape[2]
                tok = tok + (lin(b_O[layer].expand(len(pixels), -1)) / (H * T))[:, None, None] \
                    + shared[:, None, None] / (n_parts * H * T)
            per_layer.append(tok)
        tokens = torch.stack(per_layer, 1)
    norms = emb.norm(dim=-1)
    out = Decomposition(heads=heads, mlps=mlps, embed=embed, bias=bias, norms=norms, convention=convention,
                        tokens=tokens, token_layers=list(token_layers), model_name=cfg.model_name)
    if normalize:
        out = out._map(lambda t: t / norms.reshape(-1, *([1] * (t.ndim - 1))))
        out.normalized = True
    return out


def decompose(model, images, *, tokens: bool = False, layers: Optional[Iterable[int]] = None,
              convention: str = "split", normalize: bool = False, batch_size: int = 32,
              progress: bool = True) -> Decomposition:
    """Decompose the image embeddings of ``images`` (PIL images, arrays or pixels ``[N, c, S, S]``)
    into per-layer, per-head (and with ``tokens=True`` per-source-token, for ``layers``, default
    all) direct contributions. See the module docstring for the two conventions."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    token_layers = sorted(set(layers)) if layers is not None else list(range(model.cfg.n_layers))
    for layer in token_layers:
        _check_layer(layer, model.cfg.n_layers)
    if not tokens:
        token_layers = []
    is_pixels = isinstance(images, torch.Tensor) and images.is_floating_point()
    n = len(images)
    if n == 0:
        raise ValueError("no images given (an empty batch)")
    parts = []
    for start in tqdm(range(0, n, batch_size), desc="decompose", disable=not progress or n <= batch_size):
        chunk = images[start:start + batch_size]
        pixels = model.to_pixels(chunk) if is_pixels else model.preprocess(chunk)
        parts.append(_decompose_batch(model, pixels, convention, normalize, token_layers))
    return concat(parts)


def concat(parts: Sequence[Decomposition]) -> Decomposition:
    """Join decompositions of successive image batches."""
    first = parts[0]
    joined = {n: torch.cat([getattr(p, n) for p in parts]) for n in _TENSORS if getattr(first, n) is not None}
    return replace(first, **joined)
