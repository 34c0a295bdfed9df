"""Concept Consistency Score (CCS) of attention heads ("Pruning the Paradox", EMNLP 2025).

Each head gets its top-k TextSpan descriptions; a judge names the concept they share
(:meth:`Judge.label`) and marks each description 1 if it fits that concept, 0 if not
(:meth:`Judge.judge`). CCS(head) = number of 1s (0..k); CCS@K = fraction of heads with CCS = K.
The paper uses heads of the last 4 layers, k = 5, an LLM as labeller and judge, and the tiers
high (CCS = 5), moderate (3), low (<= 1).

Three judges:

* :class:`LLMJudge`: any ``prompt -> answer`` callable with the paper's two instructions; retries,
  tolerant answer parsing, a prompt-keyed cache, and None (missing) instead of a crash.
* :class:`EmbeddingJudge`: no LLM; labels by cosine with a concept vocabulary in the text space.
* :class:`KeywordJudge`: exact, for banks whose attribute words are known (the shapes world).
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..decompose import Decomposition, decompose
from ..effects import TotalEffects, total_effects
from ..evaluation import accuracy_from_embeddings
from ..heads import HeadLike, head_name, parse_head
from ..interventions import prune
from ..model.hooked_clip import DEFAULT_TEMPLATES
from ..textbank import embedded_for
from .textspan import textspan_heads

Judgement = Optional[int]

# ---------------------------------------------------------------------------- protocol


@runtime_checkable
class Judge(Protocol):
    """What :func:`ccs_scores` needs from a judge."""

    def label(self, texts: list[str]) -> Optional[str]:
        """The concept the texts share, or None when it could not be obtained."""
        ...

    def judge(self, label: str, texts: list[str]) -> list[Judgement]:
        """1 if a text fits ``label``, 0 if not, None where no answer could be obtained."""
        ...


# ---------------------------------------------------------------------------- embedding judge

#: General concepts for :class:`EmbeddingJudge`, each with a few exemplar phrases; a concept's
#: direction is the mean of the unit embeddings of ``"a photo related to <concept>"`` and its
#: exemplars. They span what CLIP heads are known to specialise in (colours, shapes, textures,
#: places, counts, art styles, lighting, people, emotions, text, ...).
DEFAULT_CONCEPTS: dict[str, tuple[str, ...]] = {
    "color": ("a red object", "bright blue and yellow colors", "a green wall"),
    "shape": ("a circle", "a triangle shape", "a square and a star"),
    "texture": ("a rough texture", "a smooth surface", "a furry texture"),
    "pattern": ("a striped pattern", "polka dots", "a checkered pattern"),
    "material": ("made of wood", "a metal surface", "glass and plastic"),
    "geo-location": ("a street in Japan", "a village in Mexico", "a market in Morocco"),
    "counting": ("three objects", "two people", "a group of five"),
    "animal": ("a dog", "a wild animal", "a cat and a horse"),
    "food": ("a plate of food", "fruit and vegetables", "a meal on a table"),
    "vehicle": ("a car", "a boat on the water", "a train and a plane"),
    "person": ("a person", "a man and a woman", "a child"),
    "face": ("a face", "a portrait", "eyes and a mouth"),
    "emotion": ("a happy face", "a sad person", "an angry expression"),
    "age": ("an old man", "a baby", "a young child"),
    "body": ("a hand", "a foot", "the human body"),
    "clothing": ("clothes", "a dress", "a hat and a jacket"),
    "art": ("a painting", "a drawing", "an illustration"),
    "photography": ("a blurry photo", "a black and white photo", "a close-up photo"),
    "era": ("a vintage photo", "a retro style", "a futuristic scene"),
    "lighting": ("soft lighting", "a dark scene", "bright sunlight"),
    "time": ("at night", "at sunset", "in the morning"),
    "nature": ("a forest", "a mountain landscape", "trees and grass"),
    "water": ("the sea", "a river", "underwater"),
    "weather": ("rain", "snow", "a cloudy sky"),
    "season": ("autumn leaves", "a winter scene", "a summer day"),
    "plant": ("a flower", "a plant", "green leaves"),
    "sky": ("stars in the night sky", "a planet", "outer space"),
    "building": ("a building", "architecture", "a house"),
    "indoor": ("a room", "an interior", "a kitchen"),
    "city": ("a city street", "skyscrapers", "an urban scene"),
    "text": ("written text", "a sign with words", "letters of the alphabet"),
    "number": ("the number 5", "digits", "numbers on a sign"),
    "sport": ("a soccer game", "an athlete", "people playing tennis"),
    "music": ("a musical instrument", "a concert", "a guitar"),
    "technology": ("a computer", "a phone", "electronics"),
    "furniture": ("a chair", "a table", "a sofa"),
    "tool": ("a hammer", "tools", "a wrench"),
    "toy": ("a toy", "a teddy bear", "a doll"),
    "size": ("a tiny object", "a huge object", "big and small things"),
    "position": ("on the left", "at the top", "in the corner"),
    "celebration": ("a party", "a wedding", "a festival"),
    "danger": ("a weapon", "a fire", "a war scene"),
}
CONCEPT_PROMPT = "a photo related to {}"


class EmbeddingJudge:
    """Label and judge in the text-embedding space, with no LLM.

    ``encode`` maps a list of strings to embeddings ``[n, d]`` (e.g. ``model.encode_text``);
    they are L2-normalised here. ``vocabulary`` is a list of concept words or a mapping
    concept -> exemplar phrases (default :data:`DEFAULT_CONCEPTS`); a concept's direction is the
    normalised mean of the embeddings of ``prompt.format(concept)`` plus its exemplars (plus the
    bare word for a list).

    * label: the concept with the highest mean cosine with the texts.
    * judge: 1 when a text's cosine with the label's direction exceeds the threshold. A label
      outside the vocabulary is embedded as ``prompt.format(label)``.
    * threshold: the one given, else the one set by :meth:`calibrate`, else
      :meth:`default_threshold`.
    """

    def __init__(self, encode: Callable[[list[str]], torch.Tensor],
                 vocabulary: Union[Sequence[str], Mapping[str, Sequence[str]], None] = None,
                 threshold: Optional[float] = None, prompt: str = CONCEPT_PROMPT):
        vocab = DEFAULT_CONCEPTS if vocabulary is None else vocabulary
        if isinstance(vocab, str):
            raise TypeError("vocabulary must be a list of concepts or a mapping, not a string")
        if isinstance(vocab, Mapping):
            phrases = {str(c): [prompt.format(c), *(map(str, ex) if ex else [str(c)])]
                       for c, ex in vocab.items()}
        else:
            phrases = {str(c): [prompt.format(c), str(c)] for c in vocab}
        if not phrases:
            raise ValueError("the concept vocabulary is empty")
        self.encode = encode
        self.prompt = prompt
        self.threshold = threshold
        self._phrases = phrases
        self._phrase_emb: Optional[list[torch.Tensor]] = None
        self._concept_emb: Optional[torch.Tensor] = None
        self._default: Optional[float] = None
        self._extra: dict[str, torch.Tensor] = {}

    @property
    def concepts(self) -> list[str]:
        """The vocabulary's concept names, in order."""
        return list(self._phrases)

    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = self.encode(list(texts))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(texts):
            raise ValueError(f"encode returned {getattr(out, 'shape', type(out))} for {len(texts)} texts; "
                             "expected a tensor [n, d]")
        return torch.nn.functional.normalize(out.detach().float().cpu(), dim=-1)

    def _concept_matrix(self) -> torch.Tensor:
        if self._concept_emb is None:
            flat = [p for ps in self._phrases.values() for p in ps]
            emb = self._embed(flat)
            sizes = [len(ps) for ps in self._phrases.values()]
            self._phrase_emb = list(emb.split(sizes))
            self._concept_emb = torch.nn.functional.normalize(
                torch.stack([e.mean(0) for e in self._phrase_emb]), dim=-1)
        return self._concept_emb

    def concept_direction(self, label: str) -> torch.Tensor:
        """Unit direction ``[d]`` of ``label`` (a vocabulary concept or any other word)."""
        if label in self._phrases:
            return self._concept_matrix()[self.concepts.index(label)]
        if label not in self._extra:
            self._extra[label] = self._embed([self.prompt.format(label)])[0]
        return self._extra[label]

    def label(self, texts: list[str]) -> Optional[str]:
        """The concept closest on average to ``texts`` (None for no texts)."""
        if not texts:
            return None
        scores = (self._embed(list(texts)) @ self._concept_matrix().T).mean(0)
        return self.concepts[int(scores.argmax())]

    def scores(self, label: str, texts: list[str]) -> torch.Tensor:
        """Cosine ``[n]`` of each text with the label's direction."""
        return self._embed(list(texts)) @ self.concept_direction(label)

    def judge(self, label: str, texts: list[str]) -> list[Judgement]:
        """1 where the cosine with the label exceeds the threshold, else 0."""
        if not texts:
            return []
        threshold = self.threshold if self.threshold is not None else self.default_threshold()
        return [int(s > threshold) for s in self.scores(label, texts).tolist()]

    def default_threshold(self) -> float:
        """Midpoint between two mean cosines over the vocabulary's own phrases: a phrase with
        its concept's direction (left out of it) and with every other concept's direction."""
        if self._default is None:
            concepts = self._concept_matrix()
            assert self._phrase_emb is not None
            own, other = [], []
            for i, emb in enumerate(self._phrase_emb):
                total = emb.sum(0)
                loo = torch.nn.functional.normalize(total[None] - emb, dim=-1)
                own.append((emb * loo).sum(-1))
                if len(concepts) > 1:
                    sims = emb @ concepts.T
                    other.append(torch.cat([sims[:, :i], sims[:, i + 1:]], 1).flatten())
            mean_own = float(torch.cat(own).mean())
            mean_other = float(torch.cat(other).mean()) if other else -1.0
            self._default = (mean_own + mean_other) / 2
        return self._default

    def calibrate(self, positive_pairs: Sequence[tuple[str, str]],
                  negative_pairs: Sequence[tuple[str, str]]) -> float:
        """Set and return the threshold maximising balanced accuracy on ``(label, text)`` pairs
        known to match (positive) or not (negative). Ties go to the middle best threshold."""
        if not positive_pairs or not negative_pairs:
            raise ValueError("calibrate needs at least one positive and one negative (label, text) pair")
        pos, neg = self._pair_scores(positive_pairs), self._pair_scores(negative_pairs)
        values = torch.cat([pos, neg]).unique()
        candidates = torch.cat([values[:1] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1:]])
        bal = torch.stack([((pos > t).float().mean() + (neg <= t).float().mean()) / 2 for t in candidates])
        best = torch.nonzero(bal == bal.max()).flatten()
        self.threshold = float(candidates[best[len(best) // 2]])
        return self.threshold

    def _pair_scores(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """Cosine of each pair's text with its label's direction, texts embedded in one call."""
        texts = self._embed([text for _, text in pairs])
        directions = torch.stack([self.concept_direction(label) for label, _ in pairs])
        return (texts * directions).sum(-1)


# ---------------------------------------------------------------------------- LLM judge

LABEL_INSTRUCTION = ("What is the common characteristic in the following quoted lines? "
                     "Provide a one-word response without punctuation.")
JUDGE_INSTRUCTION = ("Rate the association of the property label to the text. "
                     "1 if associated and 0 if not associated.")
LABEL_EXAMPLES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("a busy market in Marrakesh", "a temple in Kyoto", "a beach in Brazil",
      "a snowy street in Moscow", "a village in the Swiss Alps"), "geo-location"),
    (("image with six subjects", "a pair of shoes", "three birds on a wire",
      "a crowd of people", "two cups of coffee"), "counting"),
)
JUDGE_EXAMPLES: tuple[tuple[str, str, int], ...] = (
    ("counting", "four apples on a table", 1),
    ("geo-location", "a wooden chair", 0),
)
_WORD = r"\s*:?\s*(?:the |a |an )?[\"'“‘]?([A-Za-z][A-Za-z-]*)"
_MARKER = re.compile(r"\b(?:label|answer|characteristic|property|concept|category|theme)\s*(?:is|would be|:|=)" + _WORD,
                     re.IGNORECASE)
_IT_IS = re.compile(r"\b(?:it\s+is|it's)" + _WORD, re.IGNORECASE)
_FINAL_IS = re.compile(r"\bis\s+(?:the |a |an )?[\"'“‘]?([A-Za-z][A-Za-z-]*)\W*$", re.IGNORECASE)
_RATING_MARKER = re.compile(r"(?:rating|score|answer|rate|label)\s*(?:is|of|=|:)?\s*:?\s*([01])(?!\d|\.\d)",
                            re.IGNORECASE)
_NOT_LABELS = {"not", "unclear", "unknown", "none", "that", "this", "hard", "difficult", "impossible",
               "sorry", "no"}
_FILLERS = {"it", "common", "shared", "most", "main", "same", "following", "one", "only", "obvious", "clear"}
_LONE_BIT = re.compile(r"(?<![\d.])([01])(?!\d|\.\d)")


def _quote(text: str) -> str:
    return '"' + " ".join(text.replace('"', "'").split()) + '"'


def label_prompt(texts: Sequence[str]) -> str:
    """The labelling prompt: instruction, two worked examples, then the head's texts."""
    parts = [LABEL_INSTRUCTION, ""]
    for lines, answer in LABEL_EXAMPLES:
        parts += ["Lines: " + ", ".join(_quote(t) for t in lines), f"Answer: {answer}", ""]
    parts += ["Lines: " + ", ".join(_quote(t) for t in texts), "Answer:"]
    return "\n".join(parts)


def judge_prompt(label: str, text: str) -> str:
    """The judging prompt for one (label, text) pair, with two worked examples."""
    parts = [JUDGE_INSTRUCTION, ""]
    for ex_label, ex_text, rating in JUDGE_EXAMPLES:
        parts += [f"Label: {ex_label}", f"Text: {_quote(ex_text)}", f"Rating: {rating}", ""]
    parts += [f"Label: {label}", f"Text: {_quote(text)}", "Rating:"]
    return "\n".join(parts)


def parse_label(answer: str) -> Optional[str]:
    """The one-word label in an LLM answer, lower-cased ("Sure! The label is: **Color**." ->
    "color"), or None when the answer names none."""
    cleaned = re.sub(r"[*_`#]", "", answer).strip()
    first_sentence = re.findall(r"[A-Za-z][A-Za-z-]*", re.split(r"[.!?;\n]", cleaned, maxsplit=1)[0])
    candidates = (  # the most explicit form first; a sentence after the answer does not override it
        [w for w in _MARKER.findall(cleaned) if w.lower() not in _FILLERS][:1]
        or (first_sentence if len(first_sentence) == 1 else [])
        or [w for w in _IT_IS.findall(cleaned) if w.lower() not in _FILLERS][:1]
        or _FINAL_IS.findall(cleaned))
    if not candidates:
        return None
    word = candidates[0].strip("-").lower()
    return word if word and word not in _NOT_LABELS else None


def parse_rating(answer: str) -> Judgement:
    """The 0/1 rating in an LLM answer ("Rating: 1" -> 1, "0 - not associated" -> 0, "Yes" -> 1),
    or None when it is missing or ambiguous."""
    cleaned = re.sub(r"[*_`]", "", answer).strip()
    marked = _RATING_MARKER.findall(cleaned)
    if marked:
        return int(marked[-1])
    bits = set(_LONE_BIT.findall(cleaned))
    if len(bits) == 1:
        return int(bits.pop())
    first = re.match(r"[A-Za-z]+", cleaned)
    if first and not bits:
        return {"yes": 1, "no": 0}.get(first.group(0).lower())
    return None


class LLMJudge:
    """CCS with a language model: ``fn`` is any ``prompt -> answer`` callable.

    Each prompt is tried up to ``1 + retries`` times (on an exception or an answer that cannot
    be parsed); after that the result is None (missing) and ``(prompt, reason)`` is appended to
    :attr:`failures`: a run never crashes on the LLM. Parsed answers are cached by prompt in
    :attr:`cache` and, with ``cache_path``, in a JSON file (read at start, rewritten after each new
    answer). Use one cache file per LLM: the key is the prompt only.
    """

    def __init__(self, fn: Callable[[str], str], retries: int = 3,
                 cache_path: Union[str, Path, None] = None):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.fn = fn
        self.retries = retries
        self.cache_path = Path(cache_path).expanduser() if cache_path is not None else None
        self.cache: dict[str, str] = self._load_cache()
        self.failures: list[tuple[str, str]] = []

    def _load_cache(self) -> dict[str, str]:
        if self.cache_path is None or not self.cache_path.is_file():
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warnings.warn(f"ignoring unreadable LLM cache {self.cache_path}: {exc}", stacklevel=3)
            return {}
        if not isinstance(data, dict):
            warnings.warn(f"ignoring LLM cache {self.cache_path}: not a JSON object", stacklevel=3)
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _save_cache(self) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(self.cache_path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.cache, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.cache_path)

    def ask(self, prompt: str, parse: Callable[[str], object]) -> object:
        """``parse(answer)`` for ``prompt``: from the cache, else from ``fn`` with retries; None
        when every attempt failed."""
        if prompt in self.cache:
            parsed = parse(self.cache[prompt])
            if parsed is not None:
                return parsed
        reason = ""
        for _ in range(self.retries + 1):
            try:
                answer = self.fn(prompt)
            except Exception as exc:  # any failure of the LLM call counts as one attempt
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if not isinstance(answer, str):
                reason = f"the answer is a {type(answer).__name__}, not a str"
                continue
            parsed = parse(answer)
            if parsed is not None:
                self.cache[prompt] = answer
                self._save_cache()
                return parsed
            reason = f"unparseable answer {answer[:100]!r}"
        self.failures.append((prompt, reason))
        warnings.warn(f"LLM judge gave up after {self.retries + 1} attempts ({reason}); "
                      "recorded as missing", stacklevel=3)
        return None

    def label(self, texts: list[str]) -> Optional[str]:
        """The one-word concept shared by ``texts`` (None if the LLM gave none)."""
        if not texts:
            return None
        return self.ask(label_prompt(texts), parse_label)  # type: ignore[return-value]

    def judge(self, label: str, texts: list[str]) -> list[Judgement]:
        """One 0/1 rating per text (None where the LLM gave none)."""
        return [self.ask(judge_prompt(label, t), parse_rating) for t in texts]  # type: ignore[misc]


# ---------------------------------------------------------------------------- keyword judge

#: Extra words per shapes-world value, beyond the value itself (captions say "striped" for
#: ``stripes`` etc.). Plurals with -s/-es are matched automatically.
SHAPES_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circular", "round"),
    "triangle": ("triangular",),
    "purple": ("violet",),
    "gray": ("grey",),
    "small": ("tiny", "little"),
    "large": ("big", "huge"),
    "top": ("upper", "above"),
    "bottom": ("lower", "below"),
    "one": ("single",),
    "two": ("pair",),
    "stripes": ("striped", "stripe"),
    "dots": ("dotted", "dot", "spotted", "polka"),
    "checker": ("checkered", "checkerboard", "chequered", "checked"),
    "plain": ("blank", "solid"),
}


class KeywordJudge:
    """Exact CCS for banks with known attribute words (the shapes world).

    A text mentions an attribute when it contains one of the attribute's words as a whole word
    (case-insensitive; a plural in -s/-es counts). label: the attribute mentioned by the most
    texts; ties go to the attribute of the earliest text (TextSpan ranks its texts by what they
    explain), then to the attribute listed first; when no text mentions any attribute the label
    is :attr:`NO_CONCEPT` and every judgement is 0. judge: 1 if the text mentions the label's
    attribute.
    """

    NO_CONCEPT = "none"

    def __init__(self, attribute_words: Mapping[str, Sequence[str]]):
        if not attribute_words:
            raise ValueError("KeywordJudge needs at least one attribute with words")
        self.attribute_words: dict[str, tuple[str, ...]] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        for attribute, words in attribute_words.items():
            if isinstance(words, str):
                raise TypeError(f"the words of attribute {attribute!r} must be a list, not a string")
            clean = tuple(dict.fromkeys(w.strip().lower() for w in words if w.strip()))
            if not clean:
                raise ValueError(f"attribute {attribute!r} has no words")
            if attribute == self.NO_CONCEPT:
                raise ValueError(f"{self.NO_CONCEPT!r} is reserved for 'no attribute'")
            self.attribute_words[attribute] = clean
            alternatives = "|".join(re.escape(w) for w in sorted(clean, key=len, reverse=True))
            self._patterns[attribute] = re.compile(rf"\b(?:{alternatives})(?:s|es)?\b", re.IGNORECASE)

    @classmethod
    def for_shapes(cls, path: Union[str, Path, None] = None) -> "KeywordJudge":
        """The judge of the shapes world: ``shapes_attributes.json`` (default: the built-in bank
        folder) plus :data:`SHAPES_SYNONYMS`."""
        from clipinterp.textbank import bank_dir

        path = Path(path) if path is not None else bank_dir() / "shapes_attributes.json"
        values: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))
        return cls({attr: [w for v in vals for w in (v, *SHAPES_SYNONYMS.get(v, ()))]
                    for attr, vals in values.items()})

    def mentions(self, attribute: str, text: str) -> bool:
        """Whether ``text`` contains a word of ``attribute``."""
        return self._patterns[attribute].search(text) is not None

    def label(self, texts: list[str]) -> Optional[str]:
        """The attribute mentioned by the most texts (ties: the earliest text's, then the first
        listed; NO_CONCEPT if none)."""
        hits = {a: [i for i, t in enumerate(texts) if self.mentions(a, t)] for a in self.attribute_words}
        best = max((len(h) for h in hits.values()), default=0)
        if best == 0:
            return self.NO_CONCEPT
        tied = [a for a, h in hits.items() if len(h) == best]
        return min(tied, key=lambda a: hits[a][0])  # min is stable: listing order among equals

    def judge(self, label: str, texts: list[str]) -> list[Judgement]:
        """1 where the text mentions ``label``'s attribute, else 0."""
        if label == self.NO_CONCEPT:
            return [0] * len(texts)
        if label not in self._patterns:
            raise ValueError(f"unknown attribute {label!r}; known: {', '.join(self.attribute_words)}")
        return [int(self.mentions(label, t)) for t in texts]


