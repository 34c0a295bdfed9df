"""The organism's model card, ``data/shapes-clip/README.md``, written from the JSON records beside
the weights: ``train_log.json`` (the training run), ``evaluation.json`` (``organism evaluate
--out``), ``ground_truth.json`` (``organism ground-truth --out``) and, when present,
``methods.json`` (each method's agreement with the ground truth), and ``notes.md`` (known
shortcomings, written by hand)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..methods.pursuit import RANKINGS
from . import world

ATTRS = world.ATTRIBUTES


def _read(folder: Path, name: str) -> Any:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def _accuracy_table(evaluation: dict[str, Any]) -> str:
    results = evaluation["results"]
    lines = ["| split | " + " | ".join(ATTRS) + " | i2t@1 | i2t@5 | t2i@1 | t2i@5 |",
             "|---" * (len(ATTRS) + 5) + "|"]
    for split in ("test", "shifted"):
        acc, rec = results[split]["attribute_accuracy"], results[split]["recall"]
        cells = [f"{acc[a]:.3f}" for a in ATTRS] + [f"{rec[k]:.3f}" for k in ("i2t@1", "i2t@5", "t2i@1", "t2i@5")]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
        if "unseen" in results[split]:  # `organism evaluate --unseen`: retrieval is not re-scored
            unseen = results[split]["unseen"]
            acc = unseen["attribute_accuracy"]  # empty when every image is a training scene
            cells = [f"{acc[a]:.3f}" if a in acc else "-" for a in ATTRS] + ["-"] * 4
            lines.append(f"| {split}, scenes not trained on ({unseen['n']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _unseen_sentence(unseen: dict[str, Any] | None) -> str:
    if unseen is None:
        return ""
    return (f". The rows \"scenes not trained on\" (`--unseen`) keep the images whose scene (attribute values "
            f"and jitter) no training stage drew, replayed from the training logs: training drew "
            f"{unseen['training_samples']:,} samples, {unseen['training_scenes']:,} distinct scenes of the "
            f"world's {world.scene_count():,}")


def _drop_table(truth: dict[str, Any]) -> str:
    lines = ["| head | " + " | ".join(ATTRS) + " | shifted shape gain |", "|---" * (len(ATTRS) + 2) + "|"]
    for head, drops in truth["accuracy_drop"].items():
        cells = [f"{drops[a]:+.3f}" for a in ATTRS] + [f"{truth['shifted_gain'][head]:+.3f}"]
        lines.append(f"| {head} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run(train: dict[str, Any]) -> str:
    """One ``clipinterp organism train`` run, from its ``train_log.json``."""
    args = train["args"]
    if args.get("plants"):
        flags = " ".join(f"--plant {p}" for p in args["plants"])
        how = args["planting"]
        return (f"a planting stage (`{flags}`; `clipinterp.organism.plant`): {args['steps']} steps of batch "
                f"{args['batch_size']} (seed {args['seed']}) that train only the text tower (AdamW lr {args['lr']}) "
                f"and the planted heads' query, key, value and output slices ({how['head_lr_scale']:g}x that lr), "
                "no weight decay, with the rest of the vision tower frozen. The loss adds to the contrastive loss "
                f"hinges (weight {how['weight']:g}) that keep each planted attribute right by a cosine margin of "
                f"{how['keep_margin']:g} and make it wrong by {how['margin']:g} with its head mean-ablated over "
                "the batch, a KL term that keeps the other attributes' zero-shot predictions unchanged by that "
                "ablation, and hinges that keep the other attributes (but the background texture) right by the "
                "same margin: the class prompts are trained on, so from this stage on zero-shot accuracy is that "
                f"of a text readout tuned on the training split. {train['seconds']:.0f} s on {train['device']}.")
    return (f"{args['steps']} steps of batch {args['batch_size']} (seed {args['seed']}), AdamW lr {args['lr']} "
            f"(5% warm-up, cosine), weight decay {args['weight_decay']}, "
            f"{'multi-positive' if args.get('soft_targets') else 'one-positive'} symmetric InfoNCE (every caption "
            "in the batch that is true of an image counts as its positive), contrast groups of "
            f"{args.get('group_size', 1)}. " + _curriculum(args)
            + f"{train['seconds']:.0f} s on {train['device']}.")


def _training(folder: Path, train: dict[str, Any]) -> str:
    """The training paragraph: one run, or several stages when the last one started ``--init-from``
    a model whose logs were kept as ``train_log_stage<k>.json``."""
    arch = f"Architecture: `{json.dumps(train['args']['config'])}`."
    earlier: list[dict[str, Any]] = []
    if train["args"].get("init_from"):
        while log := _read(folder, f"train_log_stage{len(earlier) + 1}.json"):
            earlier.append(log)
    if not earlier:
        return f"`clipinterp organism train`: {_run(train)} {arch}"
    runs = []
    for k, log in enumerate(earlier + [train], start=1):
        origin = "" if k == 1 else f", from stage {k - 1}'s model (`--init-from`)"
        runs.append(f"Stage {k}{origin}: {_run(log)}")
    return f"{len(runs)} runs of `clipinterp organism train`. " + " ".join(runs) + f" {arch}"


def _curriculum(args: dict[str, Any]) -> str:
    """The training paragraph's sentence on the position curriculum (empty without one)."""
    steps = args.get("curriculum_steps", 0)
    if not steps:
        return ""
    return f"Position curriculum: the captions of the first {steps} steps name only the position (`--curriculum-steps {steps}`). "


