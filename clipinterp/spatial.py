"""Where in the image a text direction is written: per-patch maps from the per-token decomposition.

A head's direct contribution is a sum over the tokens it attends to (``Decomposition.tokens``);
dropping the CLS token and projecting each patch's share on a text embedding gives one number per
patch, laid out on the patch grid row by row (patch ``(r, c)`` is token ``1 + r * grid + c``, the
order in which the model flattens its patch embeddings).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .decompose import Decomposition, decompose
from .heads import HeadLike, parse_heads
from .model.images import ImageInput, as_image_list

if TYPE_CHECKING:
    from .model import HookedCLIP


def spatial_maps(source: Union[Decomposition, "HookedCLIP"], images: Optional[Union[ImageInput, torch.Tensor]], text_embedding: torch.Tensor, *,
                 layers: Optional[Iterable[int]] = None, heads: Union[HeadLike, Iterable[HeadLike], None] = None,
                 convention: str = "split", normalize: bool = False) -> torch.Tensor:
    """Per-patch contributions to ``image . text`` ``[N, grid, grid]`` (``[N, M, grid, grid]`` for
    ``M`` texts), summed over ``heads`` (names or ``(layer, head)`` pairs) or else over every head of
    ``layers`` (default: all layers with tokens).

    ``source``: a :class:`Decomposition` made with ``tokens=True`` (``images`` must be None), or a
    model, which decomposes ``images`` (PIL images, arrays or pixels ``[N, c, S, S]``) with
    ``convention`` and ``normalize``. ``text_embedding``: ``[d_embed]`` or ``[M, d_embed]``, used as
    given (``model.encode_text`` returns unit vectors)."""
    if layers is not None and heads is not None:
        raise ValueError("pass layers or heads, not both (heads already name their layers)")
    layers = list(layers) if layers is not None else None
    if isinstance(source, Decomposition):
        if images is not None:
            raise ValueError("a Decomposition already holds its images: pass images=None")
        decomposition = source
    else:
        chosen = parse_heads(heads, source.cfg.n_layers, source.cfg.n_heads)
        needed = sorted({layer for layer, _ in chosen}) if chosen else layers
        decomposition = decompose(source, images, tokens=True, layers=needed, convention=convention,
                                  normalize=normalize, progress=False)
    return _patch_scores(decomposition, text_embedding, layers, heads)


def _patch_scores(d: Decomposition, text_embedding: torch.Tensor, layers: Optional[Iterable[int]],
                  heads: Union[HeadLike, Iterable[HeadLike], None]) -> torch.Tensor:
    if d.tokens is None:
        raise ValueError("the decomposition has no per-token contributions: decompose(..., tokens=True)")
    text = torch.as_tensor(text_embedding)
    width = d.tokens.shape[-1]
    if text.ndim not in (1, 2) or text.shape[-1] != width:
        raise ValueError(f"text embedding of shape {tuple(text.shape)}: expected [{width}] or [M, {width}], the "
                         f"decomposition's width (the joint space, unless it was already projected)")
    chosen = parse_heads(heads, d.n_layers, d.n_heads) if heads is not None else \
        [(layer, h) for layer in (d.token_layers if layers is None else layers) for h in range(d.n_heads)]
    missing = sorted({layer for layer, _ in chosen} - set(d.token_layers))
    if missing:
        raise ValueError(f"layers {missing} have no per-token contributions (the decomposition has layers "
                         f"{d.token_layers}): decompose with tokens=True and layers covering them")
    position = {layer: i for i, layer in enumerate(d.token_layers)}
    layer_idx = torch.tensor([position[layer] for layer, _ in chosen])
    head_idx = torch.tensor([h for _, h in chosen])
    patches = d.tokens[:, layer_idx, head_idx, 1:]  # [N, K, T - 1, d]
    grid = math.isqrt(patches.shape[2])
    if grid * grid != patches.shape[2]:
        raise ValueError(f"{patches.shape[2]} patch tokens do not form a square grid")
    scores = torch.einsum("nkpd,md->nmp", patches, text.to(patches.device, patches.dtype).reshape(-1, width))
    scores = scores.reshape(len(scores), -1, grid, grid)
    return scores[:, 0] if text.ndim == 1 else scores


def upsample(maps: torch.Tensor, size: Union[int, Sequence[int]]) -> torch.Tensor:
    """Bilinear resize of maps ``[..., grid, grid]`` to ``[..., height, width]`` (``size``: an int or
    ``(height, width)``)."""
    maps = torch.as_tensor(maps, dtype=torch.float32)
    if maps.ndim < 2:
        raise ValueError(f"maps must be [..., grid, grid], got shape {tuple(maps.shape)}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    return F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(*maps.shape[:-2], *size)


def model_view(model: "HookedCLIP", image: ImageInput) -> Image.Image:
    """The image as the model sees it: resized and centre-cropped by its processor, not normalised.
    Overlay maps on this view; on the original image they would be misplaced by the crop."""
    if model.processor is None:
        raise RuntimeError("this model has no image processor, so its view of an image is unknown")
    pixels = model.processor(images=as_image_list(image)[:1], do_rescale=False, do_normalize=False,
                             return_tensors="pt")["pixel_values"][0]
    return Image.fromarray(pixels.permute(1, 2, 0).to(torch.uint8).numpy())


def overlay(image: Union[Image.Image, np.ndarray], heatmap: Union[torch.Tensor, np.ndarray], ax=None,
            alpha: float = 0.5, cmap: str = "jet", **imshow_kwargs):
    """Draw ``heatmap`` ``[grid, grid]``, bilinearly upsampled to the image's size, over ``image``
    (PIL or ``[H, W(, C)]`` array; see :func:`model_view`). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    heatmap = torch.as_tensor(np.asarray(heatmap), dtype=torch.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"overlay draws one map [grid, grid]; got shape {tuple(heatmap.shape)}")
    picture = np.asarray(image)
    if ax is None:
        _, ax = plt.subplots()
    ax.imshow(picture)
    ax.imshow(upsample(heatmap, picture.shape[:2]).numpy(), alpha=alpha, cmap=cmap, **imshow_kwargs)
    ax.set_axis_off()
    return ax
