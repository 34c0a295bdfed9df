"""Turning user images into pixel tensors, with clear errors for what cannot be one."""
from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch
from PIL import Image

ImageInput = Union[Image.Image, np.ndarray, torch.Tensor, Sequence[Any]]


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette and CMYK images become RGB; transparency is composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8))
    return image.convert("RGB")


def array_to_image(array: np.ndarray) -> Image.Image:
    """A ``[H, W]``, ``[H, W, 1|3|4]`` uint8 (0-255) or float (0-1) array as a PIL image."""
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image array of shape {tuple(array.shape)} looks channels-first; raw images are [H, W, C] "
            "(pass preprocessed pixel tensors as float [B, C, H, W] instead)")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"an image array must be [H, W] or [H, W, C] with C in 1, 3, 4; got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError("float image arrays must hold values in [0, 1]; pass uint8 for 0-255 values")
        array = (array * 255).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def as_image_list(images: ImageInput) -> list[Image.Image]:
    """One image or a sequence of images (PIL or arrays) as a list of RGB PIL images."""
    if isinstance(images, (Image.Image, np.ndarray)) and not (isinstance(images, np.ndarray) and images.ndim == 4):
        images = [images]
    out = []
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            image = image.numpy()
        if isinstance(image, np.ndarray):
            image = array_to_image(image)
        if not isinstance(image, Image.Image):
            raise TypeError(f"image {i} is a {type(image).__name__}; expected a PIL image, an array or a pixel tensor")
        out.append(to_rgb(image))
    if not out:
        raise ValueError("no images given (an empty list)")
    return out
