"""Total effects: what each head changes in the image embedding through every path.

A head's direct contribution (:func:`clipinterp.decompose`) is what it writes straight into the
embedding; heads of early layers act mostly through the layers after them, which the direct view
does not see. ``total_effects(model, images)`` measures, per image and head, the change of the unit
image embedding when that one head is mean-ablated in the forward pass (its ``hook_z`` replaced by
its mean over ``reference``, per position)::

    effect[i, l, h] = embed(x_i) - embed(x_i | head (l, h) mean-ablated)      (unit embeddings)

the same edit that the organism's ground truth measures in accuracy. The result has the
``.heads [N, L, H, d_embed]`` layout of a :class:`~clipinterp.decompose.Decomposition`, so
:func:`~clipinterp.methods.textspan.textspan_heads` and :func:`~clipinterp.methods.ccs.ccs_table`
describe total effects exactly as they describe direct ones. Unlike direct contributions, the
effects of a layer's heads do not add up to anything: each is measured with all other heads in place.

Cost: one pass through the layers from ``l`` on, per head of layer ``l`` (the residual entering each
layer is cached, :class:`~clipinterp.late.LateRunner`), so about ``n_heads * n_layers / 2`` full
forward passes over the images for all layers. With ``checkpoint=path`` the effects are written to
``path`` (atomically) after each layer, and a rerun of the same call continues after the last
finished layer; a checkpoint from another model, other images, reference or layers is refused.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .heads import resolve_layers
from .interventions import mean, mean_z
from .late import LateRunner, batched_pixels
from .streaming import _write_atomic


@dataclass
class TotalEffects:
    """Change of the unit image embedding when each head is mean-ablated.

    ``heads [N, L, H, d_embed]`` (NaN for layers not measured), ``layers``: the measured layers.
    """

    heads: Tensor
    layers: list[int] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return self.heads.shape[0]


def _fingerprint(unedited: Tensor, means: dict[int, Tensor], layers: list[int]) -> str:
    """A hash of what the effects depend on: the unedited embeddings (model and images), the
    reference means (model and reference) and the layers."""
    digest = hashlib.sha256(json.dumps(layers).encode())
    for tensor in [unedited, *(means[layer] for layer in layers)]:
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _resume(checkpoint: Path, key: str, shape: tuple[int, ...]) -> tuple[Tensor, list[int]]:
    """The effects and finished layers stored at ``checkpoint`` (none if absent)."""
    if not checkpoint.exists():
        return torch.full(shape, float("nan")), []
    state = torch.load(checkpoint, weights_only=True)
    if state["key"] != key or tuple(state["heads"].shape) != shape:
        raise ValueError(f"{checkpoint} holds total effects of another model, image set, reference or layers: "
                         "delete it or pass another checkpoint path")
    return state["heads"], list(state["done"])


@torch.no_grad()
def total_effects(model, images: Any, layers: Union[int, Iterable[int], None] = None, reference: Any = None,
                  batch_size: int = 64, progress: bool = True,
                  checkpoint: Union[str, Path, None] = None) -> TotalEffects:
    """Each head's total effect on the unit image embedding of ``images`` (see the module docstring).

    images: images (PIL, uint8 arrays) or pixels ``[N, c, S, S]``; reference: images or pixels whose
    mean ``hook_z`` replaces the ablated head (default: ``images`` themselves); layers: the layers
    whose heads are measured (default all; negative indices count from the end); checkpoint: a
    file to save finished layers to and resume from.
    Returns :class:`TotalEffects` with ``heads [N, L, H, d_embed]`` (float32).
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    layers = resolve_layers(layers, n_layers)
    pixels = batched_pixels(model, images, batch_size)
    means = mean_z(model, pixels if reference is None else reference, layers, batch_size)
    runner = LateRunner(model, pixels.split(batch_size), layers[0], batch_size)
    unedited = runner.embed()
    shape = (len(pixels), n_layers, n_heads, unedited.shape[1])
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    key = _fingerprint(unedited, means, layers) if checkpoint else ""
    heads, done = _resume(checkpoint, key, shape) if checkpoint else (torch.full(shape, float("nan")), [])
    bar = tqdm(total=len(layers) * n_heads, initial=len(done) * n_heads, desc="total effects", unit="head",
               disable=not progress)
    for layer in (layer for layer in layers if layer not in done):
        runner.advance(layer)
        for head in range(n_heads):
            heads[:, layer, head] = unedited - runner.embed([mean([(layer, head)], reference=means)])
            bar.update()
        done.append(layer)
        if checkpoint:
            buffer = io.BytesIO()
            torch.save({"heads": heads, "done": done, "key": key}, buffer)
            _write_atomic(checkpoint, buffer.getvalue())
    bar.close()
    return TotalEffects(heads, layers)
