"""``clipinterp report``: every method of the toolkit on one model, as ``index.html`` + ``findings.json``.

Sections: the model; the decomposition's sum check; the layer mean-ablation sweep (direct
effects); TextSpan texts and CCS for every head; Head Pursuit rankings per concept; the AAT search
(heads found, recall before and after on held-out data); and, on the shapes organism, each
method's agreement with the ground truth recorded in ``data/shapes-clip/ground_truth.json``
(CCS labels also on the heads' total effects, :func:`~clipinterp.effects.total_effects`).

Data: the organism's test split (and its shifted split for AAT) by default; ``images`` (a folder)
with ``captions`` (one line per image, in sorted file-name order) for any other data. Concepts
(what zero-shot accuracy, the sweep and Head Pursuit are measured on) are the organism's
attributes, or :data:`GENERAL_CONCEPTS` elsewhere.
"""
from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from .decompose import decompose
from .effects import total_effects
from .evaluation import accuracy_from_embeddings
from .methods.aat import GeneticSearch, PairedData, evaluate_heads
from .methods.ccs import EmbeddingJudge, KeywordJudge, ccs_agreement, ccs_table
from .methods.pursuit import head_pursuit
from .model.loading import data_dir, load
from .organism.ground_truth import shifted_pairs
from .organism.scoring import rank_correlation, top_direct_heads
from .textbank import load_bank
from .viz.plots import plot_ablation_sweep, plot_head_heatmap

