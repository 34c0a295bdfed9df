"""Planting a head: a training stage that makes one vision head necessary for one attribute.

Plain contrastive training spreads colour over every head: no single head's ablation costs it
anything, so colour has no specialised head to score the methods against. A planting stage
(``clipinterp organism train --init-from MODEL --plant color:L5.H0``) starts from a trained model
and trains only the text tower and the planted heads' slices of their layer's query, key, value
and output weights; the rest of the vision tower is frozen, so every other head computes what it
did. Each step runs the vision tower once, with the planted layers' input repeated
``1 + len(plants)`` times: copy 0 is the intact model, copy ``k`` has plant ``k``'s head
mean-ablated over the batch (its slice of the attention output replaced by the batch mean per
position, the ground truth's ablation with the batch as reference). The loss adds to the
contrastive loss of copy 0, with class prompts embedded by the text tower (with gradient):

* ``weight`` x hinge: in copy 0 the true value's prompt leads every other by ``keep_margin``
  (cosine), so the attribute stays right;
* ``weight`` x hinge: in copy ``k`` the true value trails the best other by ``margin``, so the
  attribute is lost without the head;
* KL divergence of copy ``k``'s zero-shot distributions of the other attributes from copy 0's,
  so the head is needed for its attribute only;
* ``weight`` x hinge: in copy 0 every other attribute of :data:`KEPT` keeps its true value's lead
  of ``keep_margin``, so retuning the text tower does not cost them accuracy.

The text tower learns to read the attribute from the direction the planted head writes, and
nowhere else; since the class prompts are trained on, zero-shot accuracy after a planting stage
is that of a text readout tuned on the training split. The stage uses no weight decay (it would
shrink the frozen heads' slices) and no gradient clipping.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .world import ATTRIBUTES, VALUES, class_prompts

# Attributes whose zero-shot accuracy the stage holds up (hinge): all but the background texture,
# the spurious cue, which captions rarely name and the model reads at 0.47 by design.
KEPT = tuple(a for a in ATTRIBUTES if a != "background_texture")


@dataclass(frozen=True)
class Plant:
    """Make vision head ``head`` of layer ``layer`` necessary for ``attribute``."""

    attribute: str
    layer: int
    head: int

    @classmethod
    def parse(cls, spec: str) -> "Plant":
        """``"color:L5.H0"`` -> ``Plant("color", 5, 0)``."""
        match = re.fullmatch(r"(\w+):L(\d+)\.H(\d+)", spec.strip())
        if match is None:
            raise ValueError(f"--plant {spec!r}: expected ATTRIBUTE:L<layer>.H<head>, for example color:L5.H0")
        attribute = match.group(1)
        if attribute not in ATTRIBUTES:
            raise ValueError(f"--plant {spec!r}: unknown attribute {attribute!r}; expected one of {list(ATTRIBUTES)}")
        return cls(attribute, int(match.group(2)), int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.attribute}:L{self.layer}.H{self.head}"


def value_indices(attributes: list[dict[str, str]]) -> torch.Tensor:
    """Index of each sample's value of every attribute, columns in ``ATTRIBUTES`` order: ``[b, 7]``."""
    return torch.tensor([[VALUES[a].index(sample[a]) for a in ATTRIBUTES] for sample in attributes])


def lead(cosines: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The true class's cosine minus the best other's: cosines ``[b, k]``, labels ``[b]`` -> ``[b]``."""
    true = cosines.gather(1, labels[:, None])[:, 0]
    others = cosines.masked_fill(F.one_hot(labels, cosines.shape[1]).bool(), float("-inf"))
    return true - others.max(1).values


class HeadPlanting:
    """The planting stage's parameters, hooks and loss for a transformers ``CLIPModel``.

    ``tokenize(texts) -> (ids, mask)`` numpy arrays (the trainer's tokenizer). Creating it freezes
    the model as the module docstring says and registers the hooks; :meth:`remove` takes them off.
    """

    def __init__(self, model: Any, plants: list[Plant], tokenize: Callable, *, weight: float = 10.0,
                 margin: float = 0.02, keep_margin: float = 0.05, head_lr_scale: float = 3.0) -> None:
        vision = model.config.vision_config
        if not plants:
            raise ValueError("no heads to plant")
        for plant in plants:
            if not (0 <= plant.layer < vision.num_hidden_layers and 0 <= plant.head < vision.num_attention_heads):
                raise ValueError(f"--plant {plant}: the vision tower has {vision.num_hidden_layers} layers x "
                                 f"{vision.num_attention_heads} heads")
        if len({(p.layer, p.head) for p in plants}) < len(plants) or len({p.attribute for p in plants}) < len(plants):
            raise ValueError(f"--plant {', '.join(map(str, plants))}: one head per attribute and one attribute per head")
        self.model, self.plants, self.tokenize = model, plants, tokenize
        self.weight, self.margin, self.keep_margin, self.head_lr_scale = weight, margin, keep_margin, head_lr_scale
        self.width = vision.hidden_size // vision.num_attention_heads
        self.copies = 1 + len(plants)
        self.prompts = {a: tokenize(class_prompts(a)[1]) for a in ATTRIBUTES}
        self.vision_params = self._freeze()
        self.text_params = list(model.text_model.parameters()) + list(model.text_projection.parameters())
        layers = model.vision_model.encoder.layers
        first = min(p.layer for p in plants)
        self.handles = [layers[first].register_forward_pre_hook(self._repeat, with_kwargs=True)]
        for layer in sorted({p.layer for p in plants}):
            self.handles.append(layers[layer].self_attn.out_proj.register_forward_pre_hook(self._ablater(layer)))

    def settings(self) -> dict[str, float]:
        """The loss's weights and margins (recorded in the training log)."""
        return {"weight": self.weight, "margin": self.margin, "keep_margin": self.keep_margin,
                "head_lr_scale": self.head_lr_scale}

    def _freeze(self) -> list[torch.nn.Parameter]:
        """Freeze the vision tower, projection and logit scale except the planted heads' slices of
        their layers' q/k/v (rows) and output (columns) weights, whose other slices get zero gradient."""
        model = self.model
        for p in [*model.vision_model.parameters(), *model.visual_projection.parameters(), model.logit_scale]:
            p.requires_grad_(False)
        trained = []
        for layer in sorted({p.layer for p in self.plants}):
            attn = model.vision_model.encoder.layers[layer].self_attn
            rows = torch.zeros(attn.out_proj.weight.shape[1], device=attn.out_proj.weight.device)
            for plant in self.plants:
                if plant.layer == layer:
                    rows[plant.head * self.width:(plant.head + 1) * self.width] = 1
            tensors = [(attn.out_proj.weight, rows[None, :])]
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                tensors += [(proj.weight, rows[:, None]), (proj.bias, rows)]
            for tensor, mask in tensors:
                tensor.requires_grad_(True)
                tensor.register_hook(lambda grad, mask=mask: grad * mask)
                trained.append(tensor)
        return trained

    def optimizer(self, lr: float) -> torch.optim.AdamW:
        """AdamW over the text tower (``lr``) and the planted slices (``head_lr_scale * lr``)."""
        groups = [{"params": self.vision_params, "lr": lr * self.head_lr_scale}, {"params": self.text_params, "lr": lr}]
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)

    def _repeat(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (args[0].repeat(self.copies, 1, 1),) + args[1:], kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].repeat(self.copies, 1, 1)}

    def _ablater(self, layer: int) -> Callable:
        def ablate(module: Any, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            """Mean-ablate plant k's head in copy k: ``args[0]`` is ``[copies * b, tokens, width]``."""
            parts = list(args[0].chunk(self.copies))
            for k, plant in enumerate(self.plants, start=1):
                if plant.layer == layer:
                    cols = slice(plant.head * self.width, (plant.head + 1) * self.width)
                    part = parts[k].clone()
                    part[..., cols] = part[..., cols].mean(0, keepdim=True).detach()
                    parts[k] = part
            return (torch.cat(parts),) + args[1:]
        return ablate

    def remove(self) -> None:
        """Take the forward hooks off (the model runs one copy again; parameters stay as trained)."""
        for handle in self.handles:
            handle.remove()

    def embed_texts(self, ids: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor,
                    device: torch.device) -> torch.Tensor:
        """Unit text embeddings ``[n, d]``."""
        ids, mask = torch.as_tensor(ids, device=device), torch.as_tensor(mask, device=device)
        pooled = self.model.text_model(input_ids=ids, attention_mask=mask).pooler_output
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)

    def class_embeddings(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Unit embeddings of every attribute's class prompts: ``{attribute: [k, d]}``."""
        return {a: self.embed_texts(ids, mask, device) for a, (ids, mask) in self.prompts.items()}

    def image_embeddings(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Unit image embeddings ``[b, d]``: the intact model's, then one per plant with its head
        mean-ablated over the batch."""
        pooled = self.model.vision_model(pixel_values=pixel_values).pooler_output
        return list(F.normalize(self.model.visual_projection(pooled).float(), dim=-1).chunk(self.copies))

    def loss(self, pixel_values: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, matches: torch.Tensor,
             values: torch.Tensor, contrastive: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The stage's loss for one batch. pixel_values ``[b, 3, H, W]``; ids, mask ``[b, L]``;
        matches ``[b, b]``; values: :func:`value_indices` ``[b, 7]``; ``contrastive(logits, matches)``."""
        intact, *ablated = self.image_embeddings(pixel_values)
        captions = self.embed_texts(ids, mask, pixel_values.device)
        scale = self.model.logit_scale.exp()
        loss = contrastive(scale * intact @ captions.T, matches)
        classes = self.class_embeddings(pixel_values.device)
        for plant, without in zip(self.plants, ablated):
            labels = values[:, ATTRIBUTES.index(plant.attribute)]
            target = classes[plant.attribute]
            loss = loss + self.weight * (F.relu(self.keep_margin - lead(intact @ target.T, labels)).mean()
                                         + F.relu(lead(without @ target.T, labels) + self.margin).mean())
            for other in ATTRIBUTES:
                if other != plant.attribute:
                    loss = loss + F.kl_div(F.log_softmax(scale * without @ classes[other].T, -1),
                                           F.softmax(scale * intact.detach() @ classes[other].T, -1),
                                           reduction="batchmean")
        planted = {p.attribute for p in self.plants}
        for other in KEPT:
            if other not in planted:
                labels = values[:, ATTRIBUTES.index(other)]
                loss = loss + self.weight * F.relu(self.keep_margin - lead(intact @ classes[other].T, labels)).mean()
        return loss
