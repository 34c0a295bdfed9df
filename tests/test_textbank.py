"""Text banks: shipped files, cleaning, loading, the TextSpan download and embedding caches."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
import threading
import urllib.request
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from clipinterp import OfflineError, textbank
from clipinterp.textbank import (TextBank, bank_dir, load_bank, load_textspan_bank,
                                 textspan_bank_path)

BANK_FILES = ["general.txt", "common_words.txt", "shapes.txt", "shapes.tsv", "shapes_attributes.json"]
SHAPES_VALUES = {
    "shape": ["circle", "square", "triangle", "star", "cross"],
    "color": ["red", "green", "blue", "yellow", "purple", "orange"],
    "size": ["small", "large"],
    "position": ["left", "right", "top", "bottom"],
    "count": ["one", "two", "three"],
    "background_texture": ["plain", "stripes", "dots", "checker"],
    "background_color": ["white", "black", "gray"],
}
# Keywords that mark each required category of the general bank (whole words).
CATEGORY_WORDS = {
    "objects": ["chair", "cup", "lamp", "umbrella", "book", "bottle", "table", "guitar"],
    "scenes": ["beach", "forest", "kitchen", "harbor", "street", "desert", "library", "aerial"],
    "colours": ["red", "blue", "green", "yellow", "purple", "pink", "color"],
    "textures": ["texture", "striped", "rough", "fluffy", "checkered", "pattern", "surface"],
    "shapes": ["circle", "triangle", "square", "hexagon", "spiral", "shape", "sphere"],
    "materials": ["wooden", "metal", "glass", "stone", "leather", "ceramic", "made"],
    "locations": ["japan", "china", "india", "italy", "france", "spain", "greece", "egypt", "mexico",
                  "brazil", "peru", "kenya", "turkey", "norway", "tokyo", "paris", "london", "rome",
                  "venice", "istanbul", "cairo", "seoul", "berlin", "sydney", "dubai", "skyline"],
    "counts": ["two", "three", "four", "five", "six", "seven", "dozen", "pair"],
    "styles": ["painting", "sketch", "cartoon", "watercolor", "drawing", "illustration", "render"],
    "lighting": ["lighting", "light", "neon", "sunset", "shadow", "silhouette", "lit"],
    "people": ["man", "woman", "child", "girl", "boy", "person", "people"],
    "emotions": ["smiling", "laughing", "angry", "sad", "happy", "scared", "crying", "surprised",
                 "worried", "nervous", "excited", "proud", "lonely", "bored", "shocked", "joy",
                 "fear", "anger", "sadness", "expression", "mood"],
}


class FakeModel:
    """Deterministic unit 'embeddings' from a hash of each text; counts encode_text calls."""

    def __init__(self, name: str = "fake-clip", d: int = 8):
        self.cfg = SimpleNamespace(model_name=name)
        self.d = d
        self.calls = 0

    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        assert normalize and isinstance(texts, list)
        self.calls += 1
        rows = []
        for text in texts:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            rows.append(torch.randn(self.d, generator=torch.Generator().manual_seed(seed)))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def _load_make_banks():
    path = bank_dir() / "make_banks.py"
    spec = importlib.util.spec_from_file_location("make_banks", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_bank_files_exist() -> None:
    for name in BANK_FILES:
        assert (bank_dir() / name).is_file(), name


def test_general_bank_is_large_clean_and_covers_every_category() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped bank has nothing to clean
        bank = load_bank("general")
    assert bank.name == "general"
    assert len(bank) >= 3000 and len(set(bank.texts)) == len(bank)
    assert bank.n_dropped_empty == 0 and bank.n_dropped_duplicates == 0
    assert all(2 <= len(t.split()) <= 8 for t in bank.texts)
    words = [set(t.lower().replace("-", " ").split()) for t in bank.texts]
    for category, keys in CATEGORY_WORDS.items():
        hits = sum(bool(w & set(keys)) for w in words)
        assert hits >= 50, f"{category}: only {hits} lines"


def test_common_words_bank() -> None:
    bank = load_bank("common_words")
    assert 900 <= len(bank) <= 1300
    assert all(" " not in w and w == w.lower() for w in bank.texts)
    assert {"dog", "red", "car", "striped", "sunset", "three"} <= set(bank.texts)


def test_shapes_bank_matches_its_tsv_and_attributes() -> None:
    import pandas as pd

    bank = load_bank("shapes")
    table = pd.read_csv(bank_dir() / "shapes.tsv", sep="\t", dtype=str)
    assert list(table.columns) == ["text", "attribute", "value"]
    assert table["text"].tolist() == bank.texts
    attributes = json.loads((bank_dir() / "shapes_attributes.json").read_text())
    assert attributes == SHAPES_VALUES
    for attribute, value in zip(table["attribute"], table["value"]):
        names, values = attribute.split("+"), value.split("+")
        assert len(names) == len(values)
        for n, v in zip(names, values):
            assert v in attributes[n], (attribute, value)
    singles = table[~table["attribute"].str.contains("+", regex=False)]
    for attribute, values in attributes.items():  # every value has lines of its own
        assert set(singles.loc[singles["attribute"] == attribute, "value"]) == set(values)


def test_shapes_bank_agrees_with_the_world() -> None:
    world = pytest.importorskip("clipinterp.organism.world")
    tokenizer = pytest.importorskip("clipinterp.organism.tokenizer")
    assert {a: list(v) for a, v in world.VALUES.items()} == json.loads(
        (bank_dir() / "shapes_attributes.json").read_text())
    known = set(world.vocabulary()) | set(tokenizer.EXTRA_WORDS)
    unknown = {w for t in load_bank("shapes").texts for w in t.split()} - known
    assert not unknown, f"words the shapes tokenizer does not know: {sorted(unknown)}"


def test_generator_reproduces_the_shipped_files(tmp_path: Path) -> None:
    counts = _load_make_banks().write_banks(tmp_path)
    assert counts["general"] >= 3000
    for name in BANK_FILES:
        assert (tmp_path / name).read_bytes() == (bank_dir() / name).read_bytes(), name


def test_from_texts_cleans_and_counts() -> None:
    raw = ["a cat", "  a cat ", "", "   ", "A cat", "a dog\n", "a cat"]
    with pytest.warns(UserWarning, match="dropped 2 empty lines and 2 duplicates"):
        bank = TextBank.from_texts(raw, name="pets")
    assert bank.texts == ["a cat", "A cat", "a dog"]
    assert (bank.n_dropped_empty, bank.n_dropped_duplicates) == (2, 2)
    assert len(bank) == 3 and bank.name == "pets"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = TextBank.from_texts(["x y", "y z"])
    assert clean.n_dropped_empty == clean.n_dropped_duplicates == 0


def test_empty_bank_is_refused() -> None:
    with pytest.raises(ValueError, match="the text bank is empty: 'blank'"):
        TextBank.from_texts(["", "  ", "\t"], name="blank")
    with pytest.raises(ValueError, match="is empty"):
        TextBank([])
    with pytest.raises(TypeError, match="not a str"):
        TextBank.from_texts(["ok", 3])  # type: ignore[list-item]


def test_load_bank_from_user_files(tmp_path: Path) -> None:
    txt = tmp_path / "mine.txt"
    txt.write_text("a red car\n\na blue boat\na red car\n", encoding="utf-8")
    with pytest.warns(UserWarning):
        bank = load_bank(txt)
    assert bank.texts == ["a red car", "a blue boat"] and bank.name == "mine"
    with pytest.warns(UserWarning):
        assert load_bank(str(txt)).texts == bank.texts

    tsv = tmp_path / "table.tsv"
    tsv.write_text("id\ttext\n1\ta green tree\n2\ta white cloud\n", encoding="utf-8")
    assert load_bank(tsv).texts == ["a green tree", "a white cloud"]
    csv = tmp_path / "table.csv"
    csv.write_text('text,score\n"a dog, running",1\nNA,2\n', encoding="utf-8")
    assert load_bank(csv).texts == ["a dog, running", "NA"]  # "NA" is a text, not a missing value

    bad = tmp_path / "bad.tsv"
    bad.write_text("caption\nsomething\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no 'text' column.*caption"):
        load_bank(bad)


def test_unknown_bank_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="Did you mean: 'general'"):
        load_bank("genral")
    with pytest.raises(ValueError, match="Did you mean: 'common_words'"):
        load_bank("common-words")
    with pytest.raises(ValueError, match="unknown text bank 'zzzz'.*neither a built-in bank") as info:
        load_bank("zzzz")
    assert "Did you mean" not in str(info.value)


def test_data_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "text_banks").mkdir()
    (tmp_path / "text_banks" / "general.txt").write_text("one thing\nanother thing\n")
    monkeypatch.setenv("CLIPINTERP_DATA", str(tmp_path))
    assert bank_dir() == tmp_path / "text_banks"
    assert load_bank("general").texts == ["one thing", "another thing"]
    monkeypatch.setenv("CLIPINTERP_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="make_banks.py"):
        load_bank("shapes")


def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.mark.timeout(5)
def test_textspan_bank_offline_fails_at_once_with_instructions(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _online(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("offline mode must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError) as info:
        load_textspan_bank(cache_dir=tmp_path)
    assert isinstance(info.value, OfflineError)
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "by hand" in message and "cache_dir" in message
    assert str(textspan_bank_path(cache_dir=tmp_path)) in message
    assert textbank.DEFAULT_TEXTSPAN_URL in message


@pytest.mark.timeout(5)
def test_textspan_bank_network_failures_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _online(monkeypatch)
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/bank.txt"
    with pytest.raises(RuntimeError, match="could not download the TextSpan bank.*by hand"):
        load_textspan_bank(url, cache_dir=tmp_path)

    release = threading.Event()
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: release.wait())  # hangs
    try:
        with pytest.raises(RuntimeError, match="no answer within 0.2 s"):
            load_textspan_bank(url, cache_dir=tmp_path, timeout=0.2)
    finally:
        release.set()
    assert not textspan_bank_path(url, tmp_path).exists()


def test_textspan_bank_downloads_once_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _online(monkeypatch)
    source = tmp_path / "published.txt"
    source.write_text("a photo of a dog\nan aerial view of a city\n\na photo of a dog\n", encoding="utf-8")
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match="1 duplicates"):
        bank = load_textspan_bank(source.as_uri(), cache_dir=cache)
    assert bank.texts == ["a photo of a dog", "an aerial view of a city"] and bank.name == "textspan"
    stored = textspan_bank_path(source.as_uri(), cache)
    assert stored.is_file() and stored.parent == cache and stored.name.startswith("published-")
    source.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # reuse needs no network
    with pytest.warns(UserWarning):
        again = load_textspan_bank(source.as_uri(), cache_dir=cache)
    assert again.texts == bank.texts


def test_textspan_default_location_is_in_the_hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path))
    path = textspan_bank_path()
    assert path.parent == tmp_path / "clipinterp"
    assert path.name.startswith("image_descriptions_general-") and path.suffix == ".txt"
    assert textspan_bank_path("https://example.org/other/image_descriptions_general.txt") != path


def test_embed_fills_and_reuses_embeddings(tmp_path: Path) -> None:
    model = FakeModel()
    bank = TextBank.from_texts(["a", "b c", "d", "e f", "g"])
    assert bank.embed(model, batch_size=2) is bank
    assert model.calls == 3 and bank.embeddings is not None
    assert bank.embeddings.shape == (5, 8) and bank.embeddings.dtype == torch.float32
    torch.testing.assert_close(bank.embeddings.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(bank.embeddings[1], model.encode_text(["b c"])[0])
    calls = model.calls
    bank.embed(model)
    assert model.calls == calls  # same model: free
    bank.embed(FakeModel("another-clip"))
    assert bank.embedded_with == "another-clip"


def test_embed_disk_cache_is_keyed_by_model_and_texts(tmp_path: Path) -> None:
    texts = ["a red car", "a blue boat", "a green tree"]
    first = FakeModel()
    a = TextBank.from_texts(texts).embed(first, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert first.calls == 1 and len(files) == 1 and "fake-clip" in files[0].name

    second = FakeModel()
    b = TextBank.from_texts(texts).embed(second, cache_dir=tmp_path)
    assert second.calls == 0
    torch.testing.assert_close(a.embeddings, b.embeddings)

    TextBank.from_texts(texts[:2]).embed(second, cache_dir=tmp_path)  # other texts: other file
    assert second.calls == 1 and len(list(tmp_path.glob("*.safetensors"))) == 2
    other = FakeModel("other-model")
    TextBank.from_texts(texts).embed(other, cache_dir=tmp_path)  # other model: other file
    assert other.calls == 1 and len(list(tmp_path.glob("*.safetensors"))) == 3
    renamed = FakeModel()
    TextBank.from_texts(texts).embed(renamed, cache_dir=tmp_path, model_id="fake-clip-finetuned")
    assert renamed.calls == 1

    files[0].write_bytes(b"not a safetensors file")
    third = FakeModel()
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        c = TextBank.from_texts(texts).embed(third, cache_dir=tmp_path)
    assert third.calls == 1
    torch.testing.assert_close(a.embeddings, c.embeddings)


def test_embed_checks_the_model(tmp_path: Path) -> None:
    class Broken(FakeModel):
        def encode_text(self, texts, normalize=True):
            return torch.zeros(len(texts) + 1, 4)

    with pytest.raises(ValueError, match="expected \\[n, d\\]"):
        TextBank.from_texts(["x", "y"]).embed(Broken())
    anonymous = SimpleNamespace(encode_text=FakeModel().encode_text)
    bank = TextBank.from_texts(["x", "y"]).embed(anonymous)
    assert bank.embeddings is not None and bank.embeddings.shape == (2, 8)
    with pytest.raises(ValueError, match="model_id"):
        TextBank.from_texts(["x"]).embed(anonymous, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        TextBank.from_texts(["x"]).embed(FakeModel(), batch_size=0)
