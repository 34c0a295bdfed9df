"""Text banks: the candidate descriptions TextSpan and CCS explain heads with.

Built-in banks live in the repository's ``data/text_banks/`` (written by its ``make_banks.py``):

* ``general``: about 4,700 short image descriptions (objects, scenes, colours, textures, shapes,
  materials, places, counts, styles, lighting, people, emotions).
* ``common_words``: about 1,100 frequent image-related words, the baseline bank.
* ``shapes``: descriptions of the synthetic shapes world, one attribute (or a few) per line;
  ``shapes.tsv`` says which, ``shapes_attributes.json`` lists the world's attribute values.

The TextSpan paper's own bank is downloaded on demand by :func:`load_textspan_bank`.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import torch

from .errors import unknown_name
from .model.loading import OfflineError, _hub_offline, data_dir

BUILTIN_BANKS = ("general", "common_words", "shapes")
DEFAULT_TEXTSPAN_URL = ("https://raw.githubusercontent.com/yossigandelsman/clip_text_span/main/"
                        "text_descriptions/image_descriptions_general.txt")


def bank_dir() -> Path:
    """Folder of the built-in banks: ``text_banks`` in the project's data folder (the repository's
    ``data/``, or ``$CLIPINTERP_DATA`` when set)."""
    return data_dir() / "text_banks"


@dataclass
class TextBank:
    """An ordered list of distinct texts, optionally with their unit embeddings ``[M, d]``.

    Build it with :meth:`from_texts` (which cleans the input) or :func:`load_bank`.
    """

    texts: list[str]
    name: str = "custom"
    embeddings: Optional[torch.Tensor] = None
    n_dropped_empty: int = 0
    n_dropped_duplicates: int = 0
    embedded_with: Optional[str] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError(
                f"the text bank is empty: {self.name!r} has no texts left ({self.n_dropped_empty} empty "
                f"lines and {self.n_dropped_duplicates} duplicates dropped); give at least one non-empty text")
        if self.embeddings is not None and tuple(self.embeddings.shape[:1]) != (len(self.texts),):
            raise ValueError(f"embeddings have {self.embeddings.shape[0]} rows for {len(self.texts)} texts")

    @classmethod
    def from_texts(cls, texts: Iterable[str], name: str = "custom") -> "TextBank":
        """Clean ``texts``: strip each, drop empty ones and repeats (case-sensitive, the first
        occurrence is kept, order preserved); warns with the counts of what was dropped."""
        kept: dict[str, None] = {}
        n_empty = n_dup = 0
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} of bank {name!r} is a {type(text).__name__}, not a str")
            text = text.strip()
            if not text:
                n_empty += 1
            elif text in kept:
                n_dup += 1
            else:
                kept[text] = None
        if (n_empty or n_dup) and kept:
            warnings.warn(f"text bank {name!r}: dropped {n_empty} empty lines and {n_dup} duplicates, "
                          f"kept {len(kept)} texts", stacklevel=2)
        return cls(list(kept), name=name, n_dropped_empty=n_empty, n_dropped_duplicates=n_dup)

    def __len__(self) -> int:
        return len(self.texts)

    def embed(self, model, batch_size: int = 256, cache_dir: Union[str, Path, None] = None,
              model_id: Optional[str] = None) -> "TextBank":
        """Fill :attr:`embeddings` with ``model.encode_text(texts, normalize=True)`` (float32, CPU).

        A second call with the same model is free. With ``cache_dir``, the embeddings are also
        saved there as safetensors, keyed by a hash of the model id and the texts, and read back
        next time. The model id is ``model.cfg.model_name`` unless ``model_id`` is given: pass
        one when two different weights share a name (a fine-tuned copy, say).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        model_id = model_id or getattr(getattr(model, "cfg", None), "model_name", None)
        if self.embeddings is not None and model_id is not None and self.embedded_with == model_id:
            return self
        path = None
        if cache_dir is not None:
            if model_id is None:
                raise ValueError("caching embeddings on disk needs a model id: the model has no "
                                 "cfg.model_name, pass model_id=...")
            path = Path(cache_dir).expanduser() / _cache_file_name(model_id, self.texts)
            cached = _read_cached(path, len(self.texts))
            if cached is not None:
                self.embeddings, self.embedded_with = cached, model_id
                return self
        chunks = []
        for start in range(0, len(self.texts), batch_size):
            batch = self.texts[start:start + batch_size]
            out = model.encode_text(batch, normalize=True)
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(batch):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"encode_text returned {shape} for {len(batch)} texts; expected [n, d]")
            chunks.append(out.detach().float().cpu())
        self.embeddings, self.embedded_with = torch.cat(chunks), model_id
        if path is not None:
            _write_cached(path, self.embeddings, model_id)
        return self


def _cache_file_name(model_id: str, texts: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([model_id, texts]).encode("utf-8")).hexdigest()[:20]
    safe_model = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)[:60]
    return f"text-embeddings-{safe_model}-{digest}.safetensors"


