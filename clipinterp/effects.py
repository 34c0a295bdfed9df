"""Total effects: what each head changes in the image embedding through every path.

A head's direct contribution (:func:`clipinterp.decompose`) is what it writes straight into the
embedding; heads of early layers act mostly through the layers after them, which the direct view
does not see. ``total_effects(model, images)`` measures, per image and head, the change of the unit
image embedding when that one head is mean-ablated in the forward pass (its ``hook_z`` replaced by
its mean over ``reference``, per position)::

    effect[i, l, h] = embed(x_i) - embed(x_i | head (l, h) mean-ablated)      (unit embeddings)

the kind of edit the organism's ground truth measures in accuracy (which takes the means over the
validation split: pass those images as ``reference`` for the very same edit). The result has the
``.heads [N, L, H, d_embed]`` layout of a :class:`~clipinterp.decompose.Decomposition`, so
:func:`~clipinterp.methods.textspan.textspan_heads` and :func:`~clipinterp.methods.ccs.ccs_table`
describe total effects exactly as they describe direct ones. Unlike direct contributions, the
effects of a layer's heads do not add up to anything: each is measured with all other heads in place.

Cost: one pass through the layers from ``l`` on, per head of layer ``l`` (the residual entering each
layer is cached, :class:`~clipinterp.late.LateRunner`), so ``n_heads * (n_layers + 1) / 2`` full
forward passes over the images for all layers. With ``checkpoint=directory`` each finished layer
is written there (atomically, one file per layer), and a rerun with the same model, images and
reference loads the finished layers instead of measuring them again (whatever the batch size or
the other layers asked for; when every layer asked for is stored the model does not run at all);
files from another model, image set or reference are refused.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .heads import resolve_layers
from .interventions import mean, mean_z
from .late import LateRunner, batched_pixels
from .streaming import write_atomic


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


def _raw(tensor: Tensor) -> Any:
    """The tensor's bytes as a buffer (no copy for a contiguous CPU tensor)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def _fingerprint(model, pixels: Tensor, reference: Tensor) -> str:
    """A hash of the inputs the effects depend on: the model's weights, the images' pixels and the
    reference's pixels (not the batch size or the device, which change only rounding)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(_raw(tensor))
    for part in (_raw(pixels), b"|", _raw(reference)):
        digest.update(part)
    return digest.hexdigest()


def _layer_file(checkpoint: Path, layer: int) -> Path:
    return checkpoint / f"layer_{layer:03d}.pt"


def _load_layer(checkpoint: Path, layer: int, key: str) -> Optional[Tensor]:
    """Layer ``layer``'s stored effects ``[N, H, d_embed]``, or None if it has not been saved."""
    path = _layer_file(checkpoint, layer)
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state["key"] != key:
        raise ValueError(f"{path} holds total effects of another model, image set or reference: delete "
                         f"{checkpoint} or pass another checkpoint directory")
    return state["effects"]


@torch.no_grad()
def total_effects(model, images: Any, layers: Union[int, Iterable[int], None] = None, reference: Any = None,
                  batch_size: int = 64, progress: bool = True,
                  checkpoint: Union[str, Path, None] = None) -> TotalEffects:
    """Each head's total effect on the unit image embedding of ``images`` (see the module docstring).

    images: images (PIL, uint8 arrays) or pixels ``[N, c, S, S]``; reference: images or pixels whose
    mean ``hook_z`` replaces the ablated head (default: ``images`` themselves); layers: the layers
    whose heads are measured (default all; negative indices count from the end); checkpoint: a
    directory where each finished layer is saved (``layer_LLL.pt``) and found again by a rerun.
    Returns :class:`TotalEffects` with ``heads [N, L, H, d_embed]`` (float32).
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    layers = resolve_layers(layers, n_layers)
    pixels = batched_pixels(model, images, batch_size)
    reference = pixels if reference is None else batched_pixels(model, reference, batch_size)
    heads = torch.full((len(pixels), n_layers, n_heads, model.cfg.d_embed), float("nan"))
    key, missing = "", list(layers)
    if checkpoint is not None:
        checkpoint, key = Path(checkpoint), _fingerprint(model, pixels, reference)
        checkpoint.mkdir(parents=True, exist_ok=True)
        for layer in layers:
            stored = _load_layer(checkpoint, layer, key)
            if stored is not None:
                heads[:, layer] = stored
                missing.remove(layer)
    bar = tqdm(total=len(layers) * n_heads, initial=(len(layers) - len(missing)) * n_heads, desc="total effects",
               unit="head", disable=not progress)
    if missing:  # the model runs only for the layers not stored
        means = mean_z(model, reference, missing, batch_size)
        runner = LateRunner(model, pixels.split(batch_size), missing[0], batch_size)
        unedited = runner.embed()
    for layer in missing:
        runner.advance(layer)
        for head in range(n_heads):
            heads[:, layer, head] = unedited - runner.embed([mean([(layer, head)], reference=means)])
            bar.update()
        if checkpoint:
            buffer = io.BytesIO()
            torch.save({"effects": heads[:, layer].clone(), "key": key}, buffer)
            write_atomic(_layer_file(checkpoint, layer), buffer.getvalue())
    bar.close()
    return TotalEffects(heads, layers)
