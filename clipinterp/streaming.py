"""Decompose whole datasets to disk: streamed, sharded, resumable, and spread over processes.

``decompose_dataset(model, source, out_dir)`` runs :func:`clipinterp.decompose` batch by batch and
writes ``out_dir/shard_00000.safetensors, ...``; shard ``k`` holds the items
``[k * shard_size, (k + 1) * shard_size)`` (those that could be read) with their indices. Only one
shard is ever in memory, so memory stays flat however large the dataset is.

Layout of ``out_dir``::

    metadata.json            settings (model, weights hash, data fingerprint, preprocessing, ...),
                             "done", and once done the shards' row counts and the skipped items
    shard_00000.safetensors  indices [n] (int64), heads, mlps, embed, bias, norms, tokens
    ...

A shard is written to ``shard_XXXXX.safetensors.tmp``, fsync-ed and renamed into place, so a shard
file exists only when it is complete: after a crash (even ``kill -9``) a rerun with the same
arguments skips the shards that exist and recomputes the rest, giving the same tensors as an
uninterrupted run. Rerunning with another model, other weights, other data or other settings
raises :class:`StoreMismatchError` and touches nothing, unless ``overwrite=True``.

Under ``torchrun`` (``torch.distributed`` initialised, or ``WORLD_SIZE > 1`` and ``RANK`` set) every
rank computes shards ``rank, rank + world, ...``; rank 0 writes the metadata. The reader,
:class:`DecompositionStore`, sees the shards in index order whoever wrote them.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .decompose import _TENSORS, CONVENTIONS, Decomposition, _check_layer, _decompose_batch, concat
from .model.images import as_image_list

if TYPE_CHECKING:
    from .model import HookedCLIP

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pbm"})
FORMAT = "clipinterp.decomposition_store.v1"
METADATA = "metadata.json"
SHARD_BYTES = 1 << 30  # automatic shard size: about 1 GiB of tensors per shard
MAX_SHARD_ITEMS = 4096
HASH_SAMPLES = 4096  # elements sampled from every tensor for the weights hash
FINGERPRINT_ITEMS = 64  # items hashed to fingerprint a dataset without a _fingerprint of its own


class StoreMismatchError(ValueError):
    """``out_dir`` holds a decomposition made with another model, other data or other settings."""


class UnreadableImageError(ValueError):
    """An item of the source could not be read as an image (``on_error="raise"``)."""


# ----------------------------------------------------------------------------- sources
class _Source:
    """Random access to a dataset's images: ``raw(i)`` is a PIL image, an array or a pixel tensor.

    ``items`` is a sequence of paths (``kind`` "folder" or "paths"), a map-style dataset whose
    items are images, tensors, paths, ``(image, label, ...)`` tuples or dicts with an ``"image"``
    key ("dataset"), or a Hugging Face dataset read through ``column`` ("hf")."""

    def __init__(self, items: Any, kind: str, column: Optional[str] = None, root: Optional[Path] = None):
        self.items, self.kind, self.column, self.root = items, kind, column, root

    def __len__(self) -> int:
        return len(self.items)

    def label(self, i: int) -> str:
        return str(self.items[i]) if self.kind in ("folder", "paths") else f"item {i}"

    def raw(self, i: int) -> Any:
        item = self.items[i]
        if self.kind == "hf":
            item = item[self.column]
        if isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, dict):
            item = item["image"]
        if isinstance(item, (str, os.PathLike)):
            with Image.open(item) as image:
                image.load()
            return image
        return item

    def fingerprint(self) -> dict:
        """Paths: their names, sizes and modification times, in order. Datasets: the length, the
        ``_fingerprint`` of Hugging Face datasets, and a hash of ``FINGERPRINT_ITEMS`` evenly spaced
        items (first and last included): a change to other items of a dataset without a
        ``_fingerprint`` goes unseen."""
        if self.kind in ("folder", "paths"):
            digest = hashlib.sha256()
            for path in self.items:
                try:
                    stat = os.stat(path)
                    size, mtime = stat.st_size, stat.st_mtime_ns
                except OSError:
                    size, mtime = -1, -1
                name = Path(path).relative_to(self.root).as_posix() if self.kind == "folder" else str(path)
                digest.update(f"{name}\0{size}\0{mtime}\n".encode())
            return {"kind": self.kind, "n_items": len(self), "files_sha256": digest.hexdigest()}
        sample = np.unique(np.linspace(0, len(self) - 1, min(len(self), FINGERPRINT_ITEMS)).round().astype(int))
        digest = hashlib.sha256("".join(_item_digest(self, int(i)) for i in sample).encode())
        return {"kind": self.kind, "n_items": len(self), "column": self.column,
                "fingerprint": getattr(self.items, "_fingerprint", None), "sample_sha256": digest.hexdigest()}


def _item_digest(source: _Source, i: int) -> str:
    try:
        item = source.raw(i)
    except Exception as error:  # an unreadable first or last item still fingerprints the data
        return f"unreadable: {type(error).__name__}"
    digest = hashlib.sha256()
    if isinstance(item, Image.Image):
        digest.update(f"{item.mode}{item.size}".encode())
        digest.update(item.tobytes())
    elif isinstance(item, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(item)
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    else:
        digest.update(repr(item).encode())
    return digest.hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _resolve_source(source: Any) -> _Source:
    """A folder, a list of paths, a torch ``Dataset`` / ``DataLoader`` or a ``datasets.Dataset``."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder of images (pass a list for single files)")
        paths = sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                       key=lambda p: p.relative_to(root).as_posix())
        if not paths:
            raise ValueError(f"no images in {root} (looked recursively for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return _Source([str(p) for p in paths], "folder", root=root)
    if isinstance(source, torch.utils.data.DataLoader):
        if isinstance(source.sampler, torch.utils.data.RandomSampler):
            warnings.warn("the DataLoader shuffles; decompose_dataset reads its dataset in index order instead",
                          stacklevel=3)
        source = source.dataset
    if isinstance(source, torch.utils.data.IterableDataset) or (hasattr(source, "__iter__") and not hasattr(source, "__len__")):
        raise TypeError("decompose_dataset needs random access to shard and resume: pass a map-style dataset "
                        "(with __len__ and __getitem__), not a stream (IterableDataset, generator, streaming dataset)")
    if type(source).__module__.startswith("datasets.") and hasattr(source, "features"):
        out = _Source(*_hf_column(source))
    elif isinstance(source, Sequence) and len(source) and all(isinstance(p, (str, os.PathLike)) for p in source):
        out = _Source([str(p) for p in source], "paths")
    elif hasattr(source, "__len__") and hasattr(source, "__getitem__"):
        out = _Source(source, "dataset")
    else:
        raise TypeError(f"cannot read images from a {type(source).__name__}: pass a folder, a list of paths, "
                        "a torch Dataset or DataLoader, or a Hugging Face datasets.Dataset")
    if len(out) == 0:
        raise ValueError("the dataset is empty: there is nothing to decompose")
    return out


def _hf_column(dataset: Any) -> tuple[Any, str, str]:
    """The ``image`` column of a Hugging Face dataset, else its first ``Image`` feature."""
    from datasets import Image as ImageFeature

    names = list(dataset.features)
    images = [n for n in names if isinstance(dataset.features[n], ImageFeature)]
    column = "image" if "image" in names else (images[0] if images else None)
    if column is None:
        raise ValueError(f"the dataset has no 'image' column and no Image feature (columns: {names})")
    return dataset.select_columns([column]), "hf", column


class _Items(torch.utils.data.Dataset):
    """Item ``i`` -> ``(i, pixels [c, S, S] or None, error message or None)``, read on the CPU
    (possibly in a DataLoader worker)."""

    def __init__(self, source: _Source, processor: Any, shape: tuple[int, int, int]):
        self.source, self.processor, self.shape = source, processor, shape

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[int, Optional[torch.Tensor], Optional[str]]:
        try:
            return i, self._pixels(self.source.raw(i)), None
        except Exception as error:  # whatever makes an item unreadable: reported, skipped or raised
            return i, None, f"{self.source.label(i)}: {type(error).__name__}: {str(error)[:300]}"

    def _pixels(self, raw: Any) -> torch.Tensor:
        if isinstance(raw, torch.Tensor) and raw.is_floating_point():
            if tuple(raw.shape) != self.shape:
                raise ValueError(f"a pixel tensor of shape {tuple(raw.shape)}; the model takes {self.shape}")
            return raw.cpu()
        if self.processor is None:
            raise TypeError("the model has no image processor, so items must be pixel tensors")
        if isinstance(raw, torch.Tensor):
            raw = raw.numpy()
        return self.processor(images=as_image_list(raw), return_tensors="pt")["pixel_values"][0]


# ----------------------------------------------------------------------------- identity of a run
def weights_hash(model: "HookedCLIP") -> str:
    """sha256 over every vision tensor's name, shape and dtype, and ``HASH_SAMPLES`` evenly strided
    elements of each. Reading a fixed number of elements per tensor costs the same (milliseconds)
    for ViT-B and ViT-H, and any other checkpoint, fine-tune or dtype changes it; only an edit of
    single elements between the sampled ones would go unnoticed."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("text."):
            continue
        flat = tensor.reshape(-1)
        step = max(1, flat.numel() // HASH_SAMPLES)
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(_tensor_bytes(flat[::step][:HASH_SAMPLES]))
    return digest.hexdigest()


def _model_identity(model) -> dict:
    from .interventions import InterventionModel

    hooked = sorted(name for name, point in model.hook_dict.items() if point._forward_hooks)
    return {"name": model.cfg.model_name, "weights_sha256": weights_hash(model), "dtype": str(model.dtype),
            "interventions": model.describe() if isinstance(model, InterventionModel) else None,
            "hooked_points": hooked}


def _preprocessing(model) -> Optional[dict]:
    processor = model.processor
    return json.loads(processor.to_json_string()) if processor is not None else None


def _auto_shard_size(cfg, n_token_layers: int, dtype: torch.dtype) -> int:
    """Items per shard for about ``SHARD_BYTES`` of tensors, at most ``MAX_SHARD_ITEMS``."""
    values = cfg.d_embed * (cfg.n_layers * (cfg.n_heads + 1) + 2 + n_token_layers * cfg.n_heads * cfg.n_ctx)
    per_item = values * torch.empty((), dtype=dtype).element_size() + 8
    return int(max(1, min(MAX_SHARD_ITEMS, SHARD_BYTES // per_item)))


# ----------------------------------------------------------------------------- files
def _shard_path(out_dir: Path, k: int) -> Path:
    return out_dir / f"shard_{k:05d}.safetensors"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to ``path.tmp``, flush to disk, then rename: ``path`` is never seen half-written."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=1).encode())


def _own_files(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.glob("shard_*.safetensors*")] + [p for p in out_dir.glob(METADATA + "*")]


def _leaves(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _describe_difference(old: dict, new: dict) -> str:
    def short(value: Any) -> str:
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 100 else text[:97] + "..."

    old, new = _leaves(old), _leaves(new)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: stored {short(old.get(k))}, now {short(new.get(k))}" for k in keys)


def _prepare(out_dir: Path, settings: dict, n_shards: int, overwrite: bool) -> dict:
    """Check ``out_dir`` against ``settings`` and return its metadata: the stored one to resume, or
    a fresh one (``overwrite=True`` clears this module's files first). Raises
    :class:`StoreMismatchError` rather than reuse or overwrite a store made differently."""
    meta_path = out_dir / METADATA
    if meta_path.exists() and not overwrite:
        stored = json.loads(meta_path.read_text())
        if stored.get("settings") == settings:
            return stored
        raise StoreMismatchError(
            f"{out_dir} holds a decomposition made differently ({_describe_difference(stored.get('settings') or {}, settings)}). "
            "Nothing was changed: use another out_dir, or overwrite=True to replace it.")
    if out_dir.exists() and any(out_dir.glob("shard_*.safetensors")) and not overwrite:
        raise StoreMismatchError(f"{out_dir} holds shard files but no {METADATA}: not a store this version wrote. "
                                 "Nothing was changed: use another out_dir, or overwrite=True to replace them.")
    if out_dir.exists():
        for path in _own_files(out_dir):
            path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "settings": settings, "n_shards": n_shards, "done": False}
    _write_json(meta_path, meta)
    return meta


def _finish(out_dir: Path, meta: dict) -> dict:
    """Collect every shard's row count and skipped items into the metadata and mark it done."""
    from safetensors import safe_open

    shards, errors = [], {}
    for k in range(meta["n_shards"]):
        with safe_open(str(_shard_path(out_dir, k)), "pt") as f:
            info = json.loads(f.metadata()["clipinterp"])
        shards.append({"file": _shard_path(out_dir, k).name, "start": info["start"], "stop": info["stop"],
                       "rows": info["rows"]})
        errors.update(info["errors"])
    n_rows = sum(s["rows"] for s in shards)
    if n_rows == 0:
        first = next(iter(errors.values()))
        raise ValueError(f"none of the {len(errors)} items could be decomposed; the first error: {first}")
    meta = {**meta, "done": True, "n_rows": n_rows, "shards": shards,
            "skipped": sorted(int(i) for i in errors), "errors": errors}
    _write_json(out_dir / METADATA, meta)
    return meta


# ----------------------------------------------------------------------------- processes
def _distributed(model) -> tuple[int, int, bool]:
    """``(rank, world_size, whether this call initialised the process group)``."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        if model.device.type == "cuda":
            torch.cuda.set_device(model.device)
        dist.init_process_group("nccl" if model.device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def _on_rank0(fn: Callable[[], Any], world: int) -> Any:
    """Run ``fn`` on rank 0 and hand its result (or its exception, raised everywhere) to every rank."""
    if world == 1:
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = (fn(), None)
        except Exception as error:  # re-raised on every rank below, so none is left waiting
            box[0] = (None, error)
    dist.broadcast_object_list(box, src=0)
    result, error = box[0]
    if error is not None:
        raise error
    return result


def _check_same_everywhere(settings: dict, world: int) -> None:
    if world == 1:
        return
    import torch.distributed as dist

    every = [None] * world
    dist.all_gather_object(every, settings)
    differ = [r for r, s in enumerate(every) if s != every[0]]
    if differ:
        raise StoreMismatchError(f"ranks {differ} see other data, weights or settings than rank 0 "
                                 f"({_describe_difference(every[0], every[differ[0]])})")


# ----------------------------------------------------------------------------- the driver
@dataclass
class _Job:
    """What every shard of one run shares."""

    model: "HookedCLIP"
    source: _Source
    out_dir: Path
    shard_size: int
    batch_size: int
    convention: str
    normalize: bool
    token_layers: list[int]
    on_error: str
    num_workers: int

    def bounds(self, k: int) -> tuple[int, int]:
        """Items ``[start, stop)`` of shard ``k``."""
        return k * self.shard_size, min(len(self.source), (k + 1) * self.shard_size)


def decompose_dataset(model: "HookedCLIP", source: Any, out_dir: Union[str, Path], *, batch_size: int = 32,
                      shard_size: Optional[int] = None, convention: str = "split", normalize: bool = False,
                      tokens: bool = False, layers: Optional[Sequence[int]] = None, on_error: str = "skip",
                      overwrite: bool = False, num_workers: int = 0, progress: bool = True) -> "DecompositionStore":
    """Decompose every image of ``source`` into sharded safetensors under ``out_dir`` and return
    the (memory-mapped) :class:`DecompositionStore`. Row ``r`` of the store is item
    ``store.indices[r]`` of the source; unreadable items are left out.

    ``source``: a folder (searched recursively for image files, in sorted order), a list of paths, a
    torch ``Dataset`` or ``DataLoader`` (its dataset, in index order; items are PIL images, arrays,
    pixel tensors ``[c, S, S]``, paths, or tuples whose first element is one), or a Hugging Face
    ``datasets.Dataset`` (its ``image`` column, else its first ``Image`` feature).
    ``shard_size``: items per shard (default: about 1 GiB of tensors per shard, at most 4096).
    ``convention``, ``normalize``, ``tokens``, ``layers``: as in :func:`clipinterp.decompose`.
    ``on_error``: ``"skip"`` unreadable images (a warning; ``store.skipped`` lists them) or
    ``"raise"`` :class:`UnreadableImageError`. ``num_workers``: DataLoader processes reading and
    preprocessing images. Rerunning with the same arguments resumes (or just reopens) the store;
    one made with another model, data or settings raises :class:`StoreMismatchError`.
    ``overwrite=True`` starts afresh, replacing whatever store is in ``out_dir``.
    """
    from . import __version__

    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if batch_size < 1 or (shard_size is not None and shard_size < 1):
        raise ValueError(f"batch_size and shard_size must be positive, got {batch_size} and {shard_size}")
    cfg = model.cfg
    token_layers = sorted(set(layers)) if layers is not None else list(range(cfg.n_layers))
    for layer in token_layers:
        _check_layer(layer, cfg.n_layers)
    token_layers = token_layers if tokens else []
    src = _resolve_source(source)
    job = _Job(model, src, Path(out_dir), shard_size or _auto_shard_size(cfg, len(token_layers), model.dtype),
               batch_size, convention, normalize, token_layers, on_error, num_workers)
    n_shards = -(-len(src) // job.shard_size)

    rank, world, initialised = _distributed(model)
    try:
        settings = json.loads(json.dumps({
            "clipinterp_version": __version__, "model": _model_identity(model), "data": src.fingerprint(),
            "preprocessing": _preprocessing(model), "convention": convention, "normalize": normalize,
            "tokens": tokens, "token_layers": token_layers, "shard_size": job.shard_size}))
        _check_same_everywhere(settings, world)
        meta = _on_rank0(lambda: _prepare(job.out_dir, settings, n_shards, overwrite), world)
        bad = [k for k in range(n_shards) if not _shard_ok(job.out_dir, k, job.bounds(k), warn=rank == 0)]
        if not meta["done"] or bad:
            todo = [k for k in bad if k % world == rank]
            _run_shards(job, todo, rank, progress and rank == 0)
            if world > 1:
                torch.distributed.barrier()
            meta = _on_rank0(lambda: _finish(job.out_dir, meta), world)
    finally:
        if initialised:
            torch.distributed.destroy_process_group()
    if meta["skipped"] and rank == 0:
        first = meta["errors"][str(meta["skipped"][0])]
        warnings.warn(f"skipped {len(meta['skipped'])} of {len(src)} items that could not be read (store.skipped "
                      f"lists them); the first: {first}", stacklevel=2)
    return DecompositionStore(job.out_dir)


def _run_shards(job: _Job, todo: list[int], rank: int, progress: bool) -> None:
    """Decompose and write the shards ``todo``, one at a time; batches never straddle shards."""
    batches = [list(range(s, min(s + job.batch_size, job.bounds(k)[1])))
               for k in todo for s in range(*job.bounds(k), job.batch_size)]
    cfg = job.model.cfg
    items = _Items(job.source, job.model.processor, (cfg.n_channels, cfg.image_size, cfg.image_size))
    loader = torch.utils.data.DataLoader(items, batch_sampler=batches, num_workers=job.num_workers, collate_fn=list)
    shards = iter(todo)
    k = next(shards, None)
    parts: list[Decomposition] = []
    indices: list[int] = []
    errors: dict[str, str] = {}
    with tqdm(total=sum(len(b) for b in batches), desc="decompose", unit="img", disable=not progress) as bar:
        for batch in loader:
            for i, _, error in batch:
                if error is not None and job.on_error == "raise":
                    raise UnreadableImageError(f"cannot read item {i} ({error})")
                if error is not None:
                    errors[str(i)] = error
            good = [(i, pixels) for i, pixels, error in batch if error is None]
            if good:
                pixels = job.model.to_pixels(torch.stack([p for _, p in good]))
                parts.append(_decompose_batch(job.model, pixels, job.convention, job.normalize,
                                              job.token_layers).to("cpu"))
                indices += [i for i, _ in good]
            bar.update(len(batch))
            if batch[-1][0] == job.bounds(k)[1] - 1:  # the shard's last batch
                _save_shard(job.out_dir, k, job.bounds(k), parts, indices, errors, rank)
                parts, indices, errors = [], [], {}
                k = next(shards, None)


def _shard_ok(out_dir: Path, k: int, bounds: tuple[int, int], warn: bool) -> bool:
    """Whether shard ``k`` is on disk, readable and covers ``bounds``; a damaged one is warned about
    (it will be computed again)."""
    from safetensors import safe_open

    path = _shard_path(out_dir, k)
    if not path.exists():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            info = json.loads(f.metadata()["clipinterp"])
        if (info["shard"], info["start"], info["stop"]) == (k, *bounds):
            return True
        problem = f"it covers items {info['start']}..{info['stop']}, not {bounds[0]}..{bounds[1]}"
    except Exception as error:  # a truncated or foreign file
        problem = f"{type(error).__name__}: {error}"
    if warn:
        warnings.warn(f"{path.name} is damaged ({problem}); computing it again", stacklevel=3)
    return False


def _save_shard(out_dir: Path, k: int, bounds: tuple[int, int], parts: list[Decomposition], indices: list[int],
                errors: dict[str, str], rank: int) -> None:
    from safetensors.torch import save

    tensors = {"indices": torch.tensor(indices, dtype=torch.int64)}
    for name in _TENSORS:
        if parts and getattr(parts[0], name) is not None:
            tensors[name] = torch.cat([getattr(p, name) for p in parts]).contiguous()
    info = {"shard": k, "start": bounds[0], "stop": bounds[1], "rows": len(indices), "rank": rank, "errors": errors}
    write_atomic(_shard_path(out_dir, k), save(tensors, metadata={"clipinterp": json.dumps(info)}))


# ----------------------------------------------------------------------------- the reader
def _column(name: str) -> property:
    return property(lambda self: self._read(name), doc=f"``{name}`` of every stored image, read from the shards.")


class DecompositionStore:
    """A decomposition on disk, read lazily: shards are memory-mapped with ``safetensors.safe_open``
    and only the rows asked for are read. ``store[a:b]`` (or an int, or a list of rows) is a
    :class:`Decomposition`; ``store.heads`` etc. read one tensor for all rows; ``store.indices``
    ``[n]`` are the rows' item indices in the source; ``store.skipped`` the unreadable items."""

    heads = _column("heads")
    mlps = _column("mlps")
    embed = _column("embed")
    bias = _column("bias")
    norms = _column("norms")
    indices = _column("indices")

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        meta_path = self.path / METADATA
        if not meta_path.exists():
            raise FileNotFoundError(f"no decomposition store at {self.path} (no {METADATA})")
        self.metadata = json.loads(meta_path.read_text())
        if self.metadata.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a {FORMAT} store (format {self.metadata.get('format')!r})")
        if not self.metadata["done"]:
            raise ValueError(f"the decomposition in {self.path} is incomplete: rerun decompose_dataset with the same "
                             "arguments to resume it")
        shards = [s for s in self.metadata["shards"] if s["rows"]]
        self._files = [str(self.path / s["file"]) for s in shards]
        self._starts = torch.tensor([0] + [s["rows"] for s in shards]).cumsum(0)

    @property
    def settings(self) -> dict:
        return self.metadata["settings"]

    @property
    def tokens(self) -> Optional[torch.Tensor]:
        """``[N, len(token_layers), H, T, d]``, or None when the store was made without tokens."""
        return self._read("tokens") if self.settings["tokens"] else None

    @property
    def skipped(self) -> list[int]:
        return self.metadata["skipped"]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _read(self, name: str, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rows ``rows`` (global positions, any order; default all) of tensor ``name``."""
        from safetensors import safe_open

        rows = torch.arange(len(self)) if rows is None else rows.contiguous()
        which = torch.searchsorted(self._starts, rows, right=True) - 1
        pieces, order = [], []
        for k in which.unique().tolist() or [0]:
            mask = which == k
            local = rows[mask] - self._starts[k]
            lo, hi = (int(local.min()), int(local.max()) + 1) if len(local) else (0, 0)
            try:
                with safe_open(self._files[k], "pt") as f:
                    pieces.append(f.get_slice(name)[lo:hi][local - lo])
            except Exception as error:
                raise ValueError(f"cannot read {self._files[k]} ({type(error).__name__}: {error}); run "
                                 "decompose_dataset again on the same source and folder to recompute it") from error
            order.append(mask.nonzero()[:, 0])
        return torch.cat(pieces)[torch.cat(order).argsort()]

    def __getitem__(self, key: Union[int, slice, Sequence[int], torch.Tensor]) -> Decomposition:
        rows = torch.arange(len(self))[key].reshape(-1)
        s = self.settings
        return Decomposition(**{n: self._read(n, rows) for n in _TENSORS if n != "tokens" or s["tokens"]},
                             convention=s["convention"], normalized=s["normalize"], token_layers=s["token_layers"],
                             model_name=s["model"]["name"])

    def shards(self) -> Iterator[Decomposition]:
        """The stored rows shard by shard (one shard in memory at a time)."""
        for start, stop in zip(self._starts[:-1].tolist(), self._starts[1:].tolist()):
            yield self[start:stop]

    def to_decomposition(self) -> Decomposition:
        """Every row in memory as one :class:`Decomposition`."""
        return self[:]

    def project(self, text_embeddings: torch.Tensor) -> Decomposition:
        """:meth:`Decomposition.project` shard by shard: only ``[N, ..., M]`` scores are kept."""
        return concat([part.project(text_embeddings) for part in self.shards()])

    def __repr__(self) -> str:
        s = self.settings
        tok = f", tokens for layers {s['token_layers']}" if s["tokens"] else ""
        return (f"DecompositionStore({self.path}: {len(self)} images in {len(self._files)} shards, "
                f"{len(self.skipped)} skipped, model {s['model']['name']!r}, convention={s['convention']!r}, "
                f"normalized={s['normalize']}{tok})")


def load_decomposition(path: Union[str, Path]) -> DecompositionStore:
    """Open a store written by :func:`decompose_dataset` (lazily; see :class:`DecompositionStore`)."""
    return DecompositionStore(path)
