"""Zero-shot accuracy and image-text retrieval, under interventions or on a decomposition.

Each metric takes a model (or ``model.with_interventions(...)``) and images, or a
:class:`~clipinterp.decompose.Decomposition` (possibly mean-ablated) in place of the images, in which
case its ``total()`` is the image embedding. Results are pandas DataFrames.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch

from .decompose import Decomposition
from .model.hooked_clip import DEFAULT_TEMPLATES


def image_embeddings(model, images, batch_size: int = 64) -> torch.Tensor:
    """Unit image embeddings ``[N, d_embed]`` from images, pixels or a Decomposition."""
    if isinstance(images, Decomposition):
        if images.projected or images.heads.shape[-1] != model.cfg.d_embed:
            raise ValueError("this decomposition was projected onto texts; pass the unprojected one")
        return torch.nn.functional.normalize(images.total().float(), dim=-1)
    if len(images) == 0:
        raise ValueError("no images given (an empty set)")
    return model.encode_image(images, batch_size=batch_size)


def check_labels(labels: torch.Tensor, n_classes: int) -> None:
    """Raise unless every label indexes one of ``n_classes`` classes (0-based)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must index the {n_classes} classes (0 to {n_classes - 1}); found labels "
                         f"from {int(labels.min())} to {int(labels.max())}")


def accuracy_from_embeddings(image_emb: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``argmax(image_emb @ class_emb.T)`` against integer ``labels [N]``
    (each in ``0..C-1`` for ``class_emb [C, d]``)."""
    labels = torch.as_tensor(labels, device=image_emb.device)
    if len(labels) != len(image_emb):
        raise ValueError(f"{len(image_emb)} images but {len(labels)} labels")
    check_labels(labels, len(class_emb))
    return (image_emb @ class_emb.T.to(image_emb)).argmax(-1).eq(labels).float().mean().item()


def zero_shot_accuracy(model, images, labels: Sequence[int], class_names: Sequence[str],
                       templates: Sequence[str] = DEFAULT_TEMPLATES, batch_size: int = 64) -> pd.DataFrame:
    """Zero-shot top-1 accuracy (class names x templates, text embeddings averaged and
    renormalised): one row with ``accuracy``, ``n_images``, ``n_classes`` and the interventions."""
    labels = torch.as_tensor(list(labels))
    check_labels(labels, len(class_names))
    image = image_embeddings(model, images, batch_size)
    acc = accuracy_from_embeddings(image, model.class_embeddings(class_names, templates), labels)
    return pd.DataFrame([{"accuracy": acc, "n_images": len(image), "n_classes": len(class_names),
                          "interventions": _describe(model)}])


def recall_from_embeddings(image_emb: torch.Tensor, text_emb: torch.Tensor, image_of_text: torch.Tensor,
                           ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Retrieval recall@k both ways. ``image_of_text [M]``: the image each caption describes.
    Image -> text counts a hit when any of the image's captions is in the top k."""
    sims = image_emb @ text_emb.T.to(image_emb)  # [N, M]
    image_of_text = torch.as_tensor(image_of_text, device=sims.device)
    out = {}
    for k in ks:
        top_texts = sims.topk(min(k, sims.shape[1]), dim=1).indices  # [N, k]
        out[f"i2t@{k}"] = (image_of_text[top_texts] == torch.arange(len(sims), device=sims.device)[:, None]).any(1).float().mean().item()
        top_images = sims.T.topk(min(k, sims.shape[0]), dim=1).indices  # [M, k]
        out[f"t2i@{k}"] = (top_images == image_of_text[:, None]).any(1).float().mean().item()
    return out


def retrieval_recall(model, images, captions: Sequence[str], image_of_caption: Optional[Sequence[int]] = None,
                     ks: Sequence[int] = (1, 5, 10), batch_size: int = 64) -> pd.DataFrame:
    """Image-text retrieval recall@k both directions; one row. ``captions`` pair 1:1 with images
    unless ``image_of_caption`` maps each caption to its image's index."""
    captions = list(captions)
    if image_of_caption is None:
        if len(captions) != len(images):
            raise ValueError(f"{len(images)} images but {len(captions)} captions; pass image_of_caption "
                             "to give several captions per image")
        image_of_caption = list(range(len(captions)))
    if len(image_of_caption) != len(captions):
        raise ValueError("image_of_caption must give one image index per caption")
    image = image_embeddings(model, images, batch_size)
    text = model.encode_text(captions)
    row = recall_from_embeddings(image, text, torch.as_tensor(list(image_of_caption)), ks)
    return pd.DataFrame([{**row, "n_images": len(image), "n_captions": len(captions), "interventions": _describe(model)}])


def _describe(model) -> str:
    return model.describe() if hasattr(type(model), "describe") else "none"
