"""The ``clipinterp`` command: ``report``, ``models`` and ``organism train|evaluate|ground-truth|score-methods|card``."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence


def _report(args: argparse.Namespace) -> None:
    from .report import write_report

    findings = write_report(args.model, args.out, images=args.images, captions=args.captions,
                            n_images=args.n_images, seed=args.seed)
    print(json.dumps({"out": str(args.out), "seconds": findings["seconds"]}))


def _models(args: argparse.Namespace) -> None:
    from .model.registry import list_models

    print(list_models().to_string(index=False))


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``clipinterp`` command."""
    from .organism import add_organism_commands

    parser = argparse.ArgumentParser(prog="clipinterp", description="What do CLIP's attention heads do?")
    sub = parser.add_subparsers(dest="command", required=True)

    report = sub.add_parser("report", help="run every method on a model and write an HTML report")
    report.add_argument("--model", default="shapes-clip", help="model name, hub id or local path")
    report.add_argument("--out", default="report", help="output directory (index.html, findings.json)")
    report.add_argument("--images", default=None, help="folder of images (default: the organism's test split)")
    report.add_argument("--captions", default=None,
                        help="text file, one caption per image of --images in sorted file-name order")
    report.add_argument("--n-images", type=_positive, default=None, help="images to use (default: all / 500)")
    report.add_argument("--seed", type=int, default=0)
    report.set_defaults(func=_report)

    models = sub.add_parser("models", help="list the known checkpoints")
    models.set_defaults(func=_models)

    add_organism_commands(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the ``clipinterp`` console script."""
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
