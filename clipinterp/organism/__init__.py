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
    """Register ``organism train``, ``evaluate``, ``ground-truth``, ``score-methods`` and ``card`` on an argparse ``subparsers``.

    Each leaf parser sets ``func``: call ``args.func(args)`` after parsing.
    """
    from clipinterp.organism import card, evaluate, ground_truth, scoring, train

    parser = subparsers.add_parser("organism", help="the shapes model organism")
    sub = parser.add_subparsers(dest="organism_command", required=True)
    p_train = sub.add_parser("train", help="train the shapes CLIP and export it")
    train.add_train_arguments(p_train)
    p_train.set_defaults(func=train.run_from_args)
    p_eval = sub.add_parser("evaluate", help="zero-shot accuracy and retrieval recall")
    evaluate.add_evaluate_arguments(p_eval)
    p_eval.set_defaults(func=evaluate.run_from_args)
    p_truth = sub.add_parser("ground-truth", help="per-head mean-ablation effects on every attribute")
    ground_truth.add_ground_truth_arguments(p_truth)
    p_truth.set_defaults(func=ground_truth.run_from_args)
    p_score = sub.add_parser("score-methods", help="score CCS, Head Pursuit and AAT against the ground truth")
    scoring.add_scoring_arguments(p_score)
    p_score.set_defaults(func=scoring.run_from_args)
    p_card = sub.add_parser("card", help="write the model card (README.md) from the JSON records")
    card.add_card_arguments(p_card)
    p_card.set_defaults(func=card.run_from_args)
    return parser
