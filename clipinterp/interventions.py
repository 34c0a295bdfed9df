"""Live interventions on heads (total effect, through the forward pass).

Each intervention is a small object that knows which hook points it edits. Apply them with
``model.with_interventions(*interventions)``: the result is a drop-in replacement for the model
(``encode_image``, ``zero_shot``, ``run_with_cache``, ``decompose`` ... all see the edits) and also a
context manager that edits the model itself inside a ``with`` block::

    edited = model.with_interventions(zero("L10.H3"), scale(5.0, ["L11.H0"]))
    emb = edited.encode_image(images)
    with model.with_interventions(attn_uniform(["L9.H1"], cls_only=True)):
        probs = model.zero_shot(images, classes)

Head outputs (``zero``, ``mean``, ``scale``, ``prune``, ``patch``) are edited at ``hook_z``, so the
layer's out-projection bias is untouched. Attention edits (``attn_*``) act on ``hook_pattern``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union

import torch

from .heads import HeadLike, head_name, listed_heads, parse_heads

Heads = Union[HeadLike, Iterable[HeadLike]]
HookList = list[tuple[str, Callable]]


def _by_layer(heads: list[tuple[int, int]]) -> dict[int, list[int]]:
    layers: dict[int, list[int]] = defaultdict(list)
    for layer, h in heads:
        layers[layer].append(h)
    return layers


@dataclass
class Intervention:
    """Base class: ``heads`` named as ``(layer, head)`` or ``"L10.H3"``; ``hooks(model)`` lists
    ``(hook_name, fn)`` pairs for TransformerLens."""

    heads: Any

    def resolved(self, model) -> list[tuple[int, int]]:
        return parse_heads(self.heads, model.cfg.n_layers, model.cfg.n_heads)

    def hooks(self, model) -> HookList:
        raise NotImplementedError

    def describe(self) -> str:
        names = ", ".join(head_name(h) for h in parse_heads(self.heads))
        return f"{type(self).__name__.lower()}({names})"


def _z_hooks(model, heads: list[tuple[int, int]], edit: Callable[[torch.Tensor, int, list[int]], torch.Tensor]) -> HookList:
    """Hooks on ``hook_z [b, p, H, k]`` that replace the chosen heads' slice by ``edit(z, layer, heads)``."""
    hooks = []
    for layer, hs in _by_layer(heads).items():
        def hook(z, hook, layer=layer, hs=hs):
            z = z.clone()
            z[:, :, hs] = edit(z[:, :, hs], layer, hs)
            return z
        hooks.append((f"blocks.{layer}.attn.hook_z", hook))
    return hooks


@dataclass
class Zero(Intervention):
    """Zero the heads' outputs."""

    def hooks(self, model) -> HookList:
        return _z_hooks(model, self.resolved(model), lambda z, layer, hs: torch.zeros_like(z))


def _reference_means(intervention: Any, model) -> dict[int, torch.Tensor]:
    """``{layer: [p, H, k]}`` means of ``hook_z`` over ``intervention.reference`` (given as such,
    or computed once per model and kept in ``intervention._means``)."""
    if isinstance(intervention.reference, dict):
        return intervention.reference
    key = id(model)
    if key not in intervention._means:
        layers = sorted({layer for layer, _ in intervention.resolved(model)})
        intervention._means[key] = mean_z(model, intervention.reference, layers)
    return intervention._means[key]


@dataclass
class Scale(Intervention):
    """Multiply the heads' outputs by ``alpha`` (Head Pursuit: -1 suppresses, 5 enhances).

    With a ``reference`` (as for :class:`Mean`) only the deviation from the reference mean is
    scaled, ``mean + alpha * (z - mean)``: the heads' average output stays where it is (alpha 0
    is mean ablation, 1 changes nothing)."""

    alpha: float = 1.0
    reference: Any = None
    _means: dict = field(default_factory=dict, repr=False)

    def hooks(self, model) -> HookList:
        if self.reference is None:
            return _z_hooks(model, self.resolved(model), lambda z, layer, hs: z * self.alpha)
        means = _reference_means(self, model)

        def centred(z, layer, hs):
            mu = means[layer][:, hs].to(z)
            return mu + self.alpha * (z - mu)
        return _z_hooks(model, self.resolved(model), centred)

    def describe(self) -> str:
        centred = "" if self.reference is None else ", around the reference mean"
        return super().describe()[:-1] + f", alpha={self.alpha}{centred})"


@dataclass
class Mean(Intervention):
    """Replace the heads' outputs by their mean over a reference set, per position. ``reference``:
    images or pixels (the means are computed once per model) or precomputed ``{layer: [p, H, k]}``
    means of ``hook_z``."""

    reference: Any = None
    _means: dict = field(default_factory=dict, repr=False)

    def means(self, model) -> dict[int, torch.Tensor]:
        if self.reference is None:
            raise ValueError("mean ablation needs a reference set: mean(heads, reference=images)")
        return _reference_means(self, model)

    def hooks(self, model) -> HookList:
        means = self.means(model)
        return _z_hooks(model, self.resolved(model), lambda z, layer, hs: means[layer][:, hs].to(z).expand_as(z))