def _agreement(record: dict[str, Any]) -> str:
    """"0.40 (0.24 by chance ...)" from a CCS record of ``methods.json``."""
    agreement = record["label_agreement_with_specialised_heads"]
    if agreement is None:
        return "n/a"
    return (f"{agreement:.2f} ({record['label_agreement_by_chance']:.2f} expected by chance, the same labels "
            "shuffled among the heads)")


def _label_table(heads: dict[str, dict[str, Any]]) -> str:
    """The specialised heads' CCS labels and texts as a markdown table."""
    rows = ["| specialised head | ground truth | CCS label | CCS | top TextSpan texts |", "|---|---|---|---|---|"]
    rows += [f"| {h} | {r['ground_truth']} | {r['ccs_label']} | {r['ccs']} | {'; '.join(r['texts'])} |"
             for h, r in heads.items()]
    return "\n".join(rows)


def _methods_section(methods: dict[str, Any]) -> str:
    """Tables of ``methods.json`` (written by ``clipinterp organism score-methods``)."""
    ccs, pursuit, aat = methods["ccs"], methods["head_pursuit"], methods["aat"]
    total = ccs["total_effect"]
    tiers = ["original", "high CCS", "low CCS", "random"]
    pruning = ["| attribute | " + " | ".join(tiers) + " |", "|---" * 5 + "|"]
    pruning += [f"| {a} | " + " | ".join(f"{acc[t]:.3f}" for t in tiers) + " |"
                for a, acc in {**ccs["pruning_accuracy"], "mean": ccs["pruning_mean_over_attributes"]}.items()]
    edits = ["| edit | attribute | unedited | pursuit | random (median) | logit lens | others (pursuit) |",
             "|---" * 7 + "|"]
    edits += [f"| {key.replace('_', ' ')} | {a} | " + " | ".join(f"{v:.3f}" for v in (r["baseline"], *r["target"]))
              + f" | {r['others']:+.3f} |"
              for key, rows in pursuit.items() if key.startswith(("suppress", "enhance")) for a, r in rows.items()]
    found = ["| search | heads | spurious-cue heads found | held-out mean recall (original / AAT / random) | "
             "held-out shape accuracy (original / AAT / random) |", "|---" * 5 + "|"]
    found += [f"| {name.upper()} | {', '.join(r['heads'])} | {', '.join(r['spurious_cue_heads_found']) or 'none'} | "
              + " / ".join(f"{v:.3f}" for v in r["held_out_mean_recall"].values()) + " | "
              + " / ".join(f"{v:.3f}" for v in r["held_out_shape_accuracy"].values()) + " |"
              for name, r in aat.items() if name != "how"]
    direct = ", ".join(f"{a} {r['head']} ({r['ccs_label']})" for a, r in ccs["top_direct_heads"].items())
    return "\n\n".join([
        "## The methods against the ground truth\n\n`clipinterp organism score-methods` (`methods.json`).",
        f"### CCS\n\n{ccs['how']}. Label agreement with the specialised heads: {_agreement(ccs)}; with "
        f"each learned attribute's largest direct-share head (attribute, head, CCS label: {direct}): "
        f"{ccs['label_agreement_with_top_direct_heads']:.2f}. CCS histogram (CCS: heads) {ccs['ccs_histogram']}.",
        _label_table(ccs["specialised_heads"]),
        f"On total effects: {total['how']}. Label agreement with the specialised heads: {_agreement(total)}.",
        _label_table(total["specialised_heads"]),
        "Zero-shot accuracy after pruning each tier:", "\n".join(pruning),
        f"### Head Pursuit\n\n{pursuit['how']}.", "\n".join(edits),
        " ".join(f"Rank correlation of `{by}` with the direct share: "
                 + ", ".join(f"{a} {v}" for a, v in pursuit[f"spearman_of_{by}_with_direct_share"].items())
                 + "; with the accuracy drop: "
                 + ", ".join(f"{a} {v}" for a, v in pursuit[f"spearman_of_{by}_with_accuracy_drop"].items()) + "."
                 for by in RANKINGS),
        f"### AAT\n\n{aat['how']}.", "\n".join(found),
    ])