def _read_cached(path: Path, n_texts: int) -> Optional[torch.Tensor]:
    """Embeddings stored at ``path``, or None when missing or unreadable (then recomputed)."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        emb = load_file(str(path))["embeddings"]
    except Exception as exc:  # a truncated or foreign file: recompute rather than fail
        warnings.warn(f"ignoring unreadable embedding cache {path}: {exc}", stacklevel=3)
        return None
    return emb if emb.ndim == 2 and emb.shape[0] == n_texts else None


def _write_cached(path: Path, emb: torch.Tensor, model_id: str) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"embeddings": emb.contiguous()}, str(tmp), metadata={"model_id": model_id})
    os.replace(tmp, path)


def _read_text_file(path: Path) -> list[str]:
    """Texts of a file: one per line, or the ``text`` column of a ``.csv`` / ``.tsv``."""
    if path.suffix.lower() in {".csv", ".tsv"}:
        import pandas as pd

        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                         keep_default_na=False)
        if "text" not in df.columns:
            raise ValueError(f"{path} has no 'text' column (columns: {', '.join(map(str, df.columns))})")
        return df["text"].tolist()
    return path.read_text(encoding="utf-8").splitlines()


def load_bank(name_or_path: Union[str, Path]) -> TextBank:
    """A built-in bank by name (``"general"``, ``"common_words"``, ``"shapes"``) or a user file:
    one text a line, or a ``.csv`` / ``.tsv`` with a ``text`` column. Built-in names win over
    files of the same name in the working directory."""
    name = str(name_or_path)
    if not isinstance(name_or_path, Path) and name in BUILTIN_BANKS:
        path = bank_dir() / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"built-in bank {name!r} is missing: expected {path}. Regenerate "
                                    "it with `python data/text_banks/make_banks.py` or set CLIPINTERP_DATA")
        return TextBank.from_texts(_read_text_file(path), name=name)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return TextBank.from_texts(_read_text_file(path), name=path.stem)
    raise unknown_name("text bank", name, BUILTIN_BANKS,
                       hint=f"It is neither a built-in bank ({', '.join(BUILTIN_BANKS)}) nor an existing file.")


def _download_text(url: str, timeout: float) -> str:
    """The UTF-8 body at ``url``; a daemon thread bounds the whole request, DNS lookup included,
    to ``timeout`` seconds (urllib's own timeout covers only the socket)."""
    result: dict[str, object] = {}

    def fetch() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                result["text"] = response.read().decode("utf-8")
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=fetch, daemon=True, name="clipinterp-download")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return str(result["text"])


def textspan_bank_path(url: str = DEFAULT_TEXTSPAN_URL, cache_dir: Union[str, Path, None] = None) -> Path:
    """Where :func:`load_textspan_bank` keeps the file of ``url``: ``cache_dir`` or
    ``$HF_HOME/clipinterp``, the URL's file name plus a short hash of the URL."""
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = Path(constants.HF_HOME) / "clipinterp"
    base = url.rstrip("/").rsplit("/", 1)[-1] or "bank.txt"
    stem, dot, suffix = base.rpartition(".")
    stem, suffix = (stem, suffix) if dot else (base, "txt")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    return Path(cache_dir).expanduser() / f"{stem}-{digest}.{suffix}"


def load_textspan_bank(url: str = DEFAULT_TEXTSPAN_URL, cache_dir: Union[str, Path, None] = None,
                       timeout: float = 5.0) -> TextBank:
    """The TextSpan paper's general bank (about 3,500 descriptions), downloaded on first use into
    the Hugging Face home (``$HF_HOME/clipinterp``) or ``cache_dir`` and reused afterwards.

    Offline (``HF_HUB_OFFLINE=1``) or when the download fails, raises :class:`OfflineError` (a
    RuntimeError) at once, the network wait bounded by ``timeout`` seconds, saying where to put
    the file by hand.
    """
    path = textspan_bank_path(url, cache_dir)
    if path.is_file():
        return TextBank.from_texts(_read_text_file(path), name="textspan")
    how = (f"Download {url} by hand and save it as {path} (e.g. `curl -L -o '{path}' '{url}'`), "
           f"or pass cache_dir= a folder that holds it under that file name "
           f"({path.name}); the built-in load_bank('general') needs no download.")
    if _hub_offline():
        raise OfflineError(f"the TextSpan bank is not cached and HF_HUB_OFFLINE is set. {how}")
    try:
        text = _download_text(url, timeout)
    except (urllib.error.URLError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise OfflineError(f"could not download the TextSpan bank ({exc}). {how}") from exc
    if not text.strip() or text.lstrip().lower().startswith(("<!doctype", "<html")):
        raise RuntimeError(f"the download from {url} is not a text bank (empty or a web page). {how}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return TextBank.from_texts(text.splitlines(), name="textspan")


def embedded_for(bank: Any, model) -> Any:
    """``bank`` ready for ``model``: a :class:`TextBank` without embeddings, or one recorded as
    embedded with another model, is embedded with ``model``; given embeddings (no record) and
    ``(texts, embeddings)`` tuples are kept as they are."""
    if not isinstance(bank, TextBank):
        return bank
    name = getattr(getattr(model, "cfg", None), "model_name", None)
    if bank.embeddings is None or (bank.embedded_with and name and bank.embedded_with != name):
        bank.embed(model)
    return bank
