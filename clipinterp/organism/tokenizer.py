"""A CLIP-format BPE vocabulary for the shapes world, built from scratch.

CLIP's tokenizer maps each UTF-8 byte to a printable unicode character (``bytes_to_unicode``),
marks the last character of every word with ``</w>`` and merges adjacent symbol pairs by rank.
:func:`build_vocab` gives the 256 byte symbols, their ``</w>`` forms, every intermediate and
final symbol of the world's words (merged left to right, one merge per new symbol) and the two
special tokens, so every world word is a single token and any other text still tokenizes
(falling back to bytes). ``<|endoftext|>`` doubles as the padding token.
"""

from __future__ import annotations

import json
from pathlib import Path

from clipinterp.organism.world import vocabulary

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# Words beyond the world's captions that prompts commonly use.
EXTRA_WORDS = ("photo", "of", "an", "image", "picture", "with", "and", "in", "is", "this", "some")


def bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2 byte -> printable character table (256 entries)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def build_vocab(words: list[str] | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab token -> id, merges in rank order) making each word of ``words`` one token.

    ``words`` defaults to the world's :func:`~clipinterp.organism.world.vocabulary` plus
    :data:`EXTRA_WORDS`; words must be lower-case ASCII.
    """
    if words is None:
        words = sorted(set(vocabulary()) | set(EXTRA_WORDS))
    byte_chars = list(bytes_to_unicode().values())
    tokens: list[str] = byte_chars + [c + "</w>" for c in byte_chars]
    known = set(tokens)
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        # Segment the word with the merges so far, then chain the pieces left to right with new,
        # lower-priority merges: earlier words keep their single-token segmentation.
        symbols = _apply_merges(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            merged = pair[0] + pair[1]
            ranks[pair] = len(merges)
            merges.append(pair)
            if merged not in known:
                tokens.append(merged)
                known.add(merged)
            symbols = [merged] + symbols[2:]
    tokens += [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE: repeatedly merge the adjacent pair of lowest rank until none is mergeable."""
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), len(ranks) + 1), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def save_tokenizer(out_dir: str | Path, max_length: int) -> None:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer configs loadable by ``CLIPTokenizer``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab()
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "model_max_length": max_length,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


class WordTokenizer:
    """Fast tokenizer for world text (known words only), matching ``CLIPTokenizer``'s ids.

    ``__call__(texts)`` returns int64 numpy ids ``[n, max_length]`` and the attention mask,
    ``<|startoftext|> w1 ... wk <|endoftext|>`` then ``<|endoftext|>`` padding.
    """

    def __init__(self, max_length: int) -> None:
        self.vocab, _ = build_vocab()
        self.max_length = max_length
        self.bos = self.vocab[BOS]
        self.eos = self.vocab[EOS]

    def __call__(self, texts: list[str]):  # -> tuple[np.ndarray, np.ndarray]
        import numpy as np

        ids = np.full((len(texts), self.max_length), self.eos, dtype=np.int64)
        mask = np.zeros((len(texts), self.max_length), dtype=np.int64)
        for i, text in enumerate(texts):
            row = [self.bos] + [self.vocab[w + "</w>"] for w in text.split()] + [self.eos]
            if len(row) > self.max_length:
                raise ValueError(f"text longer than {self.max_length} tokens: {text!r}")
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask
