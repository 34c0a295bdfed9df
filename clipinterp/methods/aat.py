"""AAT: attention heads whose suppression improves CLIP (Lin et al., "Not All Attention Heads Are
What You Need", arXiv 2507.00537).

Some heads of CLIP's image encoder hurt the joint embedding; suppressing them "by directly
manipulating their attention weights", with the weights frozen, improves retrieval. This module
finds such head sets and evaluates them:

* the operator, :func:`attention_ablation`: an edit of the heads' attention weights at
  ``hook_pattern`` (variants ``"scale"``, ``"identity"``, ``"uniform"``, each on every query row or,
  with ``cls_only``, the CLS row only);
* :func:`single_head_scan` (one head at a time; :func:`plot_head_scan` draws the layer x head grid);
* :class:`GeneticSearch` (GA over binary head masks) and :class:`GradientSearch` (BP: sigmoid gates
  on the attention weights learned with a contrastive loss);
* :func:`evaluate_heads`: a held-out test set, next to zeroing, mean-ablating and a random head set.

**Default operator: ``"scale"`` on every query row** (``attn_scale(0, heads)``). The paper's masks
multiply attention weights, and its BP masks live in [0, 1]; with ``"scale"`` the BP gates
interpolate within the same family the GA searches (gate 1 = the model, gate 0 = the GA's edit).
Scaling a head's weights by ``m`` scales its value mixing, i.e. its output before ``W_O``, by ``m``,
so the binary edit is exactly the well-studied zero ablation of the head (``interventions.zero``;
``evaluate_heads`` shows both, and they agree) and it can be folded into ``W_O`` for inference at
no cost at all (:meth:`AATResult.fold`). ``cls_only`` leaves the patch tokens' use of the head intact
(a milder edit in early layers; in the last layer only the CLS row reaches the embedding, so there
the two coincide). ``"identity"``/``"uniform"`` replace the weights instead of suppressing them.

Data: :class:`PairedData` (images with captions and/or class labels). Search speed: a
:class:`LateLayerCache` holds the residual stream entering the earliest searchable layer, computed
once; every candidate runs only the blocks from there on (and only the layers a candidate edits
take the explicit-attention path, the others keep the fused one). Text embeddings are computed once.

Example, on the synthetic shapes world (``clipinterp.organism.world``)::

    val, test = world.generate("val", 500), world.generate("test", 1000)
    ga = GeneticSearch(layers=[-3, -2, -1]).fit(model, PairedData(val.images, val.captions))
    values, prompts = world.class_prompts("shape")
    labels = [values.index(a["shape"]) for a in test.attributes]
    evaluate_heads(model, ga.result_, PairedData(test.images, test.captions, labels, prompts, templates=["{}"]),
                   reference=val.images)
    edited = ga.result_.apply(model)  # or ga.result_.heads, a plain list, to save
"""
from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .. import interventions as iv
from ..evaluation import accuracy_from_embeddings, image_embeddings, recall_from_embeddings
from ..heads import HeadLike, head_name, parse_heads, resolve_layers
from ..late import LateRunner
from ..model.hooked_clip import DEFAULT_TEMPLATES

__all__ = ["AATResult", "GeneticSearch", "GradientSearch", "LateLayerCache", "METRICS", "PairedData", "Targets",
           "VARIANTS", "attention_ablation", "evaluate_heads", "plot_head_scan", "single_head_scan"]

Layers = Union[int, Iterable[int], None]

# ----------------------------------------------------------------------------- the operator
VARIANTS: dict[str, Callable[[Any, bool], iv.Intervention]] = {
    "scale": lambda heads, cls_only: iv.attn_scale(0.0, heads, cls_only),  # weights x 0: no value mixing
    "identity": iv.attn_identity,  # each query attends to itself
    "uniform": iv.attn_uniform,  # uniform weights over all tokens
}


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown AAT variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return variant


def attention_ablation(heads: Any, variant: str = "scale", cls_only: bool = False) -> iv.Intervention:
    """The AAT edit of ``heads``' attention weights (``hook_pattern``) as a
    :mod:`clipinterp.interventions` object; see the module docstring for the variants."""
    return VARIANTS[_check_variant(variant)](heads, cls_only)


def _ablations(heads: Any, variant: str, cls_only: bool) -> list[iv.Intervention]:
    """``[attention_ablation(...)]``, or no intervention at all for no heads."""
    return [attention_ablation(heads, variant, cls_only)] if len(heads) else []


