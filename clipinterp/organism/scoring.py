"""Each head-level method of the toolkit scored against the organism's ground truth.

``clipinterp organism score-methods --out data/shapes-clip/methods.json`` runs the three
comparisons the model card reports, with the settings the tests use:

* **CCS** (:func:`score_ccs`): TextSpan + :class:`~clipinterp.methods.ccs.KeywordJudge` on every
  head; the labels and top texts of the specialised heads, the fraction labelled with their
  ground-truth attribute (and the same for each attribute's largest direct-share head, the
  effect TextSpan describes), the CCS histogram, and soft pruning of the ``n_heads`` highest-CCS,
  lowest-CCS and random heads (per learned attribute, mean over seeds); and the labels of the
  specialised heads with TextSpan on total effects instead (the effect the ground truth measures).
* **Head Pursuit** (:func:`score_pursuit`): the editing table (suppress, alpha = -1, and
  enhance, alpha = 5, on test images; enhance, alpha = 1.5, on faded test images, where colour
  has headroom) per learned attribute, and the rank correlation of the pursuit scores with
  the ground truth's direct shares and accuracy drops.
* **AAT** (:func:`score_aat`): genetic and gradient searches on shifted pairs, whether they find
  the spurious-cue heads, and the held-out effect.

"Learned" attributes are those whose unablated test accuracy is at least ``LEARNED`` (zero-shot
accuracy near chance cannot drop).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from ..decompose import decompose
from ..heads import head_name
from ..methods.aat import GeneticSearch, GradientSearch, evaluate_heads
from ..methods.ccs import KeywordJudge, ccs_agreement, ccs_pruning, ccs_table
from ..methods.pursuit import RANKINGS, editing_table, head_pursuit
from ..textbank import load_bank
from .ground_truth import attribute_labels, shifted_pairs
from .world import ATTRIBUTES, class_prompts, faded, generate

LEARNED = 0.9


def learned_attributes(truth: dict[str, Any]) -> list[str]:
    """Attributes whose recorded baseline test accuracy is at least :data:`LEARNED`."""
    return [a for a in ATTRIBUTES if truth["baseline"][a] >= LEARNED]


def top_direct_heads(truth: dict[str, Any]) -> dict[str, str]:
    """Each learned attribute's head with the largest direct share (the effect TextSpan reads)."""
    shares = pd.DataFrame(truth["direct_share"]).T
    return {a: str(shares[a].idxmax()) for a in learned_attributes(truth)}


def attribute_concepts(attributes: Sequence[str], batch: Any) -> dict[str, tuple[list[int], list[str]]]:
    """``{attribute: (labels of the batch's images, class prompts)}``, the concepts of
    :func:`~clipinterp.methods.pursuit.editing_table`."""
    return {attr: (attribute_labels(batch.attributes, attr).tolist(), class_prompts(attr)[1]) for attr in attributes}


def rank_correlation(a: pd.Series, b: pd.Series) -> Optional[float]:
    """Rank correlation of two series aligned on their index (Pearson on ranks; no scipy); None
    where one is constant."""
    a, b = a.align(b, join="inner")
    rho = float(a.rank().corr(b.rank()))
    return None if math.isnan(rho) else round(rho, 3)


def chance_agreement(scores: pd.DataFrame, specialised: dict[str, Sequence[str]]) -> float:
    """The label agreement expected if the same labels were shuffled among the scored heads: the
    mean, over the specialised heads, of the fraction of heads labelled with their attribute."""
    share = scores["label"].value_counts(normalize=True, dropna=False)  # unlabelled heads count too
    attributes = [a for a, heads in specialised.items() for _ in heads]
    return round(sum(float(share.get(a, 0.0)) for a in attributes) / len(attributes), 3)


