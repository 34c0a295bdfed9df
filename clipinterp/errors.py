"""Errors that tell the user what went wrong and what to do."""
from __future__ import annotations

import difflib
from typing import Iterable


class UnknownNameError(KeyError, ValueError):
    """An unknown model, hook or head name; the message suggests the close ones."""

    def __str__(self) -> str:  # KeyError would show the message's repr
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an error for ``name`` that lists the closest of ``known``."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    message = f"unknown {kind} {name!r}."
    if close:
        message += " Did you mean: " + ", ".join(repr(c) for c in close) + "?"
    if hint:
        message += " " + hint
    return UnknownNameError(message)
