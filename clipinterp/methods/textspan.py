"""TextSpan (Gandelsman, Efros and Steinhardt, ICLR 2024): describe a head by a few texts.

For one head with outputs ``C [K, d]`` (one row per image, in the joint image-text space) and a
bank of unit text embeddings ``R [M, d]``, TextSpan greedily picks the texts whose directions
explain most of the head's variance over images:

1. project ``R`` onto the top-``rank`` right singular vectors of the (uncentred) ``C``;
2. centre ``C``; the reconstruction starts at the mean;
3. ``n_texts`` times: pick the text ``j`` whose score ``C R_j`` has the largest std over images
   (``R`` is not renormalised), add the projection of ``C`` onto ``r = R_j`` to the
   reconstruction, and remove the direction ``r`` from ``C`` and from every text.

:class:`TextSpan` runs this for many heads at once with batched tensor operations. The singular
subspace comes from the eigenvectors of ``C^T C`` computed in float64. Everything after that
happens in the ``rank``-dimensional coordinates of the head's singular subspace:
the deflated texts stay in that subspace, and since ``C`` is centred the variance of ``C R_j``
over images is ``a_j^T G a_j / K`` with ``a_j`` the text's coordinates and ``G`` the Gram matrix
of the centred head outputs in those coordinates. Deflating ``C`` need not be done explicitly: a
deflated text is orthogonal to every direction removed before, on which the deflation acts.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..evaluation import check_labels
from ..heads import resolve_layers

__all__ = ["TextSpan", "textspan_heads", "textspan_completeness"]

# Working memory one batch of heads may take; larger batches are split into chunks.
_CHUNK_BYTES = 2 * 1024**3

Bank = Union[Any, tuple[Sequence[str], Tensor]]
Device = Union[str, torch.device, None]


def _working_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; every other input is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _all_finite(x: Tensor) -> bool:
    """No NaN or inf in ``x``, in one pass without a boolean copy (the float64 sum would propagate them)."""
    return bool(torch.isfinite(x.sum(dtype=torch.float64)))


def _unpack_bank(bank: Bank, model_name: str = "") -> tuple[list[str], Tensor]:
    """``(texts, embeddings [M, d])`` from a text bank object or a ``(texts, embeddings)`` tuple.

    Warns when the bank says it was embedded with another model than ``model_name`` (the model the
    head outputs come from), since its embeddings then live in another text space."""
    embedded_with = getattr(bank, "embedded_with", None)
    if model_name and embedded_with and embedded_with != model_name:
        warnings.warn(f"the text bank was embedded with {embedded_with!r} but the head outputs come from "
                      f"{model_name!r}: if these are different weights, call bank.embed(model) with the model the "
                      "head outputs come from (a bank embedded with model_id= for these same weights is fine)", stacklevel=3)
    if isinstance(bank, tuple):
        if len(bank) != 2:
            raise ValueError(f"a text bank tuple must be (texts, embeddings), got {len(bank)} items")
        texts, embeddings = bank
    else:
        texts, embeddings = bank.texts, bank.embeddings
    if embeddings is None:
        raise ValueError("the text bank has no embeddings: embed its texts first")
    texts = list(texts)
    embeddings = torch.as_tensor(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"the text bank is empty or not [M, d]: embeddings of shape {tuple(embeddings.shape)}")
    if len(texts) != embeddings.shape[0]:
        raise ValueError(f"the text bank has {len(texts)} texts but {embeddings.shape[0]} embeddings")
    return texts, embeddings


def _check_measured(source: Any, layers: Sequence[int]) -> None:
    """Refuse layers that a :class:`~clipinterp.effects.TotalEffects` did not measure (their rows are NaN)."""
    measured = getattr(source, "layers", None)
    if measured is None or not isinstance(measured, (list, tuple)):
        return
    missing = [layer for layer in layers if layer not in measured]
    if missing:
        raise ValueError(f"layers {missing} were not measured (the total effects hold layers {list(measured)}): "
                         f"pass layers={list(measured)} or measure them with total_effects(..., layers=...)")


def _head_batches(heads: Tensor, pairs: list[tuple[int, int]], batch: int):
    """Yield ``[b, N, d]`` stacks of the heads ``pairs`` of ``heads [N, L, H, d]``, ``batch`` at a time."""
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        yield torch.stack([heads[:, layer, head] for layer, head in chunk])


def _heads_per_chunk(n_images: int, d: int, n_texts_bank: int, rank: int, itemsize: int) -> int:
    """How many heads fit in ``_CHUNK_BYTES`` of working memory."""
    r = min(rank, d)
    per_head = 8 * (n_images * d + 2 * d * d) + itemsize * (n_images * d + 2 * n_images * r + 3 * n_texts_bank * r)
    return max(1, _CHUNK_BYTES // per_head)


def _fit_heads(C: Tensor, R: Tensor, n_texts: int, rank: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """TextSpan for a batch of heads.

    C: ``[b, K, d]`` head outputs, R: ``[M, d]`` text embeddings (same dtype and device).
    Returns indices ``[b, n_texts]``, cumulative variance explained ``[b, n_texts]``,
    reconstruction ``[b, K, d]`` and mean ``[b, 1, d]``.
    """
    b, K, d = C.shape
    r = min(rank, K, d)
    rows = torch.arange(b, device=C.device)
    # C's top right singular vectors are the top eigenvectors of C^T C. In float64 this is as
    # accurate as a float64 SVD for the leading subspace (and more than a float32 SVD), at the
    # cost of one matrix product.
    wide = C.double()
    second = wide.mT @ wide  # [b, d, d], uncentred
    mean = wide.mean(dim=1, keepdim=True)
    del wide
    basis = torch.linalg.eigh(second).eigenvectors[..., -r:].mT  # [b, r, d]
    shift = basis @ mean.mT  # [b, r, 1]
    gram = basis @ second @ basis.mT - K * shift @ shift.mT  # centred C^T C in the basis
    total = second.diagonal(dim1=-2, dim2=-1).sum(dim=-1) - K * mean.square().sum(dim=(1, 2))
    # equal outputs up to rounding: nothing to explain
    flat = total <= 1e3 * torch.finfo(torch.float64).eps * second.diagonal(dim1=-2, dim2=-1).sum(dim=-1)
    total = torch.where(flat, torch.ones_like(total), total).to(C.dtype)
    gram = gram.masked_fill(flat[:, None, None], 0).to(C.dtype)
    basis, mean = basis.to(C.dtype), mean.to(C.dtype)
    coords = (C @ basis.mT - mean @ basis.mT).masked_fill(flat[:, None, None], 0)  # [b, K, r], centred
    A = torch.matmul(R, basis.mT)  # [b, M, r]: the projected texts in the basis
    start_sq = A.square().sum(dim=-1)
    picked = torch.zeros(A.shape[:2], dtype=torch.bool, device=C.device)
    tol = 1e3 * torch.finfo(C.dtype).eps
    indices = torch.empty(b, n_texts, dtype=torch.long, device=C.device)
    gains = torch.zeros(b, n_texts, dtype=C.dtype, device=C.device)
    projector = torch.zeros(b, r, r, dtype=C.dtype, device=C.device)
    for step in range(n_texts):
        score = ((A @ gram) * A).sum(dim=-1).masked_fill(picked, -torch.inf)  # K * variance
        j = score.argmax(dim=-1)
        picked[rows, j] = True
        a = A[rows, j]  # [b, r]
        a_sq = a.square().sum(dim=-1)
        # A text already in the span of the chosen ones (span exhausted) changes nothing.
        live = a_sq > tol * start_sq[rows, j]
        a = a * live[:, None]
        a_sq = torch.where(live, a_sq, torch.ones_like(a_sq))
        gains[:, step] = score[rows, j] * live / (a_sq * total)
        A = A - (A @ (a / a_sq[:, None]).unsqueeze(-1)) * a.unsqueeze(1)
        projector += a.unsqueeze(-1) * (a / a_sq[:, None]).unsqueeze(1)
        indices[:, step] = j
    reconstruction = mean + (coords @ projector) @ basis
    return indices, gains.cumsum(dim=-1), reconstruction, mean


class TextSpan:
    """TextSpan for one head or a batch of heads.

    Parameters
    ----------
    n_texts: texts to pick per head (the paper's iterations ``m``).
    rank: dimension of the head's singular subspace the texts are projected onto; capped at
        ``min(K, d)``.
    device: where to compute; by default the device of the head outputs.

    Attributes (after :meth:`fit`; the leading ``B`` only for a batch of heads)
    ----------
    indices_: ``[B, n_texts]`` long, the picked texts in order.
    texts_: the picked texts as strings (list, or list of lists), when ``texts`` were given.
    variance_explained_: ``[B, n_texts]``, cumulative after each pick: the fraction of the
        head's centred variance captured by the span ``T`` of the picked (deflated, projected)
        texts, ``mean_k |Proj_T(c_k - mean)|^2 / mean_k |c_k - mean|^2``.
    reconstruction_: ``[B, K, d]``, ``mean_ + Proj_T(C - mean_)``: the head's TextSpan
        reconstruction.
    mean_: ``[B, 1, d]``, the mean head output over images.

    Computation is float32 unless the head outputs are float64; the singular subspace is always
    found in float64 (from ``C^T C``, as accurate as a float64 SVD). Heads are processed in chunks
    of about 2 GB of working memory. A head never picks a text twice; if the span of its texts
    is exhausted (``n_texts > rank``), later picks add nothing to the span or the variance. A
    constant head (equal outputs up to rounding) has variance explained 0.
    """

    def __init__(self, n_texts: int = 5, rank: int = 80, device: Device = None) -> None:
        self.n_texts = n_texts
        self.rank = rank
        self.device = device

    def fit(self, head_outputs: Tensor, text_embeddings: Tensor,
            texts: Optional[Sequence[str]] = None) -> "TextSpan":
        """Pick texts for each head.

        head_outputs: ``[K, d]`` (one head) or ``[B, K, d]`` (B heads); text_embeddings:
        ``[M, d]`` unit rows; texts: optional ``M`` strings.
        """
        C = torch.as_tensor(head_outputs)
        R = torch.as_tensor(text_embeddings)
        if C.ndim not in (2, 3):
            raise ValueError(f"head_outputs must be [K, d] or [B, K, d], got shape {tuple(C.shape)}")
        if R.ndim != 2 or R.shape[0] == 0:
            raise ValueError(f"text_embeddings must be a non-empty [M, d], got shape {tuple(R.shape)}")
        if C.shape[-1] != R.shape[1]:
            raise ValueError(f"head outputs have d_embed={C.shape[-1]} but text embeddings have "
                             f"d_embed={R.shape[1]}")
        if C.shape[-2] < 2:
            raise ValueError(f"need at least 2 images per head, got {C.shape[-2]}")
        if not 1 <= self.n_texts <= R.shape[0]:
            raise ValueError(f"n_texts={self.n_texts} must be between 1 and the number of texts "
                             f"({R.shape[0]})")
        if self.rank < 1:
            raise ValueError(f"rank must be positive, got {self.rank}")
        if texts is not None and len(texts) != R.shape[0]:
            raise ValueError(f"{len(texts)} texts for {R.shape[0]} text embeddings")
        if not (_all_finite(C) and _all_finite(R)):
            raise ValueError("head_outputs and text_embeddings must be finite (found NaN or inf)")

        batched = C.ndim == 3
        C = C if batched else C.unsqueeze(0)
        device = torch.device(self.device) if self.device is not None else C.device
        dtype = _working_dtype(C)
        R = R.to(device=device, dtype=dtype)
        B, K, d = C.shape
        step = _heads_per_chunk(K, d, R.shape[0], self.rank, torch.finfo(dtype).bits // 8)
        parts = [_fit_heads(C[i:i + step].to(device=device, dtype=dtype), R, self.n_texts, self.rank)
                 for i in range(0, B, step)]
        indices, variance, reconstruction, mean = (torch.cat(p) for p in zip(*parts))
        if not batched:
            indices, variance, reconstruction, mean = indices[0], variance[0], reconstruction[0], mean[0]
        self.indices_ = indices
        self.variance_explained_ = variance
        self.reconstruction_ = reconstruction
        self.mean_ = mean
        if texts is not None:
            names = np.asarray(list(texts), dtype=object)[indices.cpu().numpy()]
            self.texts_ = names.tolist()
        return self


def textspan_heads(decomposition: Any, bank: Bank, layers: Union[int, Sequence[int], None] = None,
                   n_texts: int = 5, rank: int = 80, batch_heads: Optional[int] = None,
                   device: Device = None) -> pd.DataFrame:
    """TextSpan descriptions of every head of ``layers`` (all layers for None).

    decomposition: any object with ``.heads [N, L, H, d_embed]``; bank: an object with
    ``.texts`` and ``.embeddings [M, d_embed]``, or a ``(texts, embeddings)`` tuple.
    ``batch_heads`` heads are fitted at once (default: as many as fit in about 2 GB).
    Returns a tidy frame with columns ``layer, head, rank, text, text_index,
    variance_explained`` (rank ``0..n_texts-1``; variance explained cumulative, as in
    :class:`TextSpan`).
    """
    texts, embeddings = _unpack_bank(bank, getattr(decomposition, "model_name", ""))
    heads = decomposition.heads
    _, n_layers, n_heads, d = heads.shape
    _check_measured(decomposition, resolve_layers(layers, n_layers))
    if d != embeddings.shape[1]:
        raise ValueError(f"head outputs have d_embed={d} but text embeddings have d_embed={embeddings.shape[1]}")
    pairs = [(layer, head) for layer in resolve_layers(layers, n_layers) for head in range(n_heads)]
    itemsize = torch.finfo(_working_dtype(heads)).bits // 8
    batch = batch_heads or _heads_per_chunk(heads.shape[0], d, len(texts), rank, itemsize)
    indices, variance = [], []
    for C in _head_batches(heads, pairs, batch):
        fitted = TextSpan(n_texts, rank, device).fit(C, embeddings)
        indices.append(fitted.indices_.cpu())
        variance.append(fitted.variance_explained_.cpu())
    indices = torch.cat(indices).numpy()
    pair_array = np.repeat(np.asarray(pairs), n_texts, axis=0)
    return pd.DataFrame({
        "layer": pair_array[:, 0],
        "head": pair_array[:, 1],
        "rank": np.tile(np.arange(n_texts), len(pairs)),
        "text": np.asarray(texts, dtype=object)[indices.ravel()],
        "text_index": indices.ravel(),
        "variance_explained": torch.cat(variance).numpy().ravel(),
    })


def textspan_completeness(decomposition: Any, spans: Union[TextSpan, Bank], class_embeddings: Tensor,
                          labels: Tensor, layers: Union[int, Sequence[int], None], n_texts: int = 5,
                          rank: int = 80, batch_heads: Optional[int] = None, device: Device = None) -> float:
    """Zero-shot accuracy when the heads of ``layers`` are replaced by their TextSpan reconstructions.

    The paper's completeness check: every head of ``layers`` is replaced by its reconstruction,
    every other head, every MLP and the embedding term by its mean over images; the bias is
    kept. The sum is L2-normalised and classified against ``class_embeddings [C, d_embed]``;
    returns the fraction of images whose argmax class equals ``labels [N]``.

    decomposition: ``.heads [N, L, H, d]``, ``.mlps [N, L', d]``, optional ``.embed [N, d]``
        and ``.bias`` (``[d]`` or ``[N, d]``).
    spans: a text bank (object with ``.texts`` / ``.embeddings`` or ``(texts, embeddings)``),
        fitted here with ``n_texts`` and ``rank``; or a fitted :class:`TextSpan` whose
        reconstruction is ``[len(layers) * H, N, d]`` in layer-major order, i.e. fitted on
        ``decomposition.heads[:, layers].permute(1, 2, 0, 3).flatten(0, 1)``.
    """
    heads = decomposition.heads
    N, n_layers, n_heads, d = heads.shape
    layers = resolve_layers(layers, n_layers)
    device = torch.device(device) if device is not None else heads.device
    dtype = _working_dtype(heads)
    if isinstance(spans, TextSpan):
        if not hasattr(spans, "reconstruction_"):
            raise ValueError("the TextSpan is not fitted")
        expected = (len(layers) * n_heads, N, d)
        if tuple(spans.reconstruction_.shape) != expected:
            raise ValueError(f"the TextSpan reconstruction has shape {tuple(spans.reconstruction_.shape)}, "
                             f"expected {expected} (the heads of layers {layers}, layer-major)")
        kept = spans.reconstruction_.to(device=device, dtype=dtype).sum(dim=0)
    else:
        texts, embeddings = _unpack_bank(spans)
        pairs = [(layer, head) for layer in layers for head in range(n_heads)]
        batch = batch_heads or _heads_per_chunk(N, d, len(texts), rank, torch.finfo(dtype).bits // 8)
        kept = torch.zeros(N, d, dtype=dtype, device=device)
        for C in _head_batches(heads, pairs, batch):
            kept += TextSpan(n_texts, rank, device).fit(C, embeddings).reconstruction_.sum(dim=0)

    others = torch.ones(n_layers, dtype=torch.bool, device=heads.device)
    others[layers] = False
    ablated = heads.sum(dim=2, dtype=dtype)[:, others].to(device).sum(dim=1).mean(dim=0)
    ablated = ablated + decomposition.mlps.sum(dim=1, dtype=dtype).to(device).mean(dim=0)
    if getattr(decomposition, "embed", None) is not None:
        ablated = ablated + decomposition.embed.to(device=device, dtype=dtype).mean(dim=0)
    total = kept + ablated
    if getattr(decomposition, "bias", None) is not None:
        total = total + decomposition.bias.to(device=device, dtype=dtype)

    class_embeddings = torch.as_tensor(class_embeddings).to(device=device, dtype=dtype)
    labels = torch.as_tensor(labels).to(device)
    if class_embeddings.ndim != 2 or class_embeddings.shape[1] != d:
        raise ValueError(f"class_embeddings must be [C, {d}], got shape {tuple(class_embeddings.shape)}")
    if labels.shape != (N,):
        raise ValueError(f"labels must be [{N}], got shape {tuple(labels.shape)}")
    check_labels(labels, len(class_embeddings))
    predicted = (torch.nn.functional.normalize(total, dim=-1) @ class_embeddings.T).argmax(dim=-1)
    return (predicted == labels).double().mean().item()
