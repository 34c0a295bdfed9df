"""``HookedCLIP``: a CLIP vision tower as a TransformerLens ``HookedRootModule``, plus the
checkpoint's own text tower, tokenizer and image preprocessing.

The forward pass, in one readable path (``b`` images, ``p = 1 + patches`` positions)::

    pixels [b, c, H, W] -> embed -> hook_embed_raw [b, p, d] -> ln_pre -> hook_embed [b, p, d]
    -> blocks[0..L-1] (hook_resid_pre/mid/post ...) -> ln_final (every position)
    -> CLS row [b, d] @ W_proj [d, d_embed] -> hook_image_embed [b, d_embed]

``hook_embed`` holds the residual after ``ln_pre`` (CLS included), so ``hook_embed`` plus every
block's attention and MLP outputs sums to the final residual, as TransformerLens expects.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint

from ..errors import unknown_name
from .components import Embed, LayerNorm, TransformerBlock
from .config import HookedCLIPConfig
from .images import ImageInput, as_image_list
from .text import TextTower

DEFAULT_TEMPLATES = ("a photo of a {}.",)


_BLOCK_ORDER = ("hook_resid_pre", "ln1.", "attn.", "hook_attn_out", "hook_resid_mid", "ln2.", "mlp.", "hook_mlp_out",
                "hook_resid_post")


def hook_layer(name: str) -> float:
    """The block a hook point sits in: its index, -1 before the blocks, inf after them."""
    if name.startswith("blocks."):
        return int(name.split(".")[1])
    return float("inf") if name.startswith(("ln_final.", "hook_image_embed")) else -1


def _forward_position(name: str) -> tuple[float, int]:
    """Sort key putting hook names in the order the forward pass reaches them (stable within a
    component, whose hooks are registered in that order)."""
    layer = hook_layer(name)
    if not name.startswith("blocks."):
        return layer, 0
    rest = name.split(".", 2)[2]
    return layer, next(i for i, prefix in enumerate(_BLOCK_ORDER) if rest.startswith(prefix))


class HookedCLIP(HookedRootModule):
    """A hooked CLIP vision tower. Build it with :func:`clipinterp.load`."""

    def __init__(self, cfg: HookedCLIPConfig, text: Optional[TextTower] = None, processor=None):
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.hook_embed_raw = HookPoint()  # [b, p, d]: CLS + patches + positions, before ln_pre
        self.ln_pre = LayerNorm(cfg)
        self.hook_embed = HookPoint()  # [b, p, d]: the residual stream's start, after ln_pre
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.W_proj = nn.Parameter(torch.empty(cfg.d_model, cfg.d_embed))
        self.hook_image_embed = HookPoint()  # [b, d_embed]: projected, not normalised
        self.setup()
        # Registered after setup(): not part of the hooked module tree, but moved by .to().
        self.text = text if text is not None else TextTower(None, None, missing_reason="none was loaded")
        self.processor = processor

    # ---------------------------------------------------------------- forward pass
    def forward(self, images: Union[ImageInput, torch.Tensor], interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """Images (PIL, arrays) or pixels ``[b, c, H, W]`` -> image embeddings ``[b, d_embed]``
        (unnormalised). Another resolution needs ``interpolate_pos_encoding=True`` (bicubic
        interpolation of the position embeddings, as transformers does)."""
        pixels = self.to_pixels(images, interpolate_pos_encoding)
        resid = self.hook_embed(self.ln_pre(self.hook_embed_raw(self.embed(pixels))))
        for block in self.blocks:
            resid = block(resid)
        pooled = self.ln_final(resid)[:, 0]
        return self.hook_image_embed(pooled @ self.W_proj)

    # ---------------------------------------------------------------- inputs
    @property
    def device(self) -> torch.device:
        return self.W_proj.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_proj.dtype

    def preprocess(self, images: ImageInput) -> torch.Tensor:
        """PIL images or ``[H, W, C]`` arrays -> pixels ``[b, c, S, S]`` with the checkpoint's own
        preprocessing (transformers' CLIP image processor, PIL backend). Grayscale and palette
        images become RGB; transparency is composited on white."""
        if self.processor is None:
            raise RuntimeError("this model has no image processor; pass pixel tensors [b, c, H, W]")
        batch = self.processor(images=as_image_list(images), return_tensors="pt")
        return batch["pixel_values"].to(self.device, self.dtype)

    def to_pixels(self, images: Union[ImageInput, torch.Tensor], interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """Check (or make) a pixel tensor ``[b, c, S, S]`` on the model's device and dtype."""
        if not isinstance(images, torch.Tensor) or images.dtype == torch.uint8:
            return self.preprocess(images)
        cfg = self.cfg
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4:
            raise ValueError(f"pixels must be [batch, channels, height, width]; got shape {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ValueError("no images given (batch of size 0)")
        if images.shape[1] != cfg.n_channels:
            hint = " (channels last? permute to [b, c, H, W])" if images.shape[-1] == cfg.n_channels else ""
            raise ValueError(f"pixels have {images.shape[1]} channels, the model takes {cfg.n_channels}{hint}")
        if not images.is_floating_point():
            raise TypeError(f"pixels must be a float tensor, got {images.dtype}")
        height, width = images.shape[-2:]
        if height % cfg.patch_size or width % cfg.patch_size:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {cfg.patch_size}")
        if (height, width) != (cfg.image_size, cfg.image_size) and not interpolate_pos_encoding:
            raise ValueError(
                f"pixels are {height}x{width}, the model takes {cfg.image_size}x{cfg.image_size}: resize "
                "them (model.preprocess does) or pass interpolate_pos_encoding=True to interpolate "
                "the position embeddings")
        return images.to(self.device, self.dtype)

    # ---------------------------------------------------------------- embeddings
    @torch.no_grad()
    def encode_image(self, images: Union[ImageInput, torch.Tensor], normalize: bool = True,
                     batch_size: int = 64) -> torch.Tensor:
        """Image embeddings ``[n, d_embed]``, in batches, optionally L2-normalised."""
        if isinstance(images, torch.Tensor) and images.is_floating_point():
            chunks = [self(images[i:i + batch_size]) for i in range(0, max(len(images), 1), batch_size)] \
                if images.ndim == 4 else [self(images)]
        else:
            pil = as_image_list(images)
            chunks = [self(self.preprocess(pil[i:i + batch_size])) for i in range(0, len(pil), batch_size)]
        out = torch.cat(chunks).float()
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text embeddings ``[n, d_embed]`` from the checkpoint's text tower (cached per text)."""
        out = self.text.encode(texts)
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def class_embeddings(self, class_names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> torch.Tensor:
        """Zero-shot classifier ``[n_classes, d_embed]``: each class's unit text embeddings over the
        templates, averaged and renormalised."""
        class_names, templates = list(class_names), list(templates)
        if not class_names or not templates:
            raise ValueError("zero-shot classification needs at least one class name and one template")
        prompts = [t.format(c) for c in class_names for t in templates]
        emb = self.encode_text(prompts).reshape(len(class_names), len(templates), -1).mean(1)
        return torch.nn.functional.normalize(emb, dim=-1)

    def zero_shot(self, images: Union[ImageInput, torch.Tensor], class_names: Sequence[str],
                  templates: Sequence[str] = DEFAULT_TEMPLATES) -> torch.Tensor:
        """Zero-shot class probabilities ``[n_images, n_classes]`` (softmax of the scaled cosines)."""
        classes = self.class_embeddings(class_names, templates)
        image = self.encode_image(images)
        return (self.text.logit_scale * image @ classes.T.to(image.device)).softmax(-1)

    # ---------------------------------------------------------------- TransformerLens surface
    def run_with_cache(self, *args, names_filter=None, **kwargs) -> tuple[torch.Tensor, ActivationCache]:
        """Run and cache activations: ``(image_embeds [b, d_embed], ActivationCache)``."""
        if isinstance(names_filter, str):
            names_filter = [names_filter]
        if isinstance(names_filter, (list, tuple)):
            for name in names_filter:
                self.check_hook_name(name)
            wanted = set(names_filter)
            names_filter = wanted.__contains__
        out, cache = super().run_with_cache(*args, names_filter=names_filter, **kwargs)
        return out, ActivationCache(cache, self, has_batch_dim=not kwargs.get("remove_batch_dim", False))

    def check_hook_name(self, name: str) -> None:
        """Raise an error naming the close hook names when ``name`` is not a hook point."""
        if name not in self.hook_dict:
            raise unknown_name("hook name", name, self.hook_dict,
                               "List them with model.hook_dict.keys() (see the README's hook table).")

    def add_hook(self, name: Union[str, Callable], hook: Callable, *args, **kwargs) -> None:
        if isinstance(name, str):
            self.check_hook_name(name)
        super().add_hook(name, hook, *args, **kwargs)

    def _enable_hook_with_name(self, name: str, hook: Callable, dir) -> None:
        self.check_hook_name(name)
        super()._enable_hook_with_name(name, hook, dir)

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> torch.Tensor:
        """Sum of the biases written into the residual stream before ``layer`` ``[d_model]``: each
        attention layer's ``b_O`` (and, with ``include_mlp_biases``, each MLP's ``b_out``); with
        ``mlp_input`` also the attention bias of ``layer`` itself."""
        bias = torch.zeros(self.cfg.d_model, device=self.device, dtype=self.dtype)
        for i in range(layer):
            bias = bias + self.blocks[i].attn.b_O
            if include_mlp_biases:
                bias = bias + self.blocks[i].mlp.b_out
        if mlp_input:
            if layer >= self.cfg.n_layers:
                raise ValueError(f"mlp_input needs layer < {self.cfg.n_layers}")
            bias = bias + self.blocks[layer].attn.b_O
        return bias

    def tokens_to_residual_directions(self, texts: Union[str, Sequence[str], torch.Tensor]) -> torch.Tensor:
        """Text directions in the residual stream: ``ln_final.w * (W_proj @ t)`` for each unit text
        embedding ``t`` (``[d_model]`` for one text, ``[n, d_model]`` for many). Dotted with an
        ``apply_ln_to_stack``-ed component it gives that component's share of the image-text logit
        ``image_embed . t`` (the ``ln_final.b`` term, ``b @ W_proj @ t``, is the remainder)."""
        single = isinstance(texts, str)
        if isinstance(texts, torch.Tensor):
            emb = torch.nn.functional.normalize(texts.to(self.device, self.dtype), dim=-1)
        else:
            emb = self.encode_text([texts] if single else list(texts)).to(self.device, self.dtype)
        if emb.shape[-1] != self.cfg.d_embed:
            raise ValueError(f"text embeddings have width {emb.shape[-1]}, the model's joint space has {self.cfg.d_embed}")
        directions = (emb @ self.W_proj.T) * self.ln_final.w
        return directions[0] if single else directions

    def to_single_token(self, text: str) -> int:
        """TransformerLens calls this for shape checks only: a text is one 'token' (a direction)."""
        return 0

    def with_interventions(self, *interventions):
        """The model with live interventions (``clipinterp.interventions``): a drop-in replacement
        for the model, and a context manager that applies them to the model itself."""
        from ..interventions import InterventionModel

        return InterventionModel(self, interventions)

    def hook_names(self) -> list[str]:
        """Every hook point's name, in forward order."""
        return sorted(self.hook_dict, key=_forward_position)

    def __repr__(self) -> str:
        c = self.cfg
        return (f"HookedCLIP({c.model_name!r}: {c.n_layers} layers x {c.n_heads} heads, d_model={c.d_model}, "
                f"patch {c.patch_size}, {c.image_size}px, act={c.act_fn}, d_embed={c.d_embed}, "
                f"text tower {'yes' if self.text.available else 'no'})")
