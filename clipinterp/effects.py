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
forward passes over the images for all layers. For large image sets, run it on chunks of images and
concatenate ``.heads``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .heads import resolve_layers
from .interventions import mean, mean_z
from .late import LateRunner, batched_pixels


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


@torch.no_grad()
def total_effects(model, images: Any, layers: Union[int, Iterable[int], None] = None, reference: Any = None,
                  batch_size: int = 64, progress: bool = True) -> TotalEffects:
    """Each head's total effect on the unit image embedding of ``images`` (see the module docstring).

    images: images (PIL, uint8 arrays) or pixels ``[N, c, S, S]``; reference: images or pixels whose
    mean ``hook_z`` replaces the ablated head (default: ``images`` themselves); layers: the layers
    whose heads are measured (default all; negative indices count from the end).
    Returns :class:`TotalEffects` with ``heads [N, L, H, d_embed]`` (float32).
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    layers = resolve_layers(layers, n_layers)
    pixels = batched_pixels(model, images, batch_size)
    means = mean_z(model, pixels if reference is None else reference, layers, batch_size)
    runner = LateRunner(model, pixels.split(batch_size), layers[0], batch_size)
    unedited = runner.embed()
    heads = torch.full((len(pixels), n_layers, n_heads, unedited.shape[1]), float("nan"))
    bar = tqdm(total=len(layers) * n_heads, desc="total effects", unit="head", disable=not progress)
    for layer in layers:
        runner.advance(layer)
        for head in range(n_heads):
            heads[:, layer, head] = unedited - runner.embed([mean([(layer, head)], reference=means)])
            bar.update()
    bar.close()
    return TotalEffects(heads, layers)