@dataclass
class Prune(Intervention):
    """Soft pruning as the CCS paper's code does it: zero the heads' query rows (weight and bias)
    and their out-projection columns, in the forward pass. The second alone already silences the
    head; the first is kept so that the head's pattern (uniform) matches theirs."""

    def hooks(self, model) -> HookList:
        heads = self.resolved(model)
        zero = lambda t, layer, hs: torch.zeros_like(t)  # noqa: E731
        q_hooks = [(name.replace("hook_z", "hook_q"), fn) for name, fn in _z_hooks(model, heads, zero)]
        return q_hooks + _z_hooks(model, heads, zero)


def _pattern_hooks(heads: list[tuple[int, int]], edit: Callable[[torch.Tensor, int, list[int]], torch.Tensor],
                   cls_only: bool) -> HookList:
    """Hooks on ``hook_pattern [b, H, q, k]`` editing the chosen heads (all query rows, or row 0)."""
    hooks = []
    for layer, hs in _by_layer(heads).items():
        def hook(pattern, hook, layer=layer, hs=hs):
            pattern = pattern.clone()
            rows = slice(0, 1) if cls_only else slice(None)
            pattern[:, hs, rows] = edit(pattern[:, hs, rows], layer, hs)
            return pattern
        hooks.append((f"blocks.{layer}.attn.hook_pattern", hook))
    return hooks


@dataclass
class AttnScale(Intervention):
    """Multiply the heads' attention weights by ``factor`` in [0, 1] (one value, or one per head in
    the order given). Equal to scaling the head's output before the out-projection."""

    factor: Union[float, list[float]] = 0.0
    cls_only: bool = False

    def hooks(self, model) -> HookList:
        heads = parse_heads(self.heads, model.cfg.n_layers, model.cfg.n_heads)
        factors = self.factor if isinstance(self.factor, (list, tuple)) else [self.factor] * len(heads)
        given = listed_heads(self.heads) if isinstance(self.factor, (list, tuple)) else heads
        if len(factors) != len(given):
            raise ValueError(f"attn_scale: {len(factors)} factors for {len(given)} heads")
        if len(set(given)) != len(given):
            raise ValueError(f"attn_scale: a head is listed twice in {[head_name(h) for h in given]}")
        if any(not 0.0 <= f <= 1.0 for f in factors):
            raise ValueError(f"attn_scale factors must lie in [0, 1], got {factors}")
        table = dict(zip(given, factors))

        def edit(pattern, layer, hs):
            f = torch.tensor([table[(layer, h)] for h in hs], dtype=pattern.dtype, device=pattern.device)
            return pattern * f[None, :, None, None]
        return _pattern_hooks(heads, edit, self.cls_only)


@dataclass
class AttnIdentity(Intervention):
    """Each query attends only to itself (with ``cls_only``: only the CLS query, to itself)."""

    cls_only: bool = False

    def hooks(self, model) -> HookList:
        def edit(pattern, layer, hs):
            q, k = pattern.shape[-2:]
            eye = torch.eye(k, dtype=pattern.dtype, device=pattern.device)[:q]
            return eye.expand_as(pattern)
        return _pattern_hooks(self.resolved(model), edit, self.cls_only)


@dataclass
class AttnUniform(Intervention):
    """Uniform attention over all tokens (with ``cls_only``: for the CLS query only)."""

    cls_only: bool = False

    def hooks(self, model) -> HookList:
        return _pattern_hooks(self.resolved(model), lambda p, layer, hs: torch.full_like(p, 1.0 / p.shape[-1]),
                              self.cls_only)


@dataclass
class Patch(Intervention):
    """Activation patching: the heads' ``what`` (``"z"`` -- the head's output -- or ``"pattern"``)
    taken from a cached source run (an ``ActivationCache`` or dict holding those hooks)."""

    source: Any = None
    what: str = "z"

    def hooks(self, model) -> HookList:
        if self.what not in ("z", "pattern"):
            raise ValueError(f"patch what={self.what!r}: choose 'z' (head output) or 'pattern'")
        heads = self.resolved(model)

        def taken(layer):
            name = f"blocks.{layer}.attn.hook_{self.what}"
            try:
                return self.source[name]
            except KeyError:
                raise KeyError(f"the source cache has no {name!r}; cache it with run_with_cache") from None

        if self.what == "z":
            return _z_hooks(model, heads, lambda z, layer, hs: _match(taken(layer)[:, :, hs], z))
        return _pattern_hooks(heads, lambda p, layer, hs: _match(taken(layer)[:, hs], p), cls_only=False)


