"""The shapes model organism: a synthetic world, its tokenizer, a small CLIP trained on it.

Submodules: :mod:`~clipinterp.organism.world` (images, attributes, captions, prompts),
:mod:`~clipinterp.organism.tokenizer` (CLIP-format BPE files), :mod:`~clipinterp.organism.train`
(contrastive training, export in transformers' format), :mod:`~clipinterp.organism.evaluate`
(zero-shot attribute accuracy, retrieval recall, head ablations) import nothing else of clipinterp,
so the trainer runs where only torch and transformers are installed;
:mod:`~clipinterp.organism.ground_truth` (per-head causal effects) and
:mod:`~clipinterp.organism.scoring` (the methods against the ground truth) use the toolkit.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_organism_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``organism train|evaluate|ground-truth|score-methods|card`` on an argparse
    ``subparsers``.

    Each leaf parser sets ``func``: call ``args.func(args)`` after parsing.
    """
    from clipinterp.organism import card, evaluate, ground_truth, scoring, train

    commands = [
        ("train", "train the shapes CLIP and export it", train, train.add_train_arguments),
        ("evaluate", "zero-shot accuracy and retrieval recall", evaluate, evaluate.add_evaluate_arguments),
        ("ground-truth", "per-head mean-ablation effects on every attribute", ground_truth,
         ground_truth.add_ground_truth_arguments),
        ("score-methods", "score CCS, Head Pursuit and AAT against the ground truth", scoring,
         scoring.add_scoring_arguments),
        ("card", "write the model card (README.md) from the JSON records", card, card.add_card_arguments),
    ]
    parser = subparsers.add_parser("organism", help="the shapes model organism")
    sub = parser.add_subparsers(dest="organism_command", required=True)
    for name, help_text, module, add_arguments in commands:
        leaf = sub.add_parser(name, help=help_text)
        add_arguments(leaf)
        leaf.set_defaults(func=module.run_from_args)
    return parser