# ---------------------------------------------------------------------------- scores

SCORE_COLUMNS = ["layer", "head", "label", "texts", "judgements", "ccs", "n_missing"]


def _checked_judgements(values: Sequence[object], k: int, head: str) -> list[Judgement]:
    values = list(values)
    if len(values) != k:
        raise ValueError(f"the judge returned {len(values)} judgements for the {k} texts of {head}")
    out: list[Judgement] = []
    for v in values:
        if v is None:
            out.append(None)
        elif v in (0, 1):  # also True/False and numpy integers
            out.append(int(v))  # type: ignore[arg-type]
        else:
            raise ValueError(f"the judge returned {v!r} for {head}; judgements are 1, 0 or None")
    return out


def ccs_scores(textspan_df: pd.DataFrame, judge: Judge, k: int = 5, progress: bool = False) -> pd.DataFrame:
    """CCS of every head in ``textspan_df`` (columns ``layer, head, rank, text``, e.g. from
    ``textspan_heads``), from its ``k`` best-ranked texts.

    Returns one row per head, sorted by (layer, head): ``layer, head, label, texts, judgements,
    ccs, n_missing``. ``ccs`` is the number of 1s (a float column so that a head whose judgements
    are all missing, or whose label is None, can be NaN); missing judgements count as not 1 and
    are counted in ``n_missing``. ``label`` is None where the judge gave no label.
    """
    missing = {"layer", "head", "rank", "text"} - set(textspan_df.columns)
    if missing:
        raise ValueError(f"textspan_df lacks the column(s) {', '.join(sorted(missing))}; expected the "
                         "output of textspan_heads (layer, head, rank, text, ...)")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if textspan_df.empty:
        raise ValueError("textspan_df has no rows")
    ordered = textspan_df.sort_values(["layer", "head", "rank"], kind="stable")
    heads = [((int(layer), int(head)), group["text"].astype(str).tolist())
             for (layer, head), group in ordered.groupby(["layer", "head"], sort=True)]
    short = [(lh, len(texts)) for lh, texts in heads if len(texts) < k]
    if short:
        (layer, head), n = short[0]
        raise ValueError(f"k={k} but head L{layer}.H{head} has only {n} TextSpan texts "
                         f"({len(short)} head(s) too short): lower k or rerun TextSpan with more texts per head")
    from tqdm.auto import tqdm

    rows = []
    for (layer, head), texts in tqdm(heads, desc="CCS", disable=not progress):
        texts = texts[:k]
        label = judge.label(texts)
        if label is None:
            judgements: list[Judgement] = [None] * k
        else:
            judgements = _checked_judgements(judge.judge(label, texts), k, f"L{layer}.H{head}")
        n_missing = sum(j is None for j in judgements)
        ccs = float(sum(j == 1 for j in judgements)) if n_missing < k else math.nan
        rows.append({"layer": layer, "head": head, "label": label, "texts": texts,
                     "judgements": judgements, "ccs": ccs, "n_missing": n_missing})
    columns = {c: [r[c] for r in rows] for c in SCORE_COLUMNS}
    columns["label"] = pd.Series(columns["label"], dtype=object)  # keep None (pandas 3 makes it NaN)
    return pd.DataFrame(columns, columns=SCORE_COLUMNS)