def model_card(folder: Path) -> str:
    """The card's markdown for the model saved in ``folder``."""
    train, evaluation = _read(folder, "train_log.json"), _read(folder, "evaluation.json")
    truth, methods = _read(folder, "ground_truth.json"), _read(folder, "methods.json")
    size_mb = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20
    specialised = {a: hs for a, hs in truth["specialised"].items() if hs}
    parts = [
        "# shapes-clip: clipinterp's model organism",
        "A transformers `CLIPModel` trained from scratch on the procedural shapes world of "
        "`clipinterp.organism.world`, so that every head-level method can be checked against ground truth. "
        "Load it with `clipinterp.load(\"shapes-clip\")`.",
        "## The world\n\n" + (world.__doc__ or "").split("\n", 1)[1].strip(),
        "## Training\n\n" + _training(folder, train) + f" Files: {size_mb:.1f} MB.",
        "## Measured quality\n\n"
        f"`clipinterp organism evaluate --n {evaluation['n']} --seed {evaluation['seed']}"
        + (" --unseen" if "unseen" in evaluation["results"]["test"] else "") + "`: zero-shot accuracy "
        "per attribute (class prompts name only that attribute, argmax cosine) and retrieval recall of "
        "full captions among the split's images (a hit is any item with the same attributes)"
        + _unseen_sentence(evaluation["results"]["test"].get("unseen")) + ".\n\n"
        + _accuracy_table(evaluation),
        "## Ground truth\n\n"
        f"`clipinterp organism ground-truth --n {evaluation['n']}`: the drop in each attribute's test "
        "zero-shot accuracy when one head is mean-ablated in the forward pass (means over the "
        "validation split), and the change of shifted-split shape accuracy (positive: the head "
        "carries the spurious stripes cue).\n\n" + _drop_table(truth) + "\n\n"
        f"Specialised heads (>= {truth['thresholds']['specialised_drop']:.2f} drop on one attribute, "
        f"<= {truth['thresholds']['other_drop']:.2f} on every other): "
        + (", ".join(f"{a}: {', '.join(hs)}" for a, hs in specialised.items()) or "none") + ". "
        f"Spurious-cue heads (shifted shape gain >= {truth['thresholds']['spurious_gain']:.2f}): "
        + (", ".join(truth["spurious_heads"]) or "none") + ".",
    ]
    notes = folder / "notes.md"
    if notes.exists():
        parts.append(notes.read_text().strip())
    if methods:
        parts.append(_methods_section(methods))
    return "\n\n".join(parts) + "\n"


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipinterp organism card``."""
    parser.add_argument("--model", default="data/shapes-clip", help="saved model directory")


def run_from_args(args: argparse.Namespace) -> str:
    """Write ``README.md`` into the model directory."""
    folder = Path(args.model)
    text = model_card(folder)
    (folder / "README.md").write_text(text)
    print(f"wrote {folder / 'README.md'}")
    return text
