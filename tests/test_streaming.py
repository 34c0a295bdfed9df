"""decompose_dataset: every kind of source, shards that match decompose, unreadable images, resuming
after kill -9, refusing foreign stores, and two torchrun processes giving the single-process result."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch
from PIL import Image

import clipinterp
from _torchrun_worker import SyntheticImages
from clipinterp.decompose import _TENSORS, decompose
from clipinterp.interventions import zero
from clipinterp.streaming import (DecompositionStore, StoreMismatchError, UnreadableImageError, decompose_dataset,
                                  load_decomposition, weights_hash)

WORKER = str(Path(__file__).with_name("_torchrun_worker.py"))


def image(seed: int, size=(36, 44)) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (*size, 3), dtype=np.uint8))


@pytest.fixture()
def folder(tmp_path) -> Path:
    """Seven images over two levels (PNG and JPEG), one corrupt ``.png`` and a text file."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        image(i).save(root / f"a{i}.png")
    for i in range(4, 7):
        image(i).save(root / "sub" / f"b{i}.JPG", quality=95)
    (root / "broken.png").write_bytes(b"not an image")
    (root / "notes.txt").write_text("ignored")
    return root


def quiet(*args, **kwargs):
    return decompose_dataset(*args, progress=False, **kwargs)


def assert_same(a, b) -> None:
    for name in _TENSORS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        assert x is None or torch.equal(x, y), name


def test_folder_store_matches_decompose_and_skips_unreadable(tiny, folder, tmp_path, monkeypatch):
    with pytest.warns(UserWarning, match=r"skipped 1 of 8 .*broken\.png"):
        store = quiet(tiny, folder, tmp_path / "out", batch_size=2, shard_size=3, tokens=True, layers=[1])
    files = ["a0.png", "a1.png", "a2.png", "a3.png", "broken.png", "sub/b4.JPG", "sub/b5.JPG", "sub/b6.JPG"]
    assert store.skipped == [4] and store.indices.tolist() == [0, 1, 2, 3, 5, 6, 7] and len(store) == 7
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["metadata.json", "shard_00000.safetensors", "shard_00001.safetensors", "shard_00002.safetensors"]
    reference = decompose(tiny, [Image.open(folder / f) for f in files if f != "broken.png"], tokens=True, layers=[1],
                          progress=False)
    full = store.to_decomposition()
    assert full.token_layers == [1] and full.model_name == tiny.cfg.model_name
    for name in _TENSORS:
        torch.testing.assert_close(getattr(full, name), getattr(reference, name), rtol=1e-5, atol=1e-6)
    for key in (slice(2, 6), [6, 0, 3], -1, slice(None, None, 3)):
        rows = torch.arange(7)[key].reshape(-1)
        part = store[key]
        assert torch.equal(part.heads, full.heads[rows]) and torch.equal(part.tokens, full.tokens[rows])
    assert torch.equal(store.mlps, full.mlps) and torch.equal(store.norms, full.norms)
    opened = []
    real_open = safetensors.safe_open
    monkeypatch.setattr(safetensors, "safe_open", lambda path, *a, **k: opened.append(Path(path).name) or real_open(path, *a, **k))
    assert torch.equal(store[3:5].embed, full.embed[3:5])  # items 3 and 5: shard 1 alone
    assert opened == ["shard_00001.safetensors"] * len(_TENSORS)
    monkeypatch.undo()
    text = torch.randn(5, 24)
    assert torch.equal(store.project(text).heads, torch.cat([s.project(text).heads for s in store.shards()]))
    torch.testing.assert_close(store.project(text).heads, full.project(text).heads)

    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    settings = meta["settings"]
    assert meta["done"] and meta["skipped"] == [4] and "broken.png" in meta["errors"]["4"]
    assert settings["model"]["name"] == tiny.cfg.model_name and settings["model"]["weights_sha256"] == weights_hash(tiny)
    assert settings["preprocessing"]["crop_size"] == {"height": 32, "width": 32}
    assert settings["data"]["n_items"] == 8 and settings["shard_size"] == 3 and settings["token_layers"] == [1]
    assert settings["clipinterp_version"] == clipinterp.__version__
    assert repr(load_decomposition(tmp_path / "out")).startswith("DecompositionStore(")


def test_unreadable_image_can_raise(tiny, folder, tmp_path):
    with pytest.raises(UnreadableImageError, match=r"broken\.png"):
        quiet(tiny, folder, tmp_path / "out", on_error="raise")