def ccs_at_k(scores_df: pd.DataFrame, K: int) -> float:
    """CCS@K: the fraction of scored heads (CCS not NaN) whose CCS equals ``K``; NaN if none."""
    if K < 0:
        raise ValueError(f"K must be >= 0, got {K}")
    scored = scores_df["ccs"].dropna()
    return float((scored == K).mean()) if len(scored) else math.nan


def ccs_tiers(scores_df: pd.DataFrame, high: int = 5, moderate: int = 3,
              low: int = 1) -> dict[str, list[tuple[int, int]]]:
    """Heads by tier, as sorted ``(layer, head)`` lists: ``high`` (CCS == high), ``moderate``
    (CCS == moderate) and ``low`` (CCS <= low); heads with NaN CCS are in none."""
    if not low < moderate < high:
        raise ValueError(f"tiers need low < moderate < high, got low={low}, moderate={moderate}, high={high}")
    ccs = scores_df["ccs"]

    def heads(mask: pd.Series) -> list[tuple[int, int]]:
        sub = scores_df[mask]
        return sorted((int(layer), int(head)) for layer, head in zip(sub["layer"], sub["head"]))

    return {"high": heads(ccs == high), "moderate": heads(ccs == moderate), "low": heads(ccs <= low)}


# ---------------------------------------------------------------------------- pipeline