def _match(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if source.shape[1:] != target.shape[1:] or source.shape[0] not in (1, target.shape[0]):
        raise ValueError(f"patch source has shape {tuple(source.shape)}, the run needs {tuple(target.shape)} "
                         "(same positions, and a batch of 1 or the same size)")
    return source.to(target).expand_as(target)


# Factories: the names used in notebooks and the README.
def zero(heads: Heads) -> Zero:
    return Zero(heads)


def scale(alpha: float, heads: Heads, reference: Any = None) -> Scale:
    return Scale(heads, alpha, reference)


def mean(heads: Heads, reference: Any) -> Mean:
    return Mean(heads, reference)


def prune(heads: Heads) -> Prune:
    return Prune(heads)


def attn_scale(factor: Union[float, list[float]], heads: Heads, cls_only: bool = False) -> AttnScale:
    return AttnScale(heads, factor, cls_only)


def attn_identity(heads: Heads, cls_only: bool = False) -> AttnIdentity:
    return AttnIdentity(heads, cls_only)


def attn_uniform(heads: Heads, cls_only: bool = False) -> AttnUniform:
    return AttnUniform(heads, cls_only)


def patch(heads: Heads, source: Any, what: str = "z") -> Patch:
    return Patch(heads, source, what)


@torch.no_grad()
def mean_z(model, reference: Any, layers: Iterable[int], batch_size: int = 64) -> dict[int, torch.Tensor]:
    """Mean of ``hook_z`` over reference images, per position: ``{layer: [p, H, k]}``."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in layers]
    sums: dict[int, torch.Tensor] = {}
    count = 0
    is_pixels = isinstance(reference, torch.Tensor) and reference.is_floating_point()
    if len(reference) == 0:
        raise ValueError("the reference set for mean ablation is empty")
    for start in range(0, len(reference), batch_size):
        chunk = reference[start:start + batch_size]
        pixels = model.to_pixels(chunk) if is_pixels else model.preprocess(chunk)
        _, cache = model.run_with_cache(pixels, names_filter=names)
        for layer, name in zip(layers, names):
            sums[layer] = sums.get(layer, 0) + cache[name].sum(0)
        count += len(pixels)
    return {layer: s / count for layer, s in sums.items()}


class InterventionModel:
    """A model with interventions applied: a drop-in replacement whose forward, ``encode_image``,
    ``zero_shot``, ``run_with_cache`` and ``run_with_hooks`` run with the edits; every other
    attribute is the model's. As a context manager it applies the edits to the model itself.
    An edit is never applied twice: edits already on the model (inside a ``with`` block of this
    or a chained edited model) are skipped."""

    _WRAPPED = ("forward", "__call__", "encode_image", "zero_shot", "run_with_cache", "run_with_hooks")

    def __init__(self, model, interventions: Iterable[Intervention]):
        self.model = model
        self.interventions = list(interventions)
        self._hooks = [(iv, iv.hooks(model)) for iv in self.interventions]
        for _, hooks in self._hooks:
            for name, _ in hooks:
                model.check_hook_name(name)
        self._context = None

    def _inactive(self) -> list[tuple[Intervention, HookList]]:
        """The edits (with their hooks) that a ``with`` block has not put on the model already."""
        active = _active_edits(self.model)
        return [(iv, hooks) for iv, hooks in self._hooks if not any(iv is a for a in active)]

    @property
    def fwd_hooks(self) -> HookList:
        """The hooks of the edits that are not on the model already."""
        return [hook for _, hooks in self._inactive() for hook in hooks]

    def __getattr__(self, name: str):
        attr = getattr(self.model, name)
        if name in self._WRAPPED:
            def wrapped(*args, **kwargs):
                with self.model.hooks(fwd_hooks=self.fwd_hooks):
                    return attr(*args, **kwargs)
            return wrapped
        return attr

    def __call__(self, *args, **kwargs):
        return self.__getattr__("__call__")(*args, **kwargs)

    def with_interventions(self, *interventions: Intervention) -> "InterventionModel":
        """These edits followed by ``interventions``, on the same model."""
        return InterventionModel(self.model, [*self.interventions, *interventions])

    def __enter__(self):
        inactive = self._inactive()
        self._context = self.model.hooks(fwd_hooks=[hook for _, hooks in inactive for hook in hooks])
        self._context.__enter__()
        self._added = [iv for iv, _ in inactive]
        _active_edits(self.model).extend(self._added)
        return self.model

    def __exit__(self, *exc):
        active = _active_edits(self.model)
        active[:] = [a for a in active if not any(a is iv for iv in self._added)]
        context, self._context = self._context, None
        return context.__exit__(*exc)

    def describe(self) -> str:
        return " + ".join(iv.describe() for iv in self.interventions) or "none"

    def __repr__(self) -> str:
        return f"InterventionModel({self.model!r}, {self.describe()})"


def _active_edits(model) -> list:
    """The interventions a ``with`` block currently applies to ``model`` (kept on the model)."""
    if not hasattr(model, "_clipinterp_active_edits"):
        model._clipinterp_active_edits = []
    return model._clipinterp_active_edits


def with_interventions(model, *interventions: Intervention) -> InterventionModel:
    """See :class:`InterventionModel`."""
    return InterventionModel(model, interventions)