def _replacement(pattern: Tensor, variant: str) -> Tensor:
    """What ``variant`` puts in place of ``pattern [b, h, q, k]`` (query rows from 0): the gate-0 end."""
    if variant == "scale":
        return torch.zeros_like(pattern)
    if variant == "identity":
        q, k = pattern.shape[-2:]
        return torch.eye(k, dtype=pattern.dtype, device=pattern.device)[:q].expand_as(pattern)
    return torch.full_like(pattern, 1.0 / pattern.shape[-1])


def _gate_hooks(gates: Tensor, layers: list[int], variant: str, cls_only: bool) -> iv.HookList:
    """Hooks mixing each head's weights ``g * pattern + (1 - g) * replacement``; ``gates [len(layers), H]``
    in [0, 1] (differentiable). At 0/1 they equal :func:`attention_ablation` / no edit."""
    hooks = []
    for i, layer in enumerate(layers):
        def hook(pattern, hook, i=i):
            g = gates[i].to(pattern)[None, :, None, None]
            rows = pattern[:, :, :1] if cls_only else pattern
            mixed = g * rows + (1 - g) * _replacement(rows, variant)
            return torch.cat([mixed, pattern[:, :, 1:]], dim=2) if cls_only else mixed
        hooks.append((f"blocks.{layer}.attn.hook_pattern", hook))
    return hooks


@dataclass
class AATResult:
    """Heads whose attention is suppressed, and how. ``heads`` is a plain list (``["L10.H3", ...]``)
    to save or share; :meth:`apply` gives the edited model for inference.

    ``metric``/``baseline``/``score``: the validation metric's name, its value on the original model
    and with the edit; ``layers``: the layers searched (the pool :func:`evaluate_heads` draws its
    random control from)."""

    heads: list[str]  # given as any head spec, stored as sorted names
    variant: str = "scale"
    cls_only: bool = False
    metric: Optional[str] = None
    baseline: Optional[float] = None
    score: Optional[float] = None
    layers: Optional[list[int]] = None

    def __post_init__(self):
        self.heads = [head_name(h) for h in parse_heads(self.heads)]
        _check_variant(self.variant)

    def to_interventions(self) -> list[iv.Intervention]:
        """The edit as :mod:`clipinterp.interventions` (an empty list for no heads)."""
        return _ablations(self.heads, self.variant, self.cls_only)

    def apply(self, model) -> iv.InterventionModel:
        """``model.with_interventions(...)`` with this edit: a drop-in replacement for the model.
        Heads outside the model raise a ``ValueError``."""
        return model.with_interventions(*self.to_interventions())

    def fold(self, model):
        """A copy of the model with the edit folded into the weights (``W_O`` rows of the heads set
        to 0): no hooks, no cost at inference. Only for ``"scale"`` on every query row, the variant
        that equals removing the heads' outputs."""
        if self.variant != "scale" or self.cls_only:
            raise ValueError(f"only the 'scale' variant on every query row folds into the weights; "
                             f"use apply() for {self.variant!r}{' (cls_only)' if self.cls_only else ''}")
        edited = copy.deepcopy(model)
        with torch.no_grad():
            for layer, h in parse_heads(self.heads, model.cfg.n_layers, model.cfg.n_heads):
                edited.blocks[layer].attn.W_O[h] = 0
        return edited