LAST_FOUR = (-4, -3, -2, -1)
EFFECTS = ("direct", "total")


def ccs_table(model, images, bank, judge: Judge, layers: Union[int, Sequence[int], None] = LAST_FOUR,
              k: int = 5, rank: int = 80, batch_size: int = 32, effect: Optional[str] = None,
              progress: bool = True, checkpoint: Union[str, Path, None] = None) -> pd.DataFrame:
    """Model + images + text bank -> CCS per head: TextSpan's top-``k`` texts of every head of
    ``layers`` (default the last four, as in the paper; None for all), labelled and judged by
    ``judge`` (:func:`ccs_scores`; columns ``layer, head, label, texts, judgements, ccs, n_missing``).

    images: images or pixels ``[N, c, S, S]``, or a precomputed unprojected
    :class:`~clipinterp.decompose.Decomposition` (direct) or
    :class:`~clipinterp.effects.TotalEffects` (total). effect: what TextSpan describes:
    ``"direct"`` (the default for images, as in the paper: each head's direct contribution,
    TextSpan's convention, normalised by the embedding norm) or ``"total"`` (each head's total
    effect, :func:`~clipinterp.effects.total_effects`: it also sees heads that act through later
    layers, at one late forward pass per head); an effect that contradicts a precomputed
    ``images`` raises ``ValueError``.
    bank: a :class:`~clipinterp.textbank.TextBank` (embedded with ``model`` unless it already is)
    or a ``(texts, embeddings [M, d_embed])`` tuple. progress: a bar while the effects are
    computed; checkpoint: with ``effect="total"``, a directory where each measured layer is saved
    and found again by a rerun (see :func:`~clipinterp.effects.total_effects`).
    """
    if effect not in (None, *EFFECTS):
        raise ValueError(f"effect={effect!r}: expected one of {EFFECTS}")
    given = "direct" if isinstance(images, Decomposition) else "total" if isinstance(images, TotalEffects) else None
    if given and effect not in (None, given):
        raise ValueError(f"effect={effect!r}, but a {type(images).__name__} holds {given} effects: pass images, or "
                         f"effect={given!r}")
    if checkpoint is not None and (given or effect != "total"):
        raise ValueError("checkpoint= saves total effects computed here: it needs images and effect='total'")
    if given:
        source = images
    elif effect == "total":
        source = total_effects(model, images, layers, batch_size=batch_size, progress=progress, checkpoint=checkpoint)
    else:
        source = decompose(model, images, normalize=True, batch_size=batch_size, progress=progress)
    bank = embedded_for(bank, model)
    return ccs_scores(textspan_heads(source, bank, layers, n_texts=k, rank=rank), judge, k)


