"""Ground truth for the shapes organism: what each vision head does, measured causally.

For every head ``(layer, head)`` and every attribute of the world:

* ``accuracy_drop``: zero-shot accuracy on the test split minus the accuracy when the head is
  mean-ablated in the forward pass (its ``hook_z`` replaced by its per-position mean over the
  validation split), so positive = the head helps;
* ``direct_share``: the head's share of the correct-class margin in the decomposition of the
  image embedding (the margin is the correct class's score minus the mean class score; shares
  of all components sum to 1);
* ``shifted_gain`` (per head): shape accuracy on the shifted split when the head is ablated
  minus the unablated accuracy; heads with a gain of at least :data:`SPURIOUS_GAIN` carry the
  spurious texture cue (ablating them helps where the cue lies).

A head is *specialised* for an attribute when ablating it costs that attribute at least
:data:`SPECIALISED_DROP` and every other attribute at most :data:`OTHER_DROP`.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import interventions
from ..decompose import decompose
from ..evaluation import accuracy_from_embeddings
from ..heads import head_name, parse_heads
from ..late import LateRunner
from .world import ATTRIBUTES, caption, class_prompts, generate

SPECIALISED_DROP = 0.10
OTHER_DROP = 0.03
SPURIOUS_GAIN = 0.02


def attribute_labels(attributes: list[dict[str, str]], attribute: str) -> torch.Tensor:
    """Index of each image's value of ``attribute`` among ``class_prompts(attribute)``: ``[N]``."""
    values, _ = class_prompts(attribute)
    return torch.tensor([values.index(a[attribute]) for a in attributes])


def attribute_class_embeddings(model: Any) -> dict[str, torch.Tensor]:
    """Unit text embeddings of each attribute's zero-shot prompts: ``{attr: [n_values, d]}``."""
    return {a: model.encode_text(class_prompts(a)[1]) for a in ATTRIBUTES}


def attribute_accuracies(image_emb: torch.Tensor, attributes: list[dict[str, str]],
                         class_emb: dict[str, torch.Tensor]) -> dict[str, float]:
    """Zero-shot accuracy per attribute for unit image embeddings ``[N, d]``."""
    return {a: accuracy_from_embeddings(image_emb, class_emb[a], attribute_labels(attributes, a))
            for a in ATTRIBUTES}


def shifted_pairs(n: int, seed: int) -> Any:
    """``n`` shifted-split images as :class:`~clipinterp.methods.aat.PairedData`: captions naming
    shape, color, size and count (not the texture, so the stripes cue can only hurt retrieval) and
    shape labels. The data the AAT searches of the model card and the tests use."""
    from ..methods.aat import PairedData

    batch = generate("shifted", n, seed)
    named = frozenset({"shape", "color", "size", "count"})
    return PairedData(list(batch.images), [caption(a, named) for a in batch.attributes],
                      attribute_labels(batch.attributes, "shape").tolist(), class_prompts("shape")[1],
                      templates=["{}"])


@dataclass
class GroundTruth:
    """Per-head causal effects. ``table``: one row per (head, attribute) with ``layer, head, name,
    attribute, accuracy_drop, direct_share``; ``shifted``: one row per head with ``shifted_gain``;
    ``baseline``: unablated test accuracies; ``shifted_baseline``: unablated shifted shape accuracy."""

    table: pd.DataFrame
    shifted: pd.DataFrame
    baseline: dict[str, float]
    shifted_baseline: float

    def drops(self) -> pd.DataFrame:
        """Accuracy drops as a head x attribute table (index: head name), rounded to 4 decimals as
        recorded, so that the thresholds see the recorded numbers, not float32 rounding."""
        drops = self.table.pivot(index="name", columns="attribute", values="accuracy_drop")[list(ATTRIBUTES)]
        return drops.astype("float64").round(4)

    def specialised(self) -> dict[str, list[str]]:
        """``{attribute: [head names]}`` of the specialised heads (see the module docstring)."""
        drops = self.drops()
        out: dict[str, list[str]] = {a: [] for a in ATTRIBUTES}
        for name, row in drops.iterrows():
            for a in ATTRIBUTES:
                if row[a] >= SPECIALISED_DROP and (row.drop(a) <= OTHER_DROP).all():
                    out[a].append(name)
        return out

    def spurious_heads(self) -> list[str]:
        """Heads whose ablation raises shifted-split shape accuracy by at least ``SPURIOUS_GAIN``."""
        rows = self.shifted[self.shifted.shifted_gain.astype("float64").round(4) >= SPURIOUS_GAIN]
        return rows.sort_values("shifted_gain", ascending=False).name.tolist()

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON summary: baseline, per-head drops and shares, specialised and spurious heads."""
        shares = self.table.pivot(index="name", columns="attribute", values="direct_share")
        return {
            "baseline": self.baseline,
            "accuracy_drop": {h: {a: round(float(v), 4) for a, v in row.items()} for h, row in self.drops().iterrows()},
            "direct_share": {h: {a: round(float(v), 4) for a, v in row.items()} for h, row in shares.iterrows()},
            "specialised": self.specialised(),
            "shifted_shape_baseline": self.shifted_baseline,
            "shifted_gain": {r.name: round(float(r.shifted_gain), 4) for r in self.shifted.itertuples()},
            "spurious_heads": self.spurious_heads(),
            "thresholds": {"specialised_drop": SPECIALISED_DROP, "other_drop": OTHER_DROP,
                           "spurious_gain": SPURIOUS_GAIN},
        }


def _direct_shares(model: Any, pixels: torch.Tensor, attributes: list[dict[str, str]],
                   class_emb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each head's share of the correct-class margin: ``{attr: [L, H]}``."""
    dec = decompose(model, pixels, progress=False)
    shares = {}
    for attr in ATTRIBUTES:
        labels = attribute_labels(attributes, attr)
        proj = dec.project(class_emb[attr])
        idx = labels.view(-1, 1, 1, 1).expand(-1, proj.heads.shape[1], proj.heads.shape[2], 1)
        head_margin = proj.heads.gather(-1, idx)[..., 0] - proj.heads.mean(-1)
        total = proj.total()
        total_margin = total.gather(-1, labels.view(-1, 1))[:, 0] - total.mean(-1)
        shares[attr] = head_margin.mean(0) / total_margin.mean()
    return shares