# ----------------------------------------------------------------------------- data and metrics
@dataclass
class PairedData:
    """A validation or test set: images with captions (retrieval) and/or class labels (zero-shot).

    images: ``N`` PIL images, ``[H, W, C]`` uint8 arrays (or one ``[N, H, W, C]`` array), or float
        pixels ``[N, c, S, S]``.
    captions: ``M`` strings, one per image, unless ``image_of_caption [M]`` gives each caption's image.
    labels: ``[N]`` indices into ``class_names``; the zero-shot prompts are ``templates`` filled with
        the class names (``("{}",)`` when the class names are whole prompts).
    """

    images: Any
    captions: Optional[Sequence[str]] = None
    labels: Optional[Sequence[int]] = None
    class_names: Optional[Sequence[str]] = None
    image_of_caption: Optional[Sequence[int]] = None
    templates: Sequence[str] = DEFAULT_TEMPLATES

    def __post_init__(self):
        n = len(self.images)
        if n == 0:
            raise ValueError("the data set is empty: no images")
        if self.captions is None and self.labels is None:
            raise ValueError("give captions (retrieval) and/or labels with class_names (zero-shot)")
        if self.captions is not None:
            self.captions = list(self.captions)
            bad = [i for i, c in enumerate(self.captions) if not isinstance(c, str)]
            if bad:
                kind = type(self.captions[bad[0]]).__name__
                raise TypeError(f"captions must be strings; caption {bad[0]} is a {kind}")
            if self.image_of_caption is None:
                if len(self.captions) != n:
                    raise ValueError(f"{n} images but {len(self.captions)} captions: give one caption per image, or "
                                     "image_of_caption to map several captions to each image")
                self.image_of_caption = torch.arange(n)
            self.image_of_caption = torch.as_tensor(list(self.image_of_caption), dtype=torch.long)
            if len(self.image_of_caption) != len(self.captions):
                raise ValueError(f"image_of_caption has {len(self.image_of_caption)} entries for "
                                 f"{len(self.captions)} captions")
            if len(self.captions) == 0 or self.image_of_caption.min() < 0 or self.image_of_caption.max() >= n:
                raise ValueError(f"image_of_caption must index the {n} images (and there must be captions)")
        elif self.image_of_caption is not None:
            raise ValueError("image_of_caption given without captions")
        if self.labels is not None:
            if self.class_names is None:
                raise ValueError("labels need class_names (the zero-shot classes they index)")
            self.labels = torch.as_tensor(list(self.labels), dtype=torch.long)
            if len(self.labels) != n:
                raise ValueError(f"{n} images but {len(self.labels)} labels")
            if self.labels.min() < 0 or self.labels.max() >= len(self.class_names):
                raise ValueError(f"labels must index the {len(self.class_names)} class names")
        elif self.class_names is not None:
            raise ValueError("class_names given without labels")

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, size: int) -> Iterator[Any]:
        """The images, ``size`` at a time."""
        for start in range(0, len(self), size):
            yield self.images[start:start + size]


@dataclass
class Targets:
    """The text side a metric scores image embeddings against, computed once per data set.

    text ``[M, d_embed]`` (unit caption embeddings) with image_of_caption ``[M]``; classes
    ``[C, d_embed]`` (zero-shot classifier) with labels ``[N]``; logit_scale (the model's)."""

    text: Optional[Tensor]
    image_of_caption: Optional[Tensor]
    classes: Optional[Tensor]
    labels: Optional[Tensor]
    logit_scale: float

    @classmethod
    def build(cls, model, data: PairedData) -> "Targets":
        text = model.encode_text(data.captions) if data.captions is not None else None
        classes = model.class_embeddings(data.class_names, data.templates) if data.labels is not None else None
        return cls(text, data.image_of_caption, classes, data.labels, float(model.text.logit_scale))


Metric = Callable[[Tensor, Targets], float]


def _recall_at_1(image: Tensor, t: Targets) -> float:
    """Mean of image->text and text->image recall@1."""
    r = recall_from_embeddings(image, t.text, t.image_of_caption, ks=(1,))
    return (r["i2t@1"] + r["t2i@1"]) / 2


def _mean_recall(image: Tensor, t: Targets) -> float:
    """Mean of recall@1/5/10 both ways (smoother than recall@1 on small sets)."""
    r = recall_from_embeddings(image, t.text, t.image_of_caption, ks=(1, 5, 10))
    return sum(r.values()) / len(r)


def _zero_shot(image: Tensor, t: Targets) -> float:
    """Zero-shot top-1 accuracy."""
    return accuracy_from_embeddings(image, t.classes, t.labels)


# name -> (metric(image_emb [N, d_embed] unit, targets) -> float, what the data must have)
METRICS: dict[str, tuple[Metric, str]] = {"recall@1": (_recall_at_1, "captions"), "recall": (_mean_recall, "captions"),
                                           "zero_shot": (_zero_shot, "labels")}


def _resolve_metric(metric: Union[str, Metric], data: PairedData) -> tuple[str, Metric]:
    """``(name, fn)`` for a metric name or a callable ``fn(image_emb [N, d] unit, targets) -> float``."""
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)} or pass a callable "
                         "fn(image_embeddings, targets) -> float")
    fn, needs = METRICS[metric]
    if getattr(data, needs) is None:
        raise ValueError(f"metric {metric!r} needs {needs}" + (" and class_names" if needs == "labels" else "")
                         + " in the data")
    return metric, fn