# ---------------------------------------------------------------------------- soft pruning

PRUNING_TIERS = ("original", "high CCS", "low CCS", "random")
Head = tuple[int, int]


def _class_matrix(model, classes: Union[torch.Tensor, Sequence[str]], templates: Sequence[str]) -> torch.Tensor:
    """Unit class embeddings ``[C, d_embed]``: given, or ``model.class_embeddings(classes, templates)``."""
    if isinstance(classes, torch.Tensor):
        if classes.ndim != 2 or classes.shape[1] != model.cfg.d_embed:
            raise ValueError(f"class embeddings must be [C, {model.cfg.d_embed}], got {tuple(classes.shape)}")
        return torch.nn.functional.normalize(classes.float(), dim=-1)
    return model.class_embeddings(list(classes), templates)


def _ranked(scored: pd.DataFrame, n: int, rng, highest: bool) -> list[Head]:
    """The ``n`` heads of ``scored`` (columns layer, head, ccs) with the highest (or lowest) CCS,
    ties broken at random."""
    ccs = scored["ccs"].to_numpy(dtype=float)
    order = np.lexsort((rng.random(len(ccs)), -ccs if highest else ccs))[:n]
    return sorted((int(scored["layer"].iloc[i]), int(scored["head"].iloc[i])) for i in order)


