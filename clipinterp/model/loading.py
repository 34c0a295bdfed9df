"""``clipinterp.load``: transformers and open_clip checkpoints into a :class:`HookedCLIP`.

Every source takes one path: find the files (a local folder, a file pair, or the Hugging Face hub,
failing fast when offline), read the state dict, convert it to the hooked tower's parameter names
(``load_state_dict(strict=True)`` checks that nothing is missing or left over), attach the
checkpoint's own text tower, tokenizer and image processor.
"""
from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union
from urllib.parse import urlparse

import torch

from ..errors import unknown_name
from .config import ACTIVATIONS, HookedCLIPConfig
from .hooked_clip import HookedCLIP
from .registry import ALIASES, MODELS
from .text import TextTower

OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class OfflineError(RuntimeError):
    """The checkpoint is not cached and the hub cannot be reached."""


def data_dir() -> Path:
    """The project's data folder (``CLIPINTERP_DATA`` overrides)."""
    return Path(os.environ.get("CLIPINTERP_DATA", Path(__file__).resolve().parents[2] / "data"))


# ------------------------------------------------------------------------- finding files
def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return flag or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    url = urlparse(getattr(constants, "ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def fetch_from_hub(repo_id: str, patterns: list[str], weights: Sequence[str] = ()) -> Path:
    """Local snapshot folder of ``repo_id`` with the files matching ``patterns``: from the cache if
    there, else downloaded; offline and not cached fails in seconds with what to do. A cached
    snapshot without any of the file names ``weights`` (one left by a processor or tokenizer
    download, say) counts as not cached."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
        if not weights or any((folder / name).exists() for name in weights):
            return folder
    except Exception:  # not (fully) cached
        pass
    if _hub_offline() or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if _hub_offline() else "the Hugging Face hub cannot be reached"
        raise OfflineError(
            f"cannot load {repo_id!r}: it is not in the Hugging Face cache and {why}. Either run once "
            f"with internet (or `huggingface-cli download {repo_id}`) to cache it, point HF_HOME at a "
            "cache that has it, or pass clipinterp.load a local folder holding the checkpoint.")
    return Path(snapshot_download(repo_id, allow_patterns=patterns))


def _read_state_dict(folder: Path, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The first of ``names`` found in ``folder`` (safetensors, torch .bin, or a sharded index)."""
    from safetensors.torch import load_file

    for name in names:
        path = folder / name
        if not path.exists():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_read_one(folder / shard, load_file))
            return state
        return _read_one(path, load_file)
    raise FileNotFoundError(f"no weights in {folder}: expected one of {', '.join(names)}")


def _read_one(path: Path, load_file) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------- conversions
def _heads_first(weight_t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[d_in, n_heads * d_head]`` -> ``[d_in, n_heads, d_head]``."""
    return weight_t.reshape(weight_t.shape[0], n_heads, -1)


def _block_state(cfg: HookedCLIPConfig, i: int, ln1, qkv_w, qkv_b, out_w, out_b, ln2, fc_w, fc_b, proj_w, proj_b,
                 ls1=None, ls2=None) -> dict[str, torch.Tensor]:
    """One block's hooked parameters from nn.Linear-layout weights (``[out, in]``); LayerScale
    gammas, when present, are folded into the out-projections (exact: they scale linear maps)."""
    if ls1 is not None:
        out_w, out_b = out_w * ls1[:, None], out_b * ls1
    if ls2 is not None:
        proj_w, proj_b = proj_w * ls2[:, None], proj_b * ls2
    H, k, d = cfg.n_heads, cfg.d_head, cfg.d_model
    p = f"blocks.{i}."
    return {
        p + "ln1.w": ln1[0], p + "ln1.b": ln1[1], p + "ln2.w": ln2[0], p + "ln2.b": ln2[1],
        p + "attn.W_QKV": qkv_w.T.reshape(d, 3, H, k), p + "attn.b_QKV": qkv_b.reshape(3, H, k),
        p + "attn.W_O": out_w.T.reshape(H, k, d), p + "attn.b_O": out_b,
        p + "mlp.W_in": fc_w.T, p + "mlp.b_in": fc_b, p + "mlp.W_out": proj_w.T, p + "mlp.b_out": proj_b,
    }


def hf_vision_state(sd: dict[str, torch.Tensor], cfg: HookedCLIPConfig) -> dict[str, torch.Tensor]:
    """transformers ``CLIPModel`` / ``CLIPVisionModelWithProjection`` keys -> hooked parameters."""
    v = "vision_model."
    state = {
        "embed.W_patch": sd[v + "embeddings.patch_embedding.weight"],
        "embed.class_embedding": sd[v + "embeddings.class_embedding"],
        "embed.W_pos": sd[v + "embeddings.position_embedding.weight"],
        "ln_pre.w": sd[v + "pre_layrnorm.weight"], "ln_pre.b": sd[v + "pre_layrnorm.bias"],
        "ln_final.w": sd[v + "post_layernorm.weight"], "ln_final.b": sd[v + "post_layernorm.bias"],
        "W_proj": sd["visual_projection.weight"].T,
    }
    for i in range(cfg.n_layers):
        p = f"{v}encoder.layers.{i}."
        a = p + "self_attn."
        state.update(_block_state(
            cfg, i,
            (sd[p + "layer_norm1.weight"], sd[p + "layer_norm1.bias"]),
            torch.cat([sd[a + f"{n}_proj.weight"] for n in "qkv"]), torch.cat([sd[a + f"{n}_proj.bias"] for n in "qkv"]),
            sd[a + "out_proj.weight"], sd[a + "out_proj.bias"],
            (sd[p + "layer_norm2.weight"], sd[p + "layer_norm2.bias"]),
            sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"], sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"]))
    return state


def open_clip_vision_state(sd: dict[str, torch.Tensor], cfg: HookedCLIPConfig) -> dict[str, torch.Tensor]:
    """open_clip ``visual.*`` keys -> hooked parameters (LayerScale folded in)."""
    v = "visual."
    state = {
        "embed.W_patch": sd[v + "conv1.weight"],
        "embed.class_embedding": sd[v + "class_embedding"],
        "embed.W_pos": sd[v + "positional_embedding"],
        "ln_pre.w": sd[v + "ln_pre.weight"], "ln_pre.b": sd[v + "ln_pre.bias"],
        "ln_final.w": sd[v + "ln_post.weight"], "ln_final.b": sd[v + "ln_post.bias"],
        "W_proj": sd[v + "proj"],
    }
    for i in range(cfg.n_layers):
        p = f"{v}transformer.resblocks.{i}."
        state.update(_block_state(
            cfg, i,
            (sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]),
            sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"],
            sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"],
            (sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]),
            sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"], sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"],
            sd.get(p + "ls_1.gamma"), sd.get(p + "ls_2.gamma")))
    return state


def _image_processor(folder: Optional[Path], cfg: HookedCLIPConfig):
    """transformers' CLIP image processor with the PIL backend (no torchvision needed)."""
    from transformers import CLIPImageProcessorPil

    if folder is not None and (folder / "preprocessor_config.json").exists():
        return CLIPImageProcessorPil.from_pretrained(str(folder))
    return CLIPImageProcessorPil(size={"shortest_edge": cfg.image_size},
                                 crop_size={"height": cfg.image_size, "width": cfg.image_size},
                                 image_mean=list(cfg.image_mean), image_std=list(cfg.image_std), do_convert_rgb=True)


def _tokenizer(source: Union[str, Path, None]):
    from transformers import AutoTokenizer

    if source is None:
        return None
    if isinstance(source, Path) and not any((source / f).exists() for f in TOKENIZER_FILES[:2]):
        return None
    return AutoTokenizer.from_pretrained(str(source))


def _build(cfg: HookedCLIPConfig, state: dict[str, torch.Tensor], text: TextTower, processor) -> HookedCLIP:
    model = HookedCLIP(cfg, text=text, processor=processor)
    dtype = cfg.dtype or torch.float32
    model.load_state_dict({k: v.to(torch.float32).contiguous() for k, v in state.items()}, strict=False)
    missing = set(model.state_dict()) - set(state) - {k for k in model.state_dict() if k.startswith("text.")}
    if missing:
        raise RuntimeError(f"checkpoint conversion left parameters unset: {sorted(missing)[:5]}")
    model.to(device=cfg.device or "cpu", dtype=dtype)
    return model.eval()


# ------------------------------------------------------------------------- transformers layout
def _load_hf_folder(folder: Path, name: str, act_fn: Optional[str], tokenizer) -> HookedCLIP:
    from transformers import CLIPConfig, CLIPVisionConfig

    raw = json.loads((folder / "config.json").read_text())
    model_type = raw.get("model_type")
    if model_type == "clip":
        full = CLIPConfig.from_pretrained(str(folder))
        vision, projection_dim = full.vision_config, full.projection_dim
    elif model_type == "clip_vision_model":
        vision = CLIPVisionConfig.from_pretrained(str(folder))
        projection_dim = vision.projection_dim
    else:
        raise ValueError(f"{folder} holds a {model_type!r} checkpoint; clipinterp loads CLIP models ('clip', 'clip_vision_model')")
    act = act_fn or vision.hidden_act
    if act not in ACTIVATIONS:
        raise ValueError(f"{name}: vision activation {act!r} is not supported (supported: {ACTIVATIONS})")
    cfg = HookedCLIPConfig(
        n_layers=vision.num_hidden_layers, n_heads=vision.num_attention_heads, d_model=vision.hidden_size,
        d_mlp=vision.intermediate_size, d_embed=projection_dim, image_size=vision.image_size,
        patch_size=vision.patch_size, n_channels=vision.num_channels, act_fn=act, eps=vision.layer_norm_eps,
        model_name=name, source="hf")
    processor = _image_processor(folder, cfg)
    cfg.image_mean, cfg.image_std = tuple(processor.image_mean), tuple(processor.image_std)
    sd = _read_state_dict(folder, HF_WEIGHTS)
    text = TextTower(None, None, missing_reason=f"{name} is a vision-only checkpoint")
    if model_type == "clip":
        text_config = full.text_config
        text_config.projection_dim = projection_dim
        state = {k: v for k, v in sd.items() if k.startswith(("text_model.", "text_projection."))}
        text = _text_tower(text_config, state, sd, tokenizer if tokenizer is not None else folder,
                           f"no tokenizer files in {folder}; pass clipinterp.load(..., tokenizer=...)")
    return _build(cfg, hf_vision_state(sd, cfg), text, processor)


# ------------------------------------------------------------------------- open_clip layout
UNSUPPORTED_OPEN_CLIP = {
    "timm_model_name": "a timm vision trunk",
    "attentional_pool": "an attentional pooler",
    "attn_pooler_queries": "an attentional pooler",
    "no_ln_pre": "no ln_pre",
    "input_patchnorm": "patch-input LayerNorm",
    "global_average_pool": "average pooling over patches",
    "qk_norm": "query/key normalisation",
    "scaled_cosine_attn": "scaled cosine attention",
    "scale_heads": "per-head scaling",
    "scale_attn_inner": "an extra LayerNorm inside attention",
    "scale_attn": "an extra LayerNorm after attention",
    "scale_fc": "an extra LayerNorm inside the MLP",
}
# vision_cfg keys that are read below or change nothing at inference (the timm_* and pooler
# settings only matter with timm_model_name / attentional_pool, which are refused)
KNOWN_OPEN_CLIP = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size", "ls_init_value",
                   "patch_dropout", "output_tokens", "pool_type", "pos_embed_type", "final_ln_after_pool",
                   "class_token", "no_class_token", "norm_kwargs", "act_kwargs", "block_type", "attn_pooler_heads",
                   "timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path",
                   "timm_model_pretrained", *UNSUPPORTED_OPEN_CLIP}


def _open_clip_eps(section: dict, name: str) -> float:
    """LayerNorm eps from an open_clip ``norm_kwargs`` (only ``eps`` can be honoured)."""
    norm = section.get("norm_kwargs") or {}
    other = sorted(set(norm) - {"eps"})
    if other:
        raise ValueError(f"{name}: open_clip norm_kwargs {other} are not supported (only eps)")
    return float(norm.get("eps", 1e-5))


def open_clip_config(raw: dict, name: str, act_fn: Optional[str]) -> HookedCLIPConfig:
    """Hooked config from an ``open_clip_config.json`` (heads = width / head_width, never guessed)."""
    model_cfg = raw.get("model_cfg", raw)
    vision = model_cfg["vision_cfg"]
    for key, feature in UNSUPPORTED_OPEN_CLIP.items():
        if vision.get(key):
            raise ValueError(f"{name}: the open_clip vision tower uses {feature} ({key}), which HookedCLIP "
                             "cannot represent exactly")
    if vision.get("pool_type", "tok") != "tok":
        raise ValueError(f"{name}: open_clip pool_type={vision['pool_type']!r} (no CLS-token pooling) is not supported")
    if vision.get("pos_embed_type", "learnable") != "learnable":
        raise ValueError(f"{name}: pos_embed_type={vision['pos_embed_type']!r} is not supported")
    if vision.get("class_token", True) is False or vision.get("no_class_token"):
        raise ValueError(f"{name}: towers without a CLS token are not supported")
    if vision.get("act_kwargs"):
        raise ValueError(f"{name}: open_clip act_kwargs {vision['act_kwargs']} are not supported")
    if vision.get("block_type") not in (None, "default"):
        raise ValueError(f"{name}: open_clip block_type={vision['block_type']!r} is not supported")
    unknown = sorted(set(vision) - KNOWN_OPEN_CLIP)
    if unknown:
        warnings.warn(f"{name}: open_clip vision_cfg keys {unknown} are not known to clipinterp and are ignored; "
                      "check the model against open_clip before trusting it", stacklevel=3)
    width = vision.get("width", 768)
    head_width = vision.get("head_width", 64)
    if width % head_width:
        raise ValueError(f"{name}: width {width} is not a multiple of head_width {head_width}")
    size = vision["image_size"]
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ValueError(f"{name}: non-square image_size {size} is not supported")
        size = size[0]
    patch = vision["patch_size"]
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    pre = raw.get("preprocess_cfg", {})
    return HookedCLIPConfig(
        n_layers=vision["layers"], n_heads=width // head_width, d_model=width,
        d_mlp=int(width * vision.get("mlp_ratio", 4.0)), d_embed=model_cfg["embed_dim"], image_size=size,
        patch_size=patch, act_fn=act_fn or ("quick_gelu" if model_cfg.get("quick_gelu") else "gelu"),
        eps=_open_clip_eps(vision, name), model_name=name, source="open_clip", image_mean=tuple(pre.get("mean", OPENAI_MEAN)),
        image_std=tuple(pre.get("std", OPENAI_STD)))


def open_clip_text_tower(sd: dict[str, torch.Tensor], raw: dict, act: str, tokenizer, name: str) -> TextTower:
    """The open_clip text transformer as transformers' ``CLIPTextModelWithProjection`` (same
    architecture; pooled at the highest token id, i.e. end-of-text, as open_clip does)."""
    from transformers import CLIPTextConfig

    model_cfg = raw.get("model_cfg", raw)
    text_cfg = model_cfg.get("text_cfg", {})
    if "token_embedding.weight" not in sd or text_cfg.get("hf_model_name"):
        return TextTower(None, None, missing_reason=f"{name} has no standard open_clip text transformer")
    width, layers = text_cfg.get("width", 512), text_cfg.get("layers", 12)
    config = CLIPTextConfig(
        vocab_size=sd["token_embedding.weight"].shape[0], hidden_size=width,
        intermediate_size=int(width * text_cfg.get("mlp_ratio", 4.0)), num_hidden_layers=layers,
        num_attention_heads=text_cfg.get("heads", width // 64), max_position_embeddings=sd["positional_embedding"].shape[0],
        hidden_act=act, projection_dim=model_cfg["embed_dim"], eos_token_id=2,
        layer_norm_eps=_open_clip_eps(text_cfg, name))
    state = {"text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
             "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
             "text_model.final_layer_norm.weight": sd["ln_final.weight"],
             "text_model.final_layer_norm.bias": sd["ln_final.bias"],
             "text_projection.weight": sd["text_projection"].T}
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        for part, w in zip("qkv", sd[src + "attn.in_proj_weight"].chunk(3)):
            state[dst + f"self_attn.{part}_proj.weight"] = w
        for part, b in zip("qkv", sd[src + "attn.in_proj_bias"].chunk(3)):
            state[dst + f"self_attn.{part}_proj.bias"] = b
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for a, b in pairs.items():
            state[dst + b + ".weight"] = sd[src + a + ".weight"]
            state[dst + b + ".bias"] = sd[src + a + ".bias"]
        for j, mlp_or_attn in ((1, "self_attn.out_proj"), (2, "mlp.fc2")):
            gamma = sd.get(src + f"ls_{j}.gamma")
            if gamma is not None:
                state[dst + mlp_or_attn + ".weight"] = state[dst + mlp_or_attn + ".weight"] * gamma[:, None]
                state[dst + mlp_or_attn + ".bias"] = state[dst + mlp_or_attn + ".bias"] * gamma
    reason = ("no tokenizer files (vocab.json + merges.txt or tokenizer.json) next to the open_clip checkpoint: "
              "pass clipinterp.load(..., tokenizer='openai/clip-vit-base-patch32') or a folder")
    return _text_tower(config, state, sd, tokenizer, reason)


def _text_tower(config, state: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], tokenizer, no_tokenizer: str) -> TextTower:
    """transformers' ``CLIPTextModelWithProjection`` from converted weights, with the tokenizer."""
    from transformers import CLIPTextModelWithProjection

    model = CLIPTextModelWithProjection(config)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if "position_ids" not in k]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"text tower conversion: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
    scale = sd["logit_scale"].float().exp().item() if "logit_scale" in sd else 100.0
    tok = _tokenizer(tokenizer)
    return TextTower(model.eval(), tok, logit_scale=scale, missing_reason="" if tok else no_tokenizer)