def test_every_source_kind_gives_the_same_rows(tiny, tmp_path):
    import datasets

    images = [image(i) for i in range(5)]
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    pairs = SyntheticImages(5)  # (image, label) tuples
    expected = quiet(tiny, pairs, tmp_path / "pairs", batch_size=2).to_decomposition()
    reference = decompose(tiny, [pairs[i][0] for i in range(5)], progress=False)
    torch.testing.assert_close(expected.heads, reference.heads, rtol=1e-5, atol=1e-6)

    hf = datasets.Dataset.from_dict({"label": [0] * 5, "picture": [pairs[i][0] for i in range(5)]},
                                    features=datasets.Features({"label": datasets.Value("int64"),
                                                                "picture": datasets.Image()}))
    pixels = [tiny.preprocess(pairs[i][0])[0] for i in range(5)]
    sources = {"hf": hf, "pixels": pixels, "loader": torch.utils.data.DataLoader(pairs, batch_size=3),
               "workers": torch.utils.data.DataLoader(pairs)}
    for name, source in sources.items():
        store = quiet(tiny, source, tmp_path / name, batch_size=2, num_workers=2 if name == "workers" else 0)
        assert_same(store.to_decomposition(), expected)
    assert quiet(tiny, [str(p) for p in paths], tmp_path / "paths").settings["data"]["kind"] == "paths"


def test_shuffling_loader_warns_that_order_is_the_datasets(tiny, tmp_path):
    loader = torch.utils.data.DataLoader(SyntheticImages(3), shuffle=True)
    with pytest.warns(UserWarning, match="shuffles"):
        store = quiet(tiny, loader, tmp_path / "out")
    assert store.indices.tolist() == [0, 1, 2]


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_rerun_resumes_and_foreign_stores_are_refused(tiny, tmp_path):
    out = tmp_path / "out"
    original = quiet(tiny, SyntheticImages(6), out, shard_size=4).to_decomposition()
    before = snapshot(out)
    assert_same(quiet(tiny, SyntheticImages(6), out, shard_size=4, batch_size=5).to_decomposition(), original)
    assert snapshot(out) == before  # done: nothing recomputed or rewritten

    refused = {
        "normalize": lambda: quiet(tiny, SyntheticImages(6), out, shard_size=4, normalize=True),
        "n_items": lambda: quiet(tiny, SyntheticImages(7), out, shard_size=4),
        "interventions": lambda: quiet(tiny.with_interventions(zero("L1.H0")), SyntheticImages(6), out, shard_size=4),
    }
    for field, run in refused.items():
        with pytest.raises(StoreMismatchError, match=field):
            run()
    other = clipinterp.load(tiny.cfg.model_name)
    with torch.no_grad():
        other.blocks[1].mlp.W_out.mul_(1.01)
    with pytest.raises(StoreMismatchError, match="weights_sha256.*overwrite=True"):
        quiet(other, SyntheticImages(6), out, shard_size=4)
    assert snapshot(out) == before

    replaced = quiet(other, SyntheticImages(6), out, shard_size=4, overwrite=True)
    assert replaced.settings["model"]["weights_sha256"] == weights_hash(other) != weights_hash(tiny)
    assert not torch.equal(replaced.mlps, original.mlps)

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "shard_00000.safetensors").write_bytes(b"someone else's")
    with pytest.raises(StoreMismatchError, match="no metadata.json"):
        quiet(tiny, SyntheticImages(2), stray)
    assert (stray / "shard_00000.safetensors").read_bytes() == b"someone else's"