# ----------------------------------------------------------------------------- late-layer runs
class LateLayerCache(LateRunner):
    """A :class:`~clipinterp.late.LateRunner` over a :class:`PairedData` set, plus its
    :class:`Targets`, so that candidates can be scored by a metric."""

    def __init__(self, model, data: PairedData, start: int, batch_size: int = 64):
        super().__init__(model, (model.to_pixels(chunk) for chunk in data.batches(batch_size)), start, batch_size)
        self.targets = Targets.build(model, data)

    def score(self, interventions: Iterable[iv.Intervention], metric: Metric) -> float:
        value = float(metric(self.embed(interventions), self.targets))
        if not np.isfinite(value):
            raise ValueError(f"the metric returned {value}")
        return value


# ----------------------------------------------------------------------------- single heads
def single_head_scan(model, data: PairedData, metric: Union[str, Metric] = "recall@1", variant: str = "scale",
                     cls_only: bool = False, layers: Layers = None, batch_size: int = 64,
                     progress: bool = True) -> pd.DataFrame:
    """Suppress one head at a time: one row per head with ``layer``, ``head``, ``name``, ``metric``
    (the metric with that head suppressed) and ``delta`` (minus the original model's, in
    ``attrs["baseline"]``). Warns when no head changes the metric (no signal)."""
    name, fn = _resolve_metric(metric, data)
    layers = resolve_layers(layers, model.cfg.n_layers)
    _check_variant(variant)
    cache = LateLayerCache(model, data, layers[0], batch_size)
    baseline = cache.score([], fn)
    rows = []
    heads = [(layer, h) for layer in layers for h in range(model.cfg.n_heads)]
    for layer, h in tqdm(heads, desc="single heads", disable=not progress):
        value = cache.score([attention_ablation([(layer, h)], variant, cls_only)], fn)
        rows.append({"layer": layer, "head": h, "name": head_name((layer, h)), "metric": value,
                     "delta": value - baseline})
    scan = pd.DataFrame(rows)
    scan.attrs.update(baseline=baseline, metric=name, variant=variant, cls_only=cls_only)
    if (scan["delta"] == 0).all():
        warnings.warn(f"metric {name!r} is the same ({baseline:.4g}) with every single head suppressed: no signal "
                      "(more validation pairs, or a smoother metric such as 'recall')", RuntimeWarning, stacklevel=2)
    return scan