def _by_head(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` indexed by head name ("L1.H3")."""
    names = [head_name((layer, head)) for layer, head in zip(scores["layer"], scores["head"])]
    return scores.set_index(pd.Index(names))


def _labelled_heads(scores: pd.DataFrame, truth: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{head: {"ground_truth", "ccs_label", "ccs", "texts"}}`` for the heads of ``truth`` (head -> attribute)."""
    by_head = _by_head(scores)
    return {h: {"ground_truth": a, "ccs_label": by_head.loc[h, "label"], "ccs": int(by_head.loc[h, "ccs"]),
                "texts": list(by_head.loc[h, "texts"])} for h, a in truth.items()}


def score_ccs(model: Any, truth: dict[str, Any], n: int = 300, n_heads: int = 4, seeds: int = 5) -> dict[str, Any]:
    """CCS on every head (TextSpan on ``n`` validation images, the shapes bank, the keyword
    judge) against the recorded specialised heads, and pruning by CCS tier on ``n`` test images.
    TextSpan describes the heads' direct contributions (the paper) and, as a second record, their
    total effects (:func:`~clipinterp.effects.total_effects`), which the ground truth measures."""
    val, bank, judge = generate("val", n, 0).images, load_bank("shapes").embed(model), KeywordJudge.for_shapes()
    scores = ccs_table(model, val, bank, judge, layers=None)
    total = ccs_table(model, val, bank, judge, layers=None, effect="total")
    specialised = {a: hs for a, hs in truth["specialised"].items() if hs}
    attribute_of = {h: a for a, hs in specialised.items() for h in hs}
    top_direct = top_direct_heads(truth)
    test = generate("test", n, 0)
    attributes = learned_attributes(truth)
    frame = ccs_pruning(model, scores, test.images,
                        {a: attribute_labels(test.attributes, a).tolist() for a in attributes},
                        {a: class_prompts(a)[1] for a in attributes}, n_heads=n_heads, seeds=seeds, templates=("{}",))
    means = frame.groupby(["task", "tier"])["accuracy"].mean()
    pruning = {a: {tier: round(float(acc), 3) for tier, acc in means[a].items()} for a in attributes}
    tiers = pd.DataFrame(pruning).T
    label_of = _by_head(scores)["label"]
    return {
        "how": f"ccs_table on {n} validation images, every layer, the shapes bank, KeywordJudge.for_shapes(), "
               f"top-5 TextSpan texts per head; ccs_pruning of {n_heads} heads per tier, {seeds} seeds, "
               f"{n} test images, zero-shot accuracy per learned attribute (mean over seeds)",
        "specialised_heads": _labelled_heads(scores, attribute_of),
        "label_agreement_with_specialised_heads": ccs_agreement(scores, specialised) if specialised else None,
        "label_agreement_by_chance": chance_agreement(scores, specialised) if specialised else None,
        # TextSpan reads direct effects: the apples-to-apples truth is each attribute's top direct-share head
        "top_direct_heads": {a: {"head": h, "ccs_label": label_of[h]} for a, h in top_direct.items()},
        "label_agreement_with_top_direct_heads": ccs_agreement(scores, {a: [h] for a, h in top_direct.items()}),
        "labels": scores["label"].value_counts().to_dict(),
        "ccs_histogram": {int(k): int(v) for k, v in scores["ccs"].value_counts().sort_index().items()},
        "total_effect": {
            "how": "ccs_table(..., effect='total'): as above, with TextSpan on each head's total effect instead of "
                   "its direct contribution, the change of the unit image embedding when the head is mean-ablated "
                   "(means over the same images)",
            "specialised_heads": _labelled_heads(total, attribute_of),
            "label_agreement_with_specialised_heads": ccs_agreement(total, specialised) if specialised else None,
            "label_agreement_by_chance": chance_agreement(total, specialised) if specialised else None,
            "labels": total["label"].value_counts().to_dict(),
        },
        "pruning_accuracy": pruning,
        "pruning_mean_over_attributes": {t: round(float(v), 3) for t, v in tiers.mean().items()},
    }


FADE, FADED_ALPHA = 0.8, 1.5


def _edit_records(model: Any, images: Any, concepts: dict[str, Any], ks: Sequence[int], alpha: float,
                  n_random: int, rank_by: str) -> dict[int, dict[str, Any]]:
    """``{k: {attribute: {"baseline": unedited, "target": [pursuit, random median, logit lens],
    "others": mean change}}}`` of one :func:`editing_table` run; "others" is the mean accuracy
    change of the other concepts under the pursuit edit."""
    table = editing_table(model, images, concepts, ks=ks, alpha=alpha, n_random=n_random, seed=0, rank_by=rank_by)
    median = table.set_index(["concept", "evaluated", "k", "method"])["median"]
    base = table.drop_duplicates("evaluated").set_index("evaluated")["baseline"]
    names = list(concepts)
    return {k: {a: {"baseline": round(float(base[a]), 3),
                    "target": [round(float(median[a, a, k, m]), 3) for m in ("pursuit", "random", "logit_lens")],
                    "others": round(float(sum(median[a, o, k, "pursuit"] - base[o] for o in names if o != a)
                                          / max(1, len(names) - 1)), 3)}
                for a in names}
            for k in ks}


def score_pursuit(model: Any, truth: dict[str, Any], n: int = 300, ks: Sequence[int] = (1, 2, 4),
                  n_random: int = 10) -> dict[str, Any]:
    """Head Pursuit's editing table on ``n`` test images (seed 1), with heads ranked by the
    paper's score and by ``explained`` (see :func:`~clipinterp.methods.pursuit.head_pursuit`):
    suppression and enhancement, and enhancement where colour has headroom (the same images
    :func:`~clipinterp.organism.world.faded` by :data:`FADE`); both rankings' rank correlation
    with the ground truth."""
    batch = generate("test", n, 1)
    attributes = learned_attributes(truth)
    concepts = attribute_concepts(attributes, batch)
    out: dict[str, Any] = {"how": f"editing_table on {n} test images (seed 1), {n_random} random control "
                                  "sets with the same per-layer counts; target accuracy after editing as "
                                  "[pursuit, random median, logit lens]; others: mean change of the other "
                                  "learned attributes under the pursuit edit; heads ranked by the paper's "
                                  "score (fraction of the head's variance) or by explained (that variance "
                                  f"in embedding units); enhance faded: alpha {FADED_ALPHA} on the same images "
                                  f"with their colours faded {FADE:.0%} of the way to grey, where colour has "
                                  "headroom, accuracies and changes measured on the faded images"}
    edits = {"suppress": (batch.images, -1.0), "enhance": (batch.images, 5.0),
             "enhance_faded": (faded(batch.images, FADE), FADED_ALPHA)}
    for rank_by in RANKINGS:
        for edit, (images, alpha) in edits.items():
            for k, rows in _edit_records(model, images, concepts, ks, alpha, n_random, rank_by).items():
                out[f"{edit}_{rank_by}_k{k}"] = rows
    outputs = decompose(model, model.preprocess(list(batch.images)), convention="centered", progress=False)
    drops, shares = pd.DataFrame(truth["accuracy_drop"]).T, pd.DataFrame(truth["direct_share"]).T
    tables = {attr: head_pursuit(outputs, concept=class_prompts(attr)[1], model=model).set_index("name")
              for attr in ATTRIBUTES}
    for rank_by in RANKINGS:
        out[f"spearman_of_{rank_by}_with_direct_share"] = {
            attr: rank_correlation(t[rank_by], shares[attr]) for attr, t in tables.items()}
        out[f"spearman_of_{rank_by}_with_accuracy_drop"] = {
            attr: rank_correlation(tables[attr][rank_by], drops[attr]) for attr in attributes}
    return out


def score_aat(model: Any, truth: dict[str, Any], n_search: int = 200, n_eval: int = 400,
              layers: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """GA (population 12, 5 generations) and BP (100 steps) on ``n_search`` shifted validation
    pairs over ``layers`` (default: the second half and one more), scored on ``n_eval`` held-out pairs."""
    n_layers = model.cfg.n_layers
    layers = list(layers) if layers is not None else list(range(max(0, n_layers // 2 - 1), n_layers))
    val, test = shifted_pairs(n_search, seed=1), shifted_pairs(n_eval, seed=0)
    searches = {"ga": GeneticSearch(population=12, generations=5, layers=layers, progress=False),
                "bp": GradientSearch(steps=100, layers=layers, progress=False)}
    out: dict[str, Any] = {"how": f"GeneticSearch (population 12, 5 generations) and GradientSearch (100 steps) "
                                  f"over layers {layers} on {n_search} shifted validation pairs (captions naming "
                                  f"shape, color, size, count), evaluate_heads on {n_eval} held-out shifted pairs"}
    for name, search in searches.items():
        result = search.fit(model, val).result_
        table = evaluate_heads(model, result, test, reference=val.images).set_index("method")
        out[name] = {"heads": list(result.heads),
                     "spurious_cue_heads_found": [h for h in truth["spurious_heads"] if h in result.heads],
                     "held_out_mean_recall": {m: round(float(table.loc[m, "mean_recall"]), 3)
                                              for m in ("original", "aat", "random")},
                     "held_out_shape_accuracy": {m: round(float(table.loc[m, "accuracy"]), 3)
                                                 for m in ("original", "aat", "random")}}
    return out


def score_methods(model: Any = "shapes-clip", truth: Any = None) -> dict[str, Any]:
    """All three comparisons. ``model``: a HookedCLIP, ``"shapes-clip"`` or a saved directory;
    ``truth``: a ground-truth JSON dict or path (default: ``ground_truth.json`` beside the weights)."""
    from ..model.loading import load, local_path

    if isinstance(model, str):
        truth = local_path(model) / "ground_truth.json" if truth is None else truth
        model = load(model)
    if truth is None:
        raise ValueError("pass the ground truth (a dict or a path to ground_truth.json) with a loaded model")
    if not isinstance(truth, dict):
        truth = json.loads(Path(truth).read_text())
    return {"ccs": score_ccs(model, truth), "head_pursuit": score_pursuit(model, truth), "aat": score_aat(model, truth)}


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipinterp organism score-methods``."""
    parser.add_argument("--model", default="shapes-clip", help="model name or saved directory")
    parser.add_argument("--out", default=None, help="also write the JSON here (e.g. data/shapes-clip/methods.json)")


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`score_methods`; print and optionally write the JSON."""
    result = score_methods(args.model)
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return result