def _load_open_clip(config_path: Path, weights_path: Path, name: str, act_fn: Optional[str], tokenizer) -> HookedCLIP:
    raw = json.loads(config_path.read_text())
    cfg = open_clip_config(raw, name, act_fn)
    sd = _read_one(weights_path, __import__("safetensors.torch", fromlist=["load_file"]).load_file)
    sd = sd.get("state_dict", sd)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    text = open_clip_text_tower(sd, raw, cfg.act_fn, tokenizer if tokenizer is not None else config_path.parent, name)
    return _build(cfg, open_clip_vision_state(sd, cfg), text, _image_processor(None, cfg))


def _open_clip_files(folder: Path) -> Optional[tuple[Path, Path]]:
    config = folder / "open_clip_config.json"
    for weights in OPEN_CLIP_WEIGHTS:
        if config.exists() and (folder / weights).exists():
            return config, folder / weights
    return None


# ------------------------------------------------------------------------- entry point
def local_path(name_or_path: Union[str, Path]) -> Path:
    """Where ``name_or_path`` lives on disk: a bundled model's folder under :func:`data_dir`
    (e.g. ``"shapes-clip"``), else the path itself (``~`` expanded)."""
    name = ALIASES.get(str(name_or_path), str(name_or_path))
    spec = MODELS.get(name)
    if spec is not None and spec.source == "local":
        return data_dir() / spec.location
    return Path(os.path.expanduser(name))