def plot_head_scan(scan: pd.DataFrame, value: str = "delta", ax=None):
    """Layer x head heatmap of a :func:`single_head_scan` column; ``delta`` on a diverging scale
    centred at 0 (blue: suppressing the head helps). Returns the Figure."""
    import matplotlib.pyplot as plt

    grid = scan.pivot(index="layer", columns="head", values=value)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * grid.shape[1] + 2, 0.4 * grid.shape[0] + 1.5))
    if value == "delta":
        lim = float(np.nanmax(np.abs(grid.values))) or 1.0
        image = ax.imshow(grid.values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    else:
        image = ax.imshow(grid.values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    metric = scan.attrs.get("metric", "metric")
    ax.set_title(f"{metric} with one head suppressed ({scan.attrs.get('variant', '')})")
    ax.figure.colorbar(image, ax=ax, label=f"{value} ({metric})")
    return ax.figure


# ----------------------------------------------------------------------------- searches
class _HeadSearch:
    """What both searches share: the operator, the searchable layers, the metric, the cache."""

    def __init__(self, variant: str, cls_only: bool, layers: Layers, metric: Union[str, Metric], batch_size: int,
                 seed: int, progress: bool):
        self.variant = _check_variant(variant)
        self.cls_only, self.layers, self.metric = cls_only, layers, metric
        self.batch_size, self.seed, self.progress = batch_size, seed, progress

    def _prepare(self, model, data: PairedData) -> tuple[list[tuple[int, int]], LateLayerCache, str, Metric]:
        """``(genes, cache, metric name, metric fn)``; genes: the searchable heads in mask order."""
        name, fn = _resolve_metric(self.metric, data)
        layers = resolve_layers(self.layers, model.cfg.n_layers)
        self.layers_ = layers
        genes = [(layer, h) for layer in layers for h in range(model.cfg.n_heads)]
        return genes, LateLayerCache(model, data, layers[0], self.batch_size), name, fn

    def _ablation(self, heads: list[tuple[int, int]]) -> list[iv.Intervention]:
        return _ablations(heads, self.variant, self.cls_only)

    def _finish(self, model, genes, chosen: np.ndarray, cache: LateLayerCache, name: str, fn: Metric) -> None:
        """Set ``heads_``, ``mask_ [n_layers, n_heads]`` (True: suppressed) and ``result_``."""
        heads = [g for g, keep in zip(genes, chosen) if keep]
        self.mask_ = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
        for layer, h in heads:
            self.mask_[layer, h] = True
        self.heads_ = [head_name(h) for h in heads]
        self.result_ = AATResult(self.heads_, self.variant, self.cls_only, name, cache.score([], fn),
                                 cache.score(self._ablation(heads), fn), list(self.layers_))


class GeneticSearch(_HeadSearch):
    """GA over binary head masks (1 = suppress the head with the AAT operator).

    Fitness: the validation ``metric`` (``"recall@1"``: mean of both directions; ``"recall"``;
    ``"zero_shot"``; or a callable ``fn(image_emb [N, d] unit, targets) -> float``), each distinct
    mask evaluated once over a :class:`LateLayerCache`. Generation 0 holds the empty mask (the
    original model) and random masks of density ``init_density``; then tournament selection,
    uniform crossover (probability ``crossover``), bit-flip mutation (per head, ``mutation``,
    default ``1 / n_genes``) and ``elitism`` survivors. Ties prefer fewer heads. Seeded.

    Attributes: ``best_mask_``/``mask_ [n_layers, n_heads]`` bool, ``heads_`` (``["L10.H3", ...]``),
    ``result_`` (:class:`AATResult`), ``history_`` (per generation: best and mean fitness, the best's
    head count, distinct masks evaluated so far), ``layers_``.
    """

    def __init__(self, population: int = 32, generations: int = 20, crossover: float = 0.8,
                 mutation: Optional[float] = None, elitism: int = 2, tournament: int = 3, init_density: float = 0.05,
                 layers: Layers = None, metric: Union[str, Metric] = "recall@1", variant: str = "scale",
                 cls_only: bool = False, batch_size: int = 64, seed: int = 0, progress: bool = True):
        super().__init__(variant, cls_only, layers, metric, batch_size, seed, progress)
        if population < 2 or not 0 <= elitism < population:
            raise ValueError("population must be >= 2 and 0 <= elitism < population")
        if generations < 0 or tournament < 1:
            raise ValueError("generations must be >= 0 and tournament >= 1")
        self.population, self.generations, self.crossover, self.mutation = population, generations, crossover, mutation
        self.elitism, self.tournament, self.init_density = elitism, tournament, init_density

    def fit(self, model, data: PairedData) -> "GeneticSearch":
        genes, cache, name, fn = self._prepare(model, data)
        n_genes = len(genes)
        rng = np.random.default_rng(self.seed)
        mutation = 1.0 / n_genes if self.mutation is None else self.mutation
        seen: dict[bytes, float] = {}

        def fitness(population: np.ndarray) -> np.ndarray:
            for mask in population:
                if mask.tobytes() not in seen:
                    seen[mask.tobytes()] = cache.score(self._ablation([g for g, m in zip(genes, mask) if m]), fn)
            return np.array([seen[mask.tobytes()] for mask in population])

        population = rng.random((self.population, n_genes)) < self.init_density
        population[0] = False  # the original model
        empty = ~population[1:].any(1)
        population[1:][empty, rng.integers(n_genes, size=int(empty.sum()))] = True
        scores = fitness(population)
        if np.ptp(scores) == 0:
            raise ValueError(f"metric {name!r} is constant ({scores[0]:.4g}) over all {self.population} masks of the "
                             "first generation: no signal to search on (more validation pairs, or a smoother metric "
                             "such as 'recall')")

        def record(generation: int) -> dict[str, Any]:
            best = population[_ranked(population, scores)[0]]
            return {"generation": generation, "best": scores.max(), "mean": scores.mean(),
                    "n_heads": int(best.sum()), "evaluated": len(seen)}

        history = [record(0)]
        bar = tqdm(range(1, self.generations + 1), desc="GA generations", disable=not self.progress)
        for generation in bar:
            order = _ranked(population, scores)
            children = [population[i] for i in order[:self.elitism]]
            while len(children) < self.population:
                a, b = (self._tournament(scores, rng) for _ in range(2))
                child = np.where(rng.random(n_genes) < 0.5, population[a], population[b]) \
                    if rng.random() < self.crossover else population[a].copy()
                children.append(child ^ (rng.random(n_genes) < mutation))
            population = np.stack(children)
            scores = fitness(population)
            history.append(record(generation))
            bar.set_postfix(best=f"{history[-1]['best']:.4f}")
        self.history_ = pd.DataFrame(history)
        self._finish(model, genes, population[_ranked(population, scores)[0]], cache, name, fn)
        self.best_mask_ = self.mask_
        return self

    def _tournament(self, scores: np.ndarray, rng: np.random.Generator) -> int:
        entrants = rng.integers(len(scores), size=self.tournament)
        return int(entrants[np.argmax(scores[entrants])])


def _ranked(population: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices best first; ties go to fewer heads, then to the earlier mask."""
    return np.lexsort((population.sum(1), -scores))


@contextmanager
def _frozen(model) -> Iterator[None]:
    """``requires_grad`` off on every model parameter, restored on exit."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _pair_batches(image_of_caption: Tensor, batch_size: int,
                  generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless ``(image_idx, caption_idx)`` batches, each image at most once per batch (one random
    caption of it): an epoch draws one caption per image, shuffled."""
    while True:
        perm = torch.randperm(len(image_of_caption), generator=generator)
        images, order = image_of_caption[perm].sort(stable=True)
        first = torch.ones_like(images, dtype=torch.bool)
        first[1:] = images[1:] != images[:-1]
        captions = perm[order[first]]
        captions = captions[torch.randperm(len(captions), generator=generator)]
        for chunk in captions.split(batch_size):
            if len(chunk) > 1:
                yield image_of_caption[chunk], chunk


class GradientSearch(_HeadSearch):
    """BP: one gate ``g = sigmoid(logit)`` per searchable head mixing its attention weights
    ``g * pattern + (1 - g) * replacement`` (for ``"scale"``: ``g * pattern``), learned by Adam on the
    symmetric InfoNCE loss of validation image-caption pairs (model weights frozen, gradients only to
    the gate logits) plus ``sparsity * mean(1 - g)``, which pushes gates to 1 (keep) so only heads
    worth it are suppressed. Heads with ``g < threshold`` form the binary mask.

    ``steps`` Adam steps at ``lr`` on batches of ``batch_size`` pairs (each image once per batch);
    gates start at ``init_gate``. ``metric`` only scores the thresholded result (``result_``).

    Attributes: ``gates_ [n_layers, n_heads]`` (1 outside the searched layers), ``mask_`` (True:
    suppressed), ``heads_``, ``result_`` (:class:`AATResult`), ``loss_curve_`` (loss per step),
    ``layers_``.
    """

    def __init__(self, steps: int = 100, lr: float = 0.1, sparsity: float = 0.05, threshold: float = 0.5,
                 init_gate: float = 0.95, layers: Layers = None, metric: Union[str, Metric] = "recall@1",
                 variant: str = "scale", cls_only: bool = False, batch_size: int = 64, seed: int = 0,
                 progress: bool = True):
        super().__init__(variant, cls_only, layers, metric, batch_size, seed, progress)
        if not 0 < init_gate < 1 or not 0 < threshold < 1:
            raise ValueError("init_gate and threshold must lie in (0, 1)")
        if batch_size < 2:
            raise ValueError("a contrastive loss needs batch_size >= 2")
        self.steps, self.lr, self.sparsity, self.threshold, self.init_gate = steps, lr, sparsity, threshold, init_gate

    def fit(self, model, data: PairedData) -> "GradientSearch":
        if data.captions is None:
            raise ValueError("GradientSearch learns from image-caption pairs: the data has no captions")
        if len(data.image_of_caption.unique()) < 2:
            raise ValueError("a contrastive loss needs at least 2 images with captions")
        genes, cache, name, fn = self._prepare(model, data)
        n_heads = model.cfg.n_heads
        logits = torch.full((len(self.layers_), n_heads), float(np.log(self.init_gate / (1 - self.init_gate))),
                            device=cache.resid.device, requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        batches = _pair_batches(cache.targets.image_of_caption, self.batch_size, generator)
        text, scale = cache.targets.text.to(cache.resid.device), cache.targets.logit_scale
        self.loss_curve_ = []
        with _frozen(model):
            for _ in tqdm(range(self.steps), desc="BP steps", disable=not self.progress):
                images, captions = next(batches)
                gates = torch.sigmoid(logits)
                with model.hooks(fwd_hooks=_gate_hooks(gates, self.layers_, self.variant, self.cls_only)):
                    image = F.normalize(cache.run(cache.resid[images]).float(), dim=-1)
                sims = scale * image @ text[captions].T
                target = torch.arange(len(sims), device=sims.device)
                loss = (F.cross_entropy(sims, target) + F.cross_entropy(sims.T, target)) / 2 \
                    + self.sparsity * (1 - gates).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self.loss_curve_.append(loss.item())
        gates = torch.sigmoid(logits.detach()).cpu()
        self.gates_ = torch.ones(model.cfg.n_layers, n_heads)
        self.gates_[self.layers_] = gates
        self._finish(model, genes, (gates < self.threshold).flatten().numpy(), cache, name, fn)
        return self


# ----------------------------------------------------------------------------- evaluation
def evaluate_heads(model, heads: Union[AATResult, Iterable[HeadLike]], data: PairedData,
                   variant: Optional[str] = None, cls_only: Optional[bool] = None, reference: Any = None,
                   random_layers: Layers = None, seed: int = 0, ks: Sequence[int] = (1, 5, 10),
                   batch_size: int = 64) -> pd.DataFrame:
    """Held-out evaluation (``data`` must not have been used in the search), full forward passes.

    Rows: ``original``; ``aat`` (the operator on ``heads``); ``zero`` and ``mean`` (the same heads'
    outputs zeroed / replaced by their mean over ``reference``, default ``data.images``); ``random``
    (the operator on as many heads drawn at random, seeded, from ``random_layers``: by default the
    layers the result searched, else those spanned by ``heads``). Columns: ``method``, ``n_heads``,
    ``heads``, ``i2t@k``/``t2i@k``/``mean_recall`` (with captions), ``accuracy`` (with labels).
    ``variant``/``cls_only`` default to the result's (``"scale"`` on all rows for a plain list).
    """
    if not isinstance(heads, AATResult):
        heads = AATResult(heads)
    variant = heads.variant if variant is None else variant
    cls_only = heads.cls_only if cls_only is None else cls_only
    cfg = model.cfg
    chosen = parse_heads(heads.heads, cfg.n_layers, cfg.n_heads)
    drawn = []
    if chosen:
        if random_layers is None:
            random_layers = heads.layers or range(chosen[0][0], chosen[-1][0] + 1)
        pool = [(layer, h) for layer in resolve_layers(random_layers, cfg.n_layers) for h in range(cfg.n_heads)]
        if len(pool) < len(chosen):
            raise ValueError(f"random_layers hold {len(pool)} heads, fewer than the {len(chosen)} to draw")
        picks = np.random.default_rng(seed).choice(len(pool), len(chosen), replace=False)
        drawn = parse_heads([pool[i] for i in picks])
    reference = data.images if reference is None else reference
    methods = {"original": ([], None), "aat": (chosen, lambda hs: _ablations(hs, variant, cls_only)),
               "zero": (chosen, lambda hs: [iv.zero(hs)]), "mean": (chosen, lambda hs: [iv.mean(hs, reference)]),
               "random": (drawn, lambda hs: _ablations(hs, variant, cls_only))}
    targets = Targets.build(model, data)
    rows = []
    for method, (hs, edit) in methods.items():
        interventions = edit(hs) if hs else []
        image = image_embeddings(model.with_interventions(*interventions), data.images, batch_size)
        row = {"method": method, "n_heads": len(hs), "heads": ", ".join(head_name(h) for h in hs)}
        if targets.text is not None:
            recall = recall_from_embeddings(image, targets.text, targets.image_of_caption, ks)
            row.update(recall, mean_recall=sum(recall.values()) / len(recall))
        if targets.labels is not None:
            row["accuracy"] = accuracy_from_embeddings(image, targets.classes, targets.labels)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(variant=variant, cls_only=cls_only, n_images=len(data))
    return table