def ccs_pruning(model, scores: pd.DataFrame, images, labels: Union[Sequence[int], Mapping[str, Sequence[int]]],
                classes: Union[torch.Tensor, Sequence[str], Mapping[str, Any]], n_heads: Optional[int] = None,
                seeds: Union[int, Sequence[int]] = 5, layers: Optional[Sequence[int]] = None,
                templates: Sequence[str] = DEFAULT_TEMPLATES, high: int = 5, low: int = 1,
                batch_size: int = 64, progress: bool = True) -> pd.DataFrame:
    """Zero-shot accuracy after soft-pruning high-CCS, low-CCS and random heads (the paper's test).

    Heads are pruned with :func:`clipinterp.interventions.prune` (query rows and out-projection
    columns zeroed, in the forward pass). Per seed, three sets of ``n_heads`` heads each: the
    highest-CCS heads of ``scores`` (from :func:`ccs_scores`), the lowest-CCS ones (ties broken at
    random, per seed) and a uniform draw from every head of ``layers`` (default: the layers in
    ``scores``). ``n_heads`` defaults to the size of the smaller paper tier (CCS == ``high``,
    CCS <= ``low``), so that both tiers are pruned whole or subsampled to the same count.

    images: images or pixels ``[N, c, S, S]`` (preprocessed once); labels: ``[N]`` class indices;
    classes: class names (embedded with ``templates``) or unit class embeddings ``[C, d_embed]``.
    Several labelled tasks on the same images (for example one per attribute) share the pruned
    forward passes: pass ``labels`` and ``classes`` as mappings with the same keys (task names).
    seeds: a count (seeds ``0..seeds-1``) or the seeds themselves.
    Returns a tidy frame ``tier, seed, n_heads, heads, accuracy``: one ``original`` row (no
    pruning, seed <NA>), then one row per pruned tier and seed; with several tasks, a ``task``
    column after ``tier`` and one row per task. Plot it with :func:`clipinterp.viz.plot_ccs_tiers`.
    """
    n_layers, n_heads_per_layer = model.cfg.n_layers, model.cfg.n_heads
    given = scores["layer"].unique() if layers is None else layers
    layers = sorted({int(layer) % n_layers for layer in given})
    scored = scores[scores["layer"].isin(layers) & scores["ccs"].notna()]
    if n_heads is None:
        n_heads = min(int((scored["ccs"] == high).sum()), int((scored["ccs"] <= low).sum()))
        if n_heads == 0:
            raise ValueError(f"no scored head has CCS == {high} or none has CCS <= {low}: pass n_heads "
                             "to prune that many of the highest- and lowest-CCS heads")
    if not 1 <= n_heads <= len(scored):
        raise ValueError(f"n_heads={n_heads} must be between 1 and the {len(scored)} scored heads of layers {layers}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    pool = [(layer, head) for layer in layers for head in range(n_heads_per_layer)]
    pixels = images if isinstance(images, torch.Tensor) and images.is_floating_point() else model.to_pixels(images)
    tasks = _pruning_tasks(model, labels, classes, templates)
    accuracies: dict[tuple[Head, ...], dict[Optional[str], float]] = {}
    bar = tqdm(total=1 + 3 * len(seeds), desc="pruned passes", unit="set", disable=not progress)

    def rows_for(tier: str, seed: Any, heads: list[Head]) -> list[dict[str, Any]]:
        key = tuple(heads)
        if key not in accuracies:  # one pruned forward per head set, scored for every task
            edited = model.with_interventions(prune(heads)) if heads else model
            emb = edited.encode_image(pixels, batch_size=batch_size)
            accuracies[key] = {task: accuracy_from_embeddings(emb, class_emb, task_labels)
                               for task, (task_labels, class_emb) in tasks.items()}
        bar.update()  # a head set drawn twice is counted without a second pass
        return [{"tier": tier, "task": task, "seed": seed, "n_heads": len(heads),
                 "heads": [head_name(h) for h in heads], "accuracy": acc} for task, acc in accuracies[key].items()]

    with bar:
        rows = rows_for("original", pd.NA, [])
        for seed in seeds:
            rng = np.random.default_rng(seed)
            drawn = {"high CCS": _ranked(scored, n_heads, rng, highest=True),
                     "low CCS": _ranked(scored, n_heads, rng, highest=False),
                     "random": sorted(pool[i] for i in rng.choice(len(pool), n_heads, replace=False))}
            rows += [row for tier, heads in drawn.items() for row in rows_for(tier, seed, heads)]
    columns = ["tier", "task", "seed", "n_heads", "heads", "accuracy"]
    if None in tasks:
        columns.remove("task")
    return pd.DataFrame(rows, columns=columns).astype({"seed": "Int64"})


def _pruning_tasks(model, labels: Any, classes: Any, templates: Sequence[str]) -> dict[Optional[str], tuple[torch.Tensor, torch.Tensor]]:
    """``{task: (labels [N], unit class embeddings [C, d_embed])}``; the single task is ``None``."""
    if isinstance(labels, Mapping) != isinstance(classes, Mapping):
        raise ValueError("labels and classes must both be mappings of task -> ... (several tasks) or neither")
    if not isinstance(labels, Mapping):
        return {None: (torch.as_tensor(list(labels)), _class_matrix(model, classes, templates))}
    if not labels or set(labels) != set(classes):
        raise ValueError(f"labels and classes must name the same, non-empty tasks: {sorted(labels)} vs {sorted(classes)}")
    return {task: (torch.as_tensor(list(labels[task])), _class_matrix(model, classes[task], templates))
            for task in labels}


# ---------------------------------------------------------------------------- ground truth


def ccs_agreement(scores: pd.DataFrame, specialised: Mapping[str, Sequence[HeadLike]]) -> float:
    """Fraction of the known specialised heads whose CCS label is their attribute.

    specialised: attribute -> heads (``"L1.H3"``, ``"L1H3"`` or ``(1, 3)``), e.g.
    ``clipinterp.organism.ground_truth.ground_truth(model).specialised()``. Every such head must be
    in ``scores`` (columns ``layer, head, label``). NaN when there are no specialised heads.
    """
    labels = {(int(layer), int(head)): label
              for layer, head, label in zip(scores["layer"], scores["head"], scores["label"])}
    truth = {parse_head(head): attribute for attribute, heads in specialised.items() for head in heads}
    unscored = sorted(set(truth) - set(labels))
    if unscored:
        raise ValueError(f"specialised heads {unscored} have no CCS label: score their layers too")
    if not truth:
        return math.nan
    return sum(labels[head] == attribute for head, attribute in truth.items()) / len(truth)