def load(name_or_path: Union[str, Path], device: Optional[Union[str, torch.device]] = None,
         dtype: Optional[torch.dtype] = None, *, act_fn: Optional[str] = None, tokenizer=None) -> HookedCLIP:
    """Load a CLIP checkpoint as a :class:`HookedCLIP`.

    ``name_or_path``: a known name (``clipinterp.list_models()``; ``"shapes-clip"`` is the bundled
    organism), any transformers CLIP hub id or local folder, an open_clip folder or weights file
    (with ``open_clip_config.json`` beside it), or ``"hf-hub:owner/repo"`` for open_clip files on the
    hub. ``act_fn`` overrides the activation read from the config; ``tokenizer`` names a tokenizer
    (folder or hub id) where the checkpoint has none.
    """
    name = ALIASES.get(str(name_or_path), str(name_or_path))
    spec, path = MODELS.get(name), local_path(name)
    if spec is not None and spec.source == "local" and not path.exists():
        raise FileNotFoundError(f"the bundled model {name!r} is missing from {path}; train it with "
                                "`clipinterp organism train` or set CLIPINTERP_DATA")
    if path.is_file():
        config = path.parent / "open_clip_config.json"
        if not config.exists():
            raise FileNotFoundError(f"{path} is a weights file but {config} is missing (open_clip needs both)")
        model = _load_open_clip(config, path, str(name_or_path), act_fn, tokenizer)
    elif path.is_dir():
        pair = _open_clip_files(path)
        if pair is not None and not (path / "config.json").exists():
            model = _load_open_clip(*pair, str(name_or_path), act_fn, tokenizer)
        elif (path / "config.json").exists():
            model = _load_hf_folder(path, str(name_or_path), act_fn, tokenizer)
        else:
            raise FileNotFoundError(f"{path} holds neither a transformers CLIP checkpoint (config.json) nor "
                                    "open_clip files (open_clip_config.json + weights)")
    elif name.startswith("hf-hub:"):
        repo = name.removeprefix("hf-hub:")
        folder = fetch_from_hub(repo, ["open_clip_config.json", *OPEN_CLIP_WEIGHTS[:1], *TOKENIZER_FILES],
                                OPEN_CLIP_WEIGHTS)
        if not (folder / OPEN_CLIP_WEIGHTS[0]).exists():
            folder = fetch_from_hub(repo, ["open_clip_config.json", OPEN_CLIP_WEIGHTS[1], *TOKENIZER_FILES],
                                    OPEN_CLIP_WEIGHTS[1:])
        pair = _open_clip_files(folder)
        if pair is None:
            raise FileNotFoundError(f"{repo} has no open_clip_config.json + open_clip weights")
        model = _load_open_clip(*pair, str(name_or_path), act_fn, tokenizer)
    elif name.count("/") == 1 and not name.startswith((".", "/", "~")):
        folder = fetch_from_hub(name, ["config.json", "*.safetensors", "*.safetensors.index.json",
                                       "preprocessor_config.json", *TOKENIZER_FILES], HF_WEIGHTS)
        if not any((folder / w).exists() for w in HF_WEIGHTS):
            folder = fetch_from_hub(name, ["config.json", "pytorch_model.bin*", "preprocessor_config.json", *TOKENIZER_FILES],
                                    HF_WEIGHTS[2:])
        model = _load_hf_folder(folder, name, act_fn, tokenizer)
    else:
        raise unknown_name("model", str(name_or_path), list(MODELS) + list(ALIASES),
                           "Pass a known name (clipinterp.list_models()), a hub id 'owner/repo', "
                           "'hf-hub:owner/repo' for open_clip files, or a local path.")
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
        model.cfg.device, model.cfg.dtype = str(model.device), model.dtype
    model.cfg.device = str(model.device)
    return model