GENERAL_CONCEPTS: dict[str, list[str]] = {
    "colors": ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"],
    "shapes": ["circle", "square", "triangle", "star", "cross"],
    "textures": ["striped", "dotted", "checkered", "plain"],
    "counts": ["one object", "two objects", "three objects", "many objects"],
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class Split:
    """Images with optional captions and labelled concepts ``{name: (class prompts, labels [N])}``."""

    images: list[Any]
    captions: Optional[list[str]] = None
    concepts: dict[str, tuple[list[str], torch.Tensor]] = field(default_factory=dict)


def organism_split(split: str, n: int, seed: int) -> Split:
    """``n`` images of an organism split with their full captions and attribute labels."""
    from .organism.ground_truth import attribute_labels
    from .organism.world import ATTRIBUTES, caption, class_prompts, generate

    batch = generate(split, n, seed)
    concepts = {a: (class_prompts(a)[1], attribute_labels(batch.attributes, a)) for a in ATTRIBUTES}
    captions = [caption(a, frozenset(ATTRIBUTES)) for a in batch.attributes]
    return Split(list(batch.images), captions, concepts)


def folder_split(folder: Union[str, Path], captions: Optional[Union[str, Path]], n: Optional[int]) -> Split:
    """Images of a folder (sorted by file name) and, optionally, one caption per image."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    texts = None
    if captions is not None:
        texts = [line.strip() for line in Path(captions).read_text().splitlines() if line.strip()]
        if len(texts) != len(files):
            raise ValueError(f"{len(files)} images in {folder} but {len(texts)} captions in {captions}")
    keep = slice(0, n)
    return Split([Image.open(p).convert("RGB") for p in files[keep]], texts[keep] if texts else None)


def _figure_html(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _is_organism(model: Any) -> bool:
    return "shapes-clip" in str(getattr(model.cfg, "model_name", ""))


def _concept_accuracy(embeddings: torch.Tensor, split: Split, class_emb: dict[str, torch.Tensor]) -> dict[str, float]:
    return {c: accuracy_from_embeddings(embeddings, class_emb[c], lab) for c, (_, lab) in split.concepts.items()}


def _sum_check(model: Any, pixels: torch.Tensor) -> dict[str, float]:
    """Largest relative error of each convention's components against the model's embedding."""
    reference = model.encode_image(pixels, normalize=False)
    out = {}
    for convention in ("split", "centered"):
        total = decompose(model, pixels, convention=convention, progress=False).total()
        out[convention] = float(((total - reference).norm(dim=-1) / reference.norm(dim=-1)).max())
    return out


def _layer_sweep(model: Any, dec: Any, split: Split, class_emb: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Zero-shot accuracy per concept with each attention layer mean-ablated (direct effect)."""
    rows = []
    for layer in range(model.cfg.n_layers):
        emb = torch.nn.functional.normalize(dec.mean_ablate(layers=[layer]).total().float(), dim=-1)
        for concept, acc in _concept_accuracy(emb, split, class_emb).items():
            rows.append({"layer": layer, "concept": concept, "accuracy": acc})
    return pd.DataFrame(rows)


def _ccs(model: Any, source: Any, organism: bool) -> pd.DataFrame:
    """CCS of the heads described in ``source`` (a decomposition or total effects)."""
    if organism:
        bank, judge = load_bank("shapes"), KeywordJudge.for_shapes()
        layers = None
    else:
        bank = load_bank("general")
        judge = EmbeddingJudge(model.encode_text, sorted({w for ws in GENERAL_CONCEPTS.values() for w in ws}))
        layers = list(range(max(0, model.cfg.n_layers - 4), model.cfg.n_layers))
    return ccs_table(model, source, bank, judge, layers=layers)


def _aat(model: Any, search: PairedData, test: PairedData) -> tuple[dict[str, Any], pd.DataFrame]:
    """GA over the last four layers' heads on ``search``, scored on held-out ``test``."""
    layers = list(range(max(0, model.cfg.n_layers - 4), model.cfg.n_layers))
    ga = GeneticSearch(population=12, generations=5, layers=layers, metric="recall@1", progress=False)
    ga.fit(model, search)
    table = evaluate_heads(model, ga.result_, test, reference=search.images)
    found = {"heads": ga.result_.heads, "validation_baseline": ga.result_.baseline, "validation_score": ga.result_.score}
    return found, table


def _agreement(ccs: pd.DataFrame, total: pd.DataFrame, pursuit: dict[str, pd.DataFrame],
               aat_heads: list[str]) -> dict[str, Any]:
    """Each method against the organism's recorded ground truth: CCS labels of the specialised
    heads (on direct contributions, ``ccs``, and on total effects, ``total``) and of each learned
    attribute's largest direct-share head, the rank correlation of Head
    Pursuit scores with the heads' accuracy drops (total effect) and direct shares per attribute,
    and the spurious-cue heads among AAT's."""
    truth = json.loads((data_dir() / "shapes-clip" / "ground_truth.json").read_text())
    with_heads = {a: hs for a, hs in truth["specialised"].items() if hs}
    top_direct = top_direct_heads(truth)
    def spearman(table: dict[str, dict[str, float]]) -> dict[str, Optional[float]]:
        truth_table = pd.DataFrame(table).T
        return {a: rank_correlation(df.set_index("name")["score"], truth_table[a])
                for a, df in pursuit.items() if a in truth_table and truth_table[a].std() > 0}

    spurious = set(truth["spurious_heads"])
    return {
        "specialised": with_heads,
        "ccs_label_agreement": ccs_agreement(ccs, with_heads),
        "ccs_label_agreement_total_effect": ccs_agreement(total, with_heads),
        "top_direct_heads": top_direct,
        "ccs_label_agreement_top_direct": ccs_agreement(ccs, {a: [h] for a, h in top_direct.items()}),
        "pursuit_spearman_with_accuracy_drop": spearman(truth["accuracy_drop"]),
        "pursuit_spearman_with_direct_share": spearman(truth["direct_share"]),
        "pursuit_top_head": {a: df.iloc[0]["name"] for a, df in pursuit.items()},
        "spurious_heads": sorted(spurious),
        "aat_heads": aat_heads,
        "aat_found_spurious_heads": sorted(spurious & set(aat_heads)),
    }


def _html(title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<section><h2>{html.escape(t)}</h2>{content}</section>" for t, content in sections)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%}section{margin-bottom:2.5em}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def write_report(model: Any = "shapes-clip", out: Union[str, Path] = "report", *, images: Optional[str] = None,
                 captions: Optional[str] = None, n_images: Optional[int] = None, seed: int = 0) -> dict[str, Any]:
    """Run every method on ``model`` and write ``out/index.html`` and ``out/findings.json``.

    Both files are rewritten after each section, so an interrupted run keeps what it finished.
    Returns the findings (what ``findings.json`` holds)."""
    if n_images is not None and n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    start = time.time()
    model = load(model) if isinstance(model, str) else model
    organism = _is_organism(model) and images is None
    if images is not None:
        data = folder_split(images, captions, n_images)
        search = test = None
        if data.captions:
            half = len(data.images) // 2
            search = PairedData(data.images[:half], data.captions[:half])
            test = PairedData(data.images[half:], data.captions[half:])
    elif organism:
        n = n_images or 500
        data = organism_split("test", n, seed)
        # AAT searches shifted-split images of another seed and is scored on held-out shifted images
        search, test = shifted_pairs(n // 2, seed + 1), shifted_pairs(n, seed)
    else:
        raise ValueError("a model other than the organism needs --images (a folder) and, for AAT, --captions")
    pixels = model.preprocess(data.images)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=4 + (search is not None) + organism, desc="report", unit="section") as bar:

        def done() -> None:  # one more section: record it on disk
            findings["seconds"] = round(time.time() - start, 1)
            (out / "findings.json").write_text(json.dumps(findings, indent=1, default=float))
            (out / "index.html").write_text(_html(f"clipinterp report: {findings['model']['model_name']}", sections))
            bar.update()

        findings: dict[str, Any] = {"model": {k: getattr(model.cfg, k) for k in
                                              ("model_name", "n_layers", "n_heads", "d_model", "d_embed",
                                               "patch_size", "image_size", "act_fn")}}
        sections = [("Model", pd.DataFrame([findings["model"]]).to_html(index=False))]

        findings["sum_check_max_relative_error"] = _sum_check(model, pixels)
        sections.append(("Decomposition sum check", f"<p>largest relative error of the summed components "
                         f"against the image embedding: {findings['sum_check_max_relative_error']}</p>"))
        done()

        dec = decompose(model, pixels, progress=False)
        class_emb = {c: model.encode_text(prompts) for c, (prompts, _) in data.concepts.items()}
        if data.concepts:
            findings["zero_shot_accuracy"] = _concept_accuracy(model.encode_image(pixels), data, class_emb)
            sweep = _layer_sweep(model, dec, data, class_emb)
            findings["layer_mean_ablation"] = sweep.to_dict(orient="records")
            fig = plot_ablation_sweep(sweep, x="layer", y="accuracy", hue="concept",
                                      title="Zero-shot accuracy with one attention layer mean-ablated")
            sections.append(("Layer mean-ablation sweep (direct effect)", _figure_html(fig)))
        done()

        ccs = _ccs(model, decompose(model, pixels, normalize=True, progress=False), organism)
        findings["ccs"] = ccs[["layer", "head", "label", "ccs"]].to_dict(orient="records")
        labels = {(r.layer, r.head): f"{r.label or '-'} ({r.ccs})" for r in ccs.itertuples()}
        fig = plot_head_heatmap(ccs, labels=labels, value="ccs", title="CCS per head, with its TextSpan label")
        sections.append(("TextSpan labels and CCS", _figure_html(fig) + ccs.to_html(index=False, max_rows=60)))
        done()

        concepts = {c: prompts for c, (prompts, _) in data.concepts.items()} or GENERAL_CONCEPTS
        pursuit = {c: head_pursuit(model, pixels, words).sort_values("rank") for c, words in concepts.items()}
        findings["head_pursuit_top3"] = {c: df.head(3)["name"].tolist() for c, df in pursuit.items()}
        sections.append(("Head Pursuit: top heads per concept",
                         pd.DataFrame(findings["head_pursuit_top3"]).to_html(index=False)))
        done()

        if search is not None:
            found, table = _aat(model, search, test)
            findings["aat"] = {**found, "held_out": table.drop(columns=["heads"]).to_dict(orient="records")}
            heads_found = f"<p>heads found: {', '.join(found['heads']) or 'none'}</p>"
            sections.append(("AAT: heads whose suppression helps", heads_found + table.to_html(index=False)))
            done()
        if organism:
            total = _ccs(model, total_effects(model, pixels, progress=False), organism)
            aat_heads = findings.get("aat", {}).get("heads", [])
            findings["ground_truth_agreement"] = _agreement(ccs, total, pursuit, aat_heads)
            sections.append(("Agreement with the organism's ground truth",
                             f"<pre>{html.escape(json.dumps(findings['ground_truth_agreement'], indent=1))}</pre>"))
            done()
    return findings
