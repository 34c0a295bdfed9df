"""Head Pursuit (Basile et al., NeurIPS 2025) on CLIP: rank heads for a concept, describe them, edit them.

* :func:`head_pursuit` scores every head for a concept (a list of words, class names or
  descriptions, encoded with the model's text tower): the fraction of the variance of the head's
  direct contribution to the image embedding (one row per image, ``[N, d_embed]``) that
  :class:`~clipinterp.methods.somp.SOMP` explains with ``n_atoms`` of the concept's unit text
  embeddings (the paper's score), and that variance in embedding units (``explained``: the
  fraction times the head's variance, which does not favour heads that write little). The
  logit-lens baseline (mean projection onto the concept directions) sits beside them.
* :func:`describe_head` is the ResiDual variant: SOMP over a whole text bank for one head.
* :func:`edit_heads` scales heads in the forward pass; :func:`editing_table` compares the top-k
  Head Pursuit heads with random control sets and the logit-lens top-k on zero-shot accuracy.

Bad input: an empty concept, dictionary rows of zero norm and NaN/inf in the signal raise
``ValueError``. ``n_atoms`` above the dictionary size is capped at it with a warning (by default
``n_atoms`` is ``min(50, dictionary size)``, no warning); a concept whose texts are linearly
dependent stops early with SOMP's warning.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..decompose import Decomposition, decompose
from ..evaluation import accuracy_from_embeddings
from ..heads import HeadLike, head_name, parse_heads, resolve_layers
from ..interventions import InterventionModel, mean_z, scale
from ..late import LateRunner, batched_pixels
from ..textbank import embedded_for
from .somp import SOMP, logit_lens_scores
from .textspan import Bank, _unpack_bank

__all__ = ["concept_embeddings", "describe_head", "edit_heads", "editing_table", "head_pursuit",
           "plot_head_pursuit", "random_control_sets", "top_heads"]

Concept = Union[str, Sequence[str], Tensor]
Source = Union[Decomposition, Any]  # a Decomposition or a HookedCLIP
DEFAULT_ATOMS = 50
RANKINGS = ("score", "explained")  # head_pursuit columns that rank heads for editing


# ----------------------------------------------------------------------------- inputs
def concept_embeddings(model, concept: Concept) -> Tensor:
    """A concept's dictionary ``[M, d_embed]``: unit text embeddings of its texts (stripped,
    empty ones and repeats dropped), or the rows of a given ``[M, d]`` tensor as they are."""
    if isinstance(concept, Tensor):
        if concept.ndim != 2 or concept.shape[0] == 0:
            raise ValueError(f"a concept given as embeddings must be a non-empty [M, d], got {tuple(concept.shape)}")
        return concept
    texts = [concept] if isinstance(concept, str) else list(concept)
    wrong = [t for t in texts if not isinstance(t, str)]
    if wrong:
        raise TypeError(f"a concept is a list of texts; got {type(wrong[0]).__name__} {wrong[0]!r}")
    texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    if not texts:
        raise ValueError("the concept has no words: give a non-empty list of words, class names or descriptions")
    if model is None:
        raise ValueError("encoding a concept's texts needs the model: pass model=... (or embeddings [M, d])")
    return model.encode_text(texts)


def _head_outputs(source: Source, images: Any, convention: str, batch_size: int) -> Tensor:
    """``[N, L, H, d_embed]`` direct head contributions, from a Decomposition or decomposed here."""
    if isinstance(source, Decomposition):
        if images is not None:
            raise ValueError("pass images only with a model; a Decomposition already holds its images")
        return source.heads
    if images is None:
        raise ValueError("head pursuit on a model needs images: head_pursuit(model, images, concept)")
    return decompose(source, images, convention=convention, batch_size=batch_size, progress=False).heads


def _atom_count(n_atoms: Optional[int], n_dictionary: int) -> int:
    """``n_atoms`` capped at the dictionary size (with a warning); None: ``min(50, size)``."""
    if n_atoms is None:
        return min(DEFAULT_ATOMS, n_dictionary)
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be positive, got {n_atoms}")
    if n_atoms > n_dictionary:
        warnings.warn(f"n_atoms={n_atoms} exceeds the concept's {n_dictionary} atoms; using {n_dictionary}",
                      stacklevel=3)
    return min(n_atoms, n_dictionary)


# ----------------------------------------------------------------------------- ranking
def head_pursuit(source: Source, images: Any = None, concept: Concept = (), *, model=None,
                 n_atoms: Optional[int] = None, layers: Union[int, Sequence[int], None] = None,
                 convention: str = "centered", batch_size: int = 64) -> pd.DataFrame:
    """Score every head of ``layers`` (default all) for ``concept``.

    ``head_pursuit(model, images, concept)`` decomposes ``images`` first (``convention``, see
    :mod:`clipinterp.decompose`; "centered" keeps only the head's own term);
    ``head_pursuit(decomposition, concept=..., model=model)`` uses an unprojected Decomposition
    (the model encodes the concept's texts; not needed when ``concept`` is embeddings ``[M, d]``).

    Returns one row per head: ``layer, head, name, score`` (SOMP explained-variance fraction
    after ``n_atoms``, the paper's head score), ``explained`` (``score`` times the head's variance,
    the mean squared norm of its centred contribution: the variance explained in embedding units),
    ``logit_lens`` (mean projection onto the unit concept directions), ``rank`` (1 = highest
    score), ``explained_rank`` and ``logit_lens_rank``. Plot it with :func:`plot_head_pursuit`.
    """
    model = source if model is None and not isinstance(source, Decomposition) else model
    dictionary = concept_embeddings(model, concept)
    heads = _head_outputs(source, images, convention, batch_size)
    if heads.shape[-1] != dictionary.shape[-1]:
        raise ValueError(f"head outputs have width {heads.shape[-1]}, the concept embeddings {dictionary.shape[-1]}: "
                         "pass an unprojected decomposition of the same model")
    n_heads = heads.shape[2]
    pairs = [(layer, h) for layer in resolve_layers(layers, heads.shape[1]) for h in range(n_heads)]
    signals = torch.stack([heads[:, layer, h] for layer, h in pairs])  # [B, N, d]
    fitted = SOMP(_atom_count(n_atoms, len(dictionary))).fit(signals, dictionary)
    variance = (signals - signals.mean(1, keepdim=True)).double().square().sum(-1).mean(-1)  # [B]
    table = pd.DataFrame({
        "layer": [layer for layer, _ in pairs],
        "head": [h for _, h in pairs],
        "name": [head_name(p) for p in pairs],
        "score": fitted.score_.cpu().double().numpy(),
        "explained": (fitted.score_.cpu().double() * variance.cpu()).numpy(),
        "logit_lens": logit_lens_scores(signals, dictionary).cpu().double().numpy(),
    })
    table["rank"] = table["score"].rank(ascending=False, method="first").astype(int)
    table["explained_rank"] = table["explained"].rank(ascending=False, method="first").astype(int)
    table["logit_lens_rank"] = table["logit_lens"].rank(ascending=False, method="first").astype(int)
    return table


def top_heads(table: pd.DataFrame, k: int, by: str = "score") -> list[tuple[int, int]]:
    """The ``k`` heads with the largest ``by`` (``"score"``, ``"explained"`` or ``"logit_lens"``) in a
    :func:`head_pursuit` table, best first."""
    if not 0 < k <= len(table):
        raise ValueError(f"k={k} out of range: the table has {len(table)} heads")
    if by not in (*RANKINGS, "logit_lens"):
        raise ValueError(f"by={by!r}: expected 'score', 'explained' or 'logit_lens'")
    best = table.sort_values(by, ascending=False, kind="stable").head(k)
    return list(zip(best["layer"].astype(int), best["head"].astype(int)))


def plot_head_pursuit(table: pd.DataFrame, value: str = "score", k: int = 0, **kwargs):
    """Layer x head heatmap of a :func:`head_pursuit` column (``"score"``, ``"explained"`` or ``"logit_lens"``),
    the top ``k`` heads framed; other keywords go to :func:`~clipinterp.viz.plot_head_heatmap`."""
    from ..viz.plots import plot_head_heatmap

    highlight = top_heads(table, k, value) if k else None
    center = 0.0 if value == "logit_lens" else None
    return plot_head_heatmap(table, value=value, highlight=highlight, center=center, **kwargs)


def describe_head(source: Source, head: Union[HeadLike, Iterable[HeadLike]], bank: Union[Bank, Any],
                  images: Any = None, *, n_atoms: int = 10, convention: str = "centered",
                  batch_size: int = 64) -> pd.DataFrame:
    """Describe heads by SOMP over a whole text bank (the ResiDual variant of Head Pursuit).

    ``source``: an unprojected Decomposition, or a model with ``images``. ``bank``: a
    :class:`~clipinterp.textbank.TextBank` (embedded here with the model unless it already is;
    with a Decomposition, a bank embedded with another model is warned about) or
    ``(texts, embeddings [M, d])``. Returns ``n_atoms`` rows per head in pick order:
    ``layer, head, name, rank, text, text_index, weight`` (root mean square of the atom's
    least-squares coefficient over images) and ``explained_variance`` (cumulative).
    """
    if not isinstance(source, Decomposition):
        bank = embedded_for(bank, source)
    texts, embeddings = _unpack_bank(bank, source.model_name if isinstance(source, Decomposition) else "")
    outputs = _head_outputs(source, images, convention, batch_size)
    pairs = parse_heads(head, outputs.shape[1], outputs.shape[2])
    if not pairs:
        raise ValueError("no head given")
    signals = torch.stack([outputs[:, layer, h] for layer, h in pairs])
    fitted = SOMP(_atom_count(n_atoms, len(texts))).fit(signals, embeddings)
    support = fitted.support_.cpu().numpy()  # [B, s]
    steps = support.shape[1]
    return pd.DataFrame({
        "layer": np.repeat([layer for layer, _ in pairs], steps),
        "head": np.repeat([h for _, h in pairs], steps),
        "name": np.repeat([head_name(p) for p in pairs], steps),
        "rank": np.tile(np.arange(steps), len(pairs)),
        "text": np.asarray(texts, dtype=object)[support.ravel()],
        "text_index": support.ravel(),
        "weight": fitted.coef_.square().mean(dim=1).sqrt().cpu().double().numpy().ravel(),
        "explained_variance": fitted.explained_variance_.cpu().double().numpy().ravel(),
    })


# ----------------------------------------------------------------------------- editing
def edit_heads(model, heads: Union[HeadLike, Iterable[HeadLike]], alpha: float = -1.0) -> InterventionModel:
    """The model with ``heads``' outputs multiplied by ``alpha`` at every position (-1 suppresses,
    5 enhances): a drop-in model and a context manager (see :mod:`clipinterp.interventions`)."""
    return model.with_interventions(scale(alpha, heads))


def random_control_sets(selected: Iterable[HeadLike], n_layers: int, n_heads: int, n_sets: int = 10,
                        rng: Optional[np.random.Generator] = None) -> list[list[tuple[int, int]]]:
    """``n_sets`` random head sets disjoint from ``selected`` with its per-layer counts.

    Where a layer has too few other heads, the rest come from the nearest layers (with a
    warning). Each set is sorted; ``[n_sets][k]`` pairs.
    """
    chosen = parse_heads(selected, n_layers, n_heads)
    if n_layers * n_heads - len(chosen) < len(chosen):
        raise ValueError(f"{len(chosen)} heads selected of {n_layers * n_heads}: too few others for a disjoint "
                         "random set of the same size")
    rng = rng or np.random.default_rng(0)
    wanted = np.bincount([layer for layer, _ in chosen], minlength=n_layers)
    free = [[h for h in range(n_heads) if (layer, h) not in chosen] for layer in range(n_layers)]
    short = sum(max(0, c - len(f)) for c, f in zip(wanted, free))
    if short:
        warnings.warn(f"{short} of the {len(chosen)} random heads come from neighbouring layers: some layers "
                      "have too few unselected heads to match the per-layer counts", stacklevel=2)
    return [_draw_set(wanted, free, rng) for _ in range(n_sets)]


def _draw_set(wanted: np.ndarray, free: list[list[int]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """One random set: ``wanted[l]`` heads of ``free[l]`` per layer, shortfalls from the nearest layers."""
    pool = {layer: list(rng.permutation(heads)) for layer, heads in enumerate(free)}
    out = []
    for layer in np.flatnonzero(wanted):
        need = int(wanted[layer])
        for source in sorted(pool, key=lambda other: (abs(other - layer), rng.random())):
            take = min(need, len(pool[source]))
            out += [(source, int(h)) for h in pool[source][:take]]
            pool[source] = pool[source][take:]
            need -= take
            if not need:
                break
    return sorted(out)


def _classifier(model, prompts: Sequence[str]) -> Tensor:
    """Unit text embeddings ``[C, d_embed]`` of the class prompts, in order."""
    if isinstance(prompts, str) or not list(prompts):
        raise ValueError(f"class prompts must be a non-empty list of texts, got {prompts!r}")
    return model.encode_text(list(prompts))


def _labels(labels: Sequence[int], n_images: int, n_classes: int, name: str) -> Tensor:
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    if len(labels) != n_images:
        raise ValueError(f"concept {name!r} has {len(labels)} labels for {n_images} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"concept {name!r}: labels must index its {n_classes} class prompts")
    return labels


def _normalised(accuracy: float, baseline: float) -> float:
    return accuracy / baseline if baseline > 0 else float("nan")


def _head_sets(table: pd.DataFrame, ks: Sequence[int], n_random: int, shape: tuple[int, int],
               seed: int, salt: int, rank_by: str) -> list[tuple[int, str, list[tuple[int, int]]]]:
    """``(k, method, heads)`` for the pursuit top-k, the random controls and the logit-lens top-k."""
    runs = []
    for k in ks:
        selected = top_heads(table, k, rank_by)
        runs.append((k, "pursuit", selected))
        controls = random_control_sets(selected, *shape, n_random, np.random.default_rng([seed, salt, k]))
        runs += [(k, "random", heads) for heads in controls]
        runs.append((k, "logit_lens", top_heads(table, k, "logit_lens")))
    return runs


def _summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles and count of ``accuracy`` per (concept, evaluated, k, method)."""
    keys = ["concept", "evaluated", "scope", "k", "method", "alpha", "centered", "baseline"]
    grouped = runs.groupby(keys, sort=False)
    out = grouped["accuracy"].agg(median="median", q25=lambda a: a.quantile(0.25),
                                  q75=lambda a: a.quantile(0.75), n="count")
    out["heads"] = grouped["heads"].agg(lambda h: h.iloc[0] if len(h) == 1 else "")
    return out.reset_index()


def editing_table(model, images: Any, concepts: Mapping[str, tuple[Sequence[int], Sequence[str]]],
                  ks: Sequence[int] = (1, 2, 4, 8), alpha: float = -1.0, n_random: int = 10, seed: int = 0,
                  n_atoms: Optional[int] = None, normalize: bool = False, rank_by: str = "score",
                  batch_size: int = 64, targets: Optional[Sequence[str]] = None,
                  reference: Any = None, progress: bool = True) -> pd.DataFrame:
    """Edit the top-k Head Pursuit heads of each concept and measure zero-shot accuracy everywhere.

    ``concepts``: ``{name: (labels [N], class prompts [C])}``; the prompts are both the
    zero-shot classifier (their unit text embeddings, no template) and the concept's pursuit
    dictionary. For each concept and each ``k``, three selections are scaled by ``alpha`` in the
    forward pass: the top-k Head Pursuit heads by ``rank_by`` (``pursuit``; ``"score"``, the
    paper's fraction, or ``"explained"``, see :func:`head_pursuit`), ``n_random`` random sets with the
    same per-layer counts disjoint from them (``random``, see :func:`random_control_sets`), and
    the logit-lens top-k (``logit_lens``). ``targets``: the concepts whose heads are edited
    (default all); every concept is evaluated, and a concept's rows do not depend on which
    others are targets. With ``reference`` (images or pixels) every edit is centred: only the
    heads' deviation from their mean over the reference is scaled (``scale(alpha, heads,
    reference=...)``; alpha -1 then reflects each output about the mean instead of negating the
    mean output too). progress: a bar over the edited forward passes (one per head set).

    Returns the tidy table of the paper: one row per ``(concept, evaluated, k, method)`` with
    ``scope`` ("target" where ``evaluated == concept``, else "other"), ``median, q25, q75, n`` of
    the accuracy over the method's sets (one set except for ``random``), the unedited
    ``baseline`` accuracy, ``alpha`` and the selected ``heads``. With ``normalize`` accuracies
    are divided by the baseline (the paper's normalised accuracy). One (concept, evaluated) slice
    is what :func:`~clipinterp.viz.plot_pursuit_table` draws. Selections use the same images
    (pursuit needs no labels). The residual entering the earliest edited layer is cached once;
    edits run in order of their earliest edited layer, each from there on, the cache moving
    forward as they go (the same embeddings as :func:`edit_heads`).
    """
    if not concepts:
        raise ValueError("no concepts given")
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by={rank_by!r}: expected 'score' or 'explained'")
    targets = list(concepts) if targets is None else list(targets)
    unknown = [t for t in targets if t not in concepts]
    if unknown:
        raise ValueError(f"targets {unknown} are not among the concepts {list(concepts)}")
    if not targets:
        raise ValueError("targets is empty: name at least one concept to edit")
    pixels = batched_pixels(model, images, batch_size)
    classifiers = {name: _classifier(model, prompts) for name, (_, prompts) in concepts.items()}
    labels = {name: _labels(lab, len(pixels), len(classifiers[name]), name) for name, (lab, _) in concepts.items()}
    outputs = decompose(model, pixels, convention="centered", batch_size=batch_size, progress=False)
    shape = (model.cfg.n_layers, model.cfg.n_heads)
    plans = {name: _head_sets(head_pursuit(outputs, concept=emb, n_atoms=n_atoms), ks, n_random, shape, seed, i,
                              rank_by) for i, (name, emb) in enumerate(classifiers.items()) if name in targets}
    runs = [(target, k, method, heads) for target, plan in plans.items() for k, method, heads in plan]
    first = [min(layer for layer, _ in heads) for *_, heads in runs]
    runner = LateRunner(model, pixels.split(batch_size), min(first), batch_size)
    means = None if reference is None else mean_z(model, reference, list(range(min(first), shape[0])), batch_size)
    unedited = runner.embed()
    baseline = {name: accuracy_from_embeddings(unedited, classifiers[name], labels[name]) for name in concepts}
    rows: dict[int, list[dict[str, Any]]] = {}
    order = sorted(range(len(runs)), key=first.__getitem__)  # by earliest edited layer: the cache only advances
    for i in tqdm(order, desc="edited passes", unit="set", disable=not progress):
        target, k, method, heads = runs[i]
        runner.advance(first[i])
        embedded = runner.embed([scale(alpha, list(heads), reference=means)])
        rows[i] = []
        for name in concepts:
            accuracy = accuracy_from_embeddings(embedded, classifiers[name], labels[name])
            rows[i].append({"concept": target, "evaluated": name, "scope": "target" if name == target else "other",
                            "k": k, "method": method, "alpha": alpha, "centered": reference is not None,
                            "baseline": baseline[name],
                            "heads": ",".join(map(head_name, heads)),
                            "accuracy": _normalised(accuracy, baseline[name]) if normalize else accuracy})
    return _summarise(pd.DataFrame([row for i in range(len(runs)) for row in rows[i]]))