def test_changed_items_and_damaged_shards_are_caught(tiny, tmp_path):
    out = tmp_path / "out"
    images = [image(i) for i in range(6)]
    original = quiet(tiny, images, out, shard_size=4).to_decomposition()
    changed = images[:2] + [image(10 + i) for i in range(2, 5)] + images[5:]  # first and last items unchanged
    with pytest.raises(StoreMismatchError, match="sample_sha256"):
        quiet(tiny, changed, out, shard_size=4)
    shard = out / "shard_00000.safetensors"
    shard.write_bytes(shard.read_bytes()[: len(shard.read_bytes()) // 2])  # a damaged file
    with pytest.raises(ValueError, match="cannot read .*shard_00000.safetensors.*recompute"):
        DecompositionStore(out).to_decomposition()
    with pytest.warns(UserWarning, match="shard_00000.safetensors is damaged"):
        again = quiet(tiny, images, out, shard_size=4)
    assert_same(again.to_decomposition(), original)


def test_edited_model_is_decomposed_with_its_edits(tiny, tmp_path):
    edited = tiny.with_interventions(zero("L1.H0"))
    store = quiet(edited, SyntheticImages(3), tmp_path / "out")
    images = [SyntheticImages(3)[i][0] for i in range(3)]
    torch.testing.assert_close(store.heads, decompose(edited, images, progress=False).heads, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(store.heads, decompose(tiny, images, progress=False).heads, atol=1e-3)
    assert store.settings["model"]["interventions"] == "zero(L1.H0)"


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([image(0)])


def test_bad_sources_and_arguments_fail_clearly(tiny, tmp_path):
    empty = tmp_path / "empty"
    (empty / "nested").mkdir(parents=True)
    (empty / "readme.md").write_text("no images")
    cases = [
        (ValueError, "no images in", dict(source=empty)),
        (FileNotFoundError, "not a folder", dict(source=tmp_path / "missing")),
        (ValueError, "empty", dict(source=[])),
        (ValueError, "empty", dict(source=SyntheticImages(0))),
        (ValueError, "none of the 2 items", dict(source=SyntheticImages(2, bad=(0, 1)))),
        (TypeError, "IterableDataset", dict(source=Stream())),
        (TypeError, "generator", dict(source=(image(i) for i in range(2)))),
        (TypeError, "cannot read images from a int", dict(source=3)),
        (ValueError, "on_error", dict(source=SyntheticImages(2), on_error="ignore")),
        (ValueError, "convention", dict(source=SyntheticImages(2), convention="mean")),
        (ValueError, "out of range", dict(source=SyntheticImages(2), tokens=True, layers=[3])),
    ]
    for i, (error, message, kwargs) in enumerate(cases):
        with pytest.raises(error, match=message):
            quiet(tiny, out_dir=tmp_path / f"out{i}", **kwargs)
    with pytest.raises(ValueError, match="incomplete"):
        DecompositionStore(tmp_path / "out4")
    with pytest.raises(FileNotFoundError, match="no decomposition store"):
        DecompositionStore(tmp_path / "missing")


def test_killed_run_resumes_after_its_last_complete_shard(tiny, tiny_folder, tmp_path):
    """SIGKILL a real process partway; the rerun keeps its complete shards and ends identical to an
    uninterrupted run."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, WORKER, "--model", str(tiny_folder), "--out", str(out), "--n-items", "12",
                             "--shard-size", "3", "--delay", "0.3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # a guard against a hung worker, not a timing check
        while not (out / "shard_00001.safetensors").exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the worker wrote no shards"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not json.loads((out / "metadata.json").read_text())["done"]
    assert not (out / "shard_00003.safetensors").exists()
    with pytest.raises(ValueError, match="incomplete"):
        DecompositionStore(out)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard_*.safetensors")}
    assert {"shard_00000.safetensors", "shard_00001.safetensors"} <= set(kept)

    kwargs = dict(batch_size=2, shard_size=3, tokens=True, layers=[2])
    resumed = quiet(tiny, SyntheticImages(12), out, **kwargs)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard_*.safetensors") if p.name in kept} == kept
    assert not list(out.glob("*.tmp"))
    uninterrupted = quiet(tiny, SyntheticImages(12), tmp_path / "straight", **kwargs)
    assert len(resumed) == 12 and torch.equal(resumed.indices, uninterrupted.indices)
    assert_same(resumed.to_decomposition(), uninterrupted.to_decomposition())


def test_two_torchrun_processes_merge_to_the_single_process_result(tiny, tiny_folder, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    out = tmp_path / "dist"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(WORKER).parent), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "--monitor-interval", "0.1", WORKER,
                          "--model", str(tiny_folder), "--out", str(out), "--n-items", "10", "--shard-size", "2",
                          "--bad", "7"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    from safetensors import safe_open

    writers = []
    for k in range(5):
        with safe_open(str(out / f"shard_{k:05d}.safetensors"), "pt") as f:
            writers.append(json.loads(f.metadata()["clipinterp"])["rank"])
    assert writers == [0, 1, 0, 1, 0]
    merged = DecompositionStore(out)
    with pytest.warns(UserWarning, match="skipped 1"):
        single = quiet(tiny, SyntheticImages(10, bad=(7,)), tmp_path / "single", batch_size=2, shard_size=2,
                       tokens=True, layers=[2])
    assert merged.skipped == single.skipped == [7]
    assert torch.equal(merged.indices, single.indices)
    assert_same(merged.to_decomposition(), single.to_decomposition())