@torch.no_grad()
def ground_truth(model: Any = "shapes-clip", n: int = 1000, seed: int = 0, heads: Optional[Any] = None,
                 progress: bool = True) -> GroundTruth:
    """Mean-ablate every vision head (or only ``heads``) and measure the effects (see the module
    docstring). ``model``: a HookedCLIP or a name/path for :func:`clipinterp.load`; ``n`` images
    per split.
    """
    if isinstance(model, str):
        from ..model.loading import load
        model = load(model)
    class_emb = attribute_class_embeddings(model)
    reference = model.preprocess(list(generate("val", n, seed).images))
    test, shifted = generate("test", n, seed), generate("shifted", n, seed)
    test_pixels = model.preprocess(list(test.images))
    shifted_pixels = model.preprocess(list(shifted.images))
    shape_labels = attribute_labels(shifted.attributes, "shape")
    baseline = attribute_accuracies(model.encode_image(test_pixels), test.attributes, class_emb)
    shifted_base = accuracy_from_embeddings(model.encode_image(shifted_pixels), class_emb["shape"], shape_labels)
    means = interventions.mean_z(model, reference, range(model.cfg.n_layers))
    shares = _direct_shares(model, test_pixels, test.attributes, class_emb)
    rows, shifted_rows = [], []
    if heads is None:
        heads = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    heads = parse_heads(heads, model.cfg.n_layers, model.cfg.n_heads)
    # each ablation re-runs only the blocks from its own layer on (heads are sorted: the caches only advance)
    start = min(layer for layer, _ in heads)
    test_run = LateRunner(model, test_pixels.split(64), start)
    shifted_run = LateRunner(model, shifted_pixels.split(64), start)
    for layer, head in tqdm(heads, desc="ablating heads", disable=not progress):
        test_run.advance(layer)
        shifted_run.advance(layer)
        ablation = [interventions.mean((layer, head), reference=means)]
        acc = attribute_accuracies(test_run.embed(ablation), test.attributes, class_emb)
        name = head_name((layer, head))
        for attr in ATTRIBUTES:
            rows.append({"layer": layer, "head": head, "name": name, "attribute": attr,
                         "accuracy_drop": baseline[attr] - acc[attr],
                         "direct_share": float(shares[attr][layer, head])})
        shape_acc = accuracy_from_embeddings(shifted_run.embed(ablation), class_emb["shape"], shape_labels)
        shifted_rows.append({"layer": layer, "head": head, "name": name, "shifted_gain": shape_acc - shifted_base})
    return GroundTruth(pd.DataFrame(rows), pd.DataFrame(shifted_rows), baseline, shifted_base)


def add_ground_truth_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipinterp organism ground-truth``."""
    parser.add_argument("--model", default="shapes-clip", help="model name or saved directory")
    parser.add_argument("--n", type=int, default=1000, help="images per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--out", default=None, help="also write the full JSON here")


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`ground_truth` from parsed arguments; print JSON (all of it with ``--json``)."""
    result = ground_truth(args.model, n=args.n, seed=args.seed).to_json()
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    brief = {k: result[k] for k in ("baseline", "specialised", "spurious_heads")}
    print(text if args.json else json.dumps(brief, indent=1))
    return result
