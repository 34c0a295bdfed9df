"""Naming heads: ``(layer, head)`` pairs or ``"L10.H3"`` strings, everywhere in the package."""
from __future__ import annotations

import numbers
import re
from typing import Iterable, Union

HeadLike = Union[tuple[int, int], str]
_HEAD_RE = re.compile(r"^\s*L(\d+)\s*[.,:]?\s*H(\d+)\s*$", re.IGNORECASE)


def head_name(head: HeadLike) -> str:
    """``(10, 3)`` or ``"L10.H3"`` -> ``"L10.H3"``."""
    layer, h = parse_head(head)
    return f"L{layer}.H{h}"


def parse_head(head: HeadLike, n_layers: int | None = None, n_heads: int | None = None) -> tuple[int, int]:
    """One head as a ``(layer, head)`` pair, checked against the model's size when given."""
    if isinstance(head, str):
        match = _HEAD_RE.match(head)
        if match is None:
            raise ValueError(f"cannot read head {head!r}: write heads as 'L10.H3' or (10, 3)")
        layer, h = int(match.group(1)), int(match.group(2))
    else:
        try:
            layer, h = (int(v) for v in head)
        except (TypeError, ValueError):
            raise ValueError(f"cannot read head {head!r}: write heads as 'L10.H3' or (10, 3)") from None
    if n_layers is not None and not 0 <= layer < n_layers:
        raise ValueError(f"head {head!r}: layer {layer} out of range, the model has {n_layers} layers (0..{n_layers - 1})")
    if n_heads is not None and not 0 <= h < n_heads:
        raise ValueError(f"head {head!r}: head {h} out of range, the model has {n_heads} heads per layer (0..{n_heads - 1})")
    return layer, h


def parse_heads(heads: HeadLike | Iterable[HeadLike] | None, n_layers: int | None = None,
                n_heads: int | None = None) -> list[tuple[int, int]]:
    """Many heads (a single head, a list of heads, or None for none), sorted and de-duplicated."""
    return sorted(set(listed_heads(heads, n_layers, n_heads)))


def listed_heads(heads: HeadLike | Iterable[HeadLike] | None, n_layers: int | None = None,
                 n_heads: int | None = None) -> list[tuple[int, int]]:
    """Like :func:`parse_heads`, but in the order given, repeats kept. A pair of integers (NumPy's
    included) is one head."""
    if heads is None:
        return []
    single = isinstance(heads, str) or (isinstance(heads, tuple) and len(heads) == 2
                                        and all(isinstance(v, numbers.Integral) for v in heads))
    return [parse_head(h, n_layers, n_heads) for h in ([heads] if single else heads)]


def resolve_layers(layers: int | Iterable[int] | None, n_layers: int) -> list[int]:
    """Layers to use, sorted and de-duplicated: all of them for None; negative indices count from
    the end. Raises ``ValueError`` for an index out of range or an empty selection."""
    layers = range(n_layers) if layers is None else [layers] if isinstance(layers, int) else layers
    out = set()
    for layer in layers:
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"layer {layer} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
        out.add(layer % n_layers)
    if not out:
        raise ValueError("no layers given")
    return sorted(out)
