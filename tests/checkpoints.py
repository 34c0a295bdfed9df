"""Checkpoints the tests build themselves: real architectures' configs, random weights, saved to
disk and loaded through the same path as a downloaded checkpoint."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from clipinterp.model.registry import MODELS


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def write_char_tokenizer(folder: Path, extra_words: tuple[str, ...] = ("photo", "cat", "dog", "a", "of")) -> int:
    """A CLIP BPE tokenizer (vocab.json + merges.txt) with the byte alphabet plus merges building
    ``extra_words``; returns the vocabulary size."""
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    merges = []
    for word in extra_words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            if pieces[0] not in vocab:
                vocab.append(pieces[0])
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 16}))
    return len(vocab)


SMALL_TEXT = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=16)


def hf_checkpoint(folder: Path, spec_name: str, layers: int = 2, seed: int = 0) -> Path:
    """A transformers ``CLIPModel`` with the vision config of ``spec_name`` (``layers`` blocks),
    a small text tower and a tokenizer, saved to ``folder``."""
    from transformers import CLIPConfig, CLIPModel

    spec = MODELS[spec_name]
    vocab_size = write_char_tokenizer(folder)
    config = CLIPConfig(
        vision_config=dict(hidden_size=spec.width, intermediate_size=spec.mlp, num_attention_heads=spec.heads,
                           num_hidden_layers=layers, image_size=spec.image_size, patch_size=spec.patch, hidden_act=spec.act),
        text_config=dict(SMALL_TEXT, vocab_size=vocab_size, hidden_act=spec.act, bos_token_id=vocab_size - 2,
                         eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1),
        projection_dim=spec.embed_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():  # spread the LayerNorm and bias parameters away from their 1/0 inits
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias") or "class_embedding" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- open_clip layout
def open_clip_vision_cfg(width=768, layers=2, head_width=64, patch=16, image_size=224, ls_init_value=None) -> dict:
    cfg = dict(width=width, layers=layers, head_width=head_width, patch_size=patch, image_size=image_size, mlp_ratio=4.0)
    if ls_init_value is not None:
        cfg["ls_init_value"] = ls_init_value
    return cfg


def _resblocks(prefix: str, layers: int, w: int, m: int, rand, ls_init_value=None) -> dict[str, torch.Tensor]:
    """Random open_clip residual blocks (packed ``in_proj``, ``c_fc`` / ``c_proj``, optional LayerScale)."""
    sd = {}
    for i in range(layers):
        b = f"{prefix}{i}."
        sd.update({b + "ln_1.weight": 1 + rand(w, scale=0.1), b + "ln_1.bias": rand(w, scale=0.1),
                   b + "attn.in_proj_weight": rand(3 * w, w, scale=w ** -0.5), b + "attn.in_proj_bias": rand(3 * w, scale=0.1),
                   b + "attn.out_proj.weight": rand(w, w, scale=w ** -0.5), b + "attn.out_proj.bias": rand(w, scale=0.1),
                   b + "ln_2.weight": 1 + rand(w, scale=0.1), b + "ln_2.bias": rand(w, scale=0.1),
                   b + "mlp.c_fc.weight": rand(m, w, scale=w ** -0.5), b + "mlp.c_fc.bias": rand(m, scale=0.1),
                   b + "mlp.c_proj.weight": rand(w, m, scale=m ** -0.5), b + "mlp.c_proj.bias": rand(w, scale=0.1)})
        if ls_init_value is not None:
            sd[b + "ls_1.gamma"] = ls_init_value * (1 + rand(w, scale=0.5))
            sd[b + "ls_2.gamma"] = ls_init_value * (1 + rand(w, scale=0.5))
    return sd


def open_clip_text_state(text_cfg: dict, embed_dim: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random weights of open_clip's text transformer (top-level key names)."""
    g = torch.Generator().manual_seed(seed)
    w = text_cfg["width"]

    def rand(*shape, scale=0.02):
        return torch.randn(*shape, generator=g) * scale

    sd = {"token_embedding.weight": rand(text_cfg["vocab_size"], w, scale=0.5),
          "positional_embedding": rand(text_cfg["context_length"], w, scale=0.5),
          "ln_final.weight": 1 + rand(w, scale=0.1), "ln_final.bias": rand(w, scale=0.1),
          "text_projection": rand(w, embed_dim, scale=w ** -0.5)}
    sd.update(_resblocks("transformer.resblocks.", text_cfg["layers"], w, int(w * text_cfg.get("mlp_ratio", 4.0)), rand,
                         text_cfg.get("ls_init_value")))
    return sd


def open_clip_state(vision_cfg: dict, embed_dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under open_clip's ``visual.*`` key names."""
    g = torch.Generator().manual_seed(seed)
    w, p = vision_cfg["width"], vision_cfg["patch_size"]
    n_pos = (vision_cfg["image_size"] // p) ** 2 + 1
    m = int(w * vision_cfg["mlp_ratio"])

    def rand(*shape, scale=0.02):
        return torch.randn(*shape, generator=g) * scale

    sd = {"visual.conv1.weight": rand(w, 3, p, p), "visual.class_embedding": rand(w, scale=0.5),
          "visual.positional_embedding": rand(n_pos, w, scale=0.5),
          "visual.ln_pre.weight": 1 + rand(w, scale=0.1), "visual.ln_pre.bias": rand(w, scale=0.1),
          "visual.ln_post.weight": 1 + rand(w, scale=0.1), "visual.ln_post.bias": rand(w, scale=0.1),
          "visual.proj": rand(w, embed_dim, scale=w ** -0.5)}
    sd.update(_resblocks("visual.transformer.resblocks.", vision_cfg["layers"], w, m, rand, vision_cfg.get("ls_init_value")))
    return sd


def write_open_clip(folder: Path, vision_cfg: dict, embed_dim: int = 512, quick_gelu: bool = False, seed: int = 0,
                    safetensors: bool = True, text_cfg: Optional[dict] = None) -> dict[str, torch.Tensor]:
    """An open_clip checkpoint folder; with ``text_cfg`` it has text-transformer weights too (and
    the caller writes a tokenizer), without it only the vision tower's."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    sd = open_clip_state(vision_cfg, embed_dim, seed)
    if text_cfg is not None:
        sd.update(open_clip_text_state(text_cfg, embed_dim, seed + 1))
    text_cfg = text_cfg or {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}
    config = {"model_cfg": {"embed_dim": embed_dim, "quick_gelu": quick_gelu, "vision_cfg": vision_cfg,
                            "text_cfg": text_cfg},
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    if safetensors:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "open_clip_model.safetensors"))
    else:
        torch.save(sd, folder / "open_clip_pytorch_model.bin")
    return sd


class ReferenceOpenCLIPVision(nn.Module):
    """An independent open_clip-layout vision tower built from ``torch.nn.MultiheadAttention``
    with the packed ``in_proj`` weights; records intermediates for comparison."""

    def __init__(self, sd: dict[str, torch.Tensor], vision_cfg: dict, quick_gelu: bool):
        super().__init__()
        self.sd, self.cfg = sd, vision_cfg
        self.eps = (vision_cfg.get("norm_kwargs") or {}).get("eps", 1e-5)
        w = vision_cfg["width"]
        self.heads = w // vision_cfg["head_width"]
        self.act = (lambda x: x * torch.sigmoid(1.702 * x)) if quick_gelu else nn.GELU()
        self.attns = nn.ModuleList()
        for i in range(vision_cfg["layers"]):
            mha = nn.MultiheadAttention(w, self.heads, batch_first=True)
            b = f"visual.transformer.resblocks.{i}.attn."
            mha.load_state_dict({"in_proj_weight": sd[b + "in_proj_weight"], "in_proj_bias": sd[b + "in_proj_bias"],
                                 "out_proj.weight": sd[b + "out_proj.weight"], "out_proj.bias": sd[b + "out_proj.bias"]})
            self.attns.append(mha.eval())

    def ln(self, x, name):
        return nn.functional.layer_norm(x, x.shape[-1:], self.sd[name + ".weight"], self.sd[name + ".bias"], self.eps)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sd, rec = self.sd, {}
        x = nn.functional.conv2d(pixels, sd["visual.conv1.weight"], stride=self.cfg["patch_size"])
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([sd["visual.class_embedding"].expand(x.shape[0], 1, -1), x], 1) + sd["visual.positional_embedding"]
        x = self.ln(x, "visual.ln_pre")
        rec["hook_embed"] = x
        for i, mha in enumerate(self.attns):
            b = f"visual.transformer.resblocks.{i}."
            h = self.ln(x, b + "ln_1")
            attn, pattern = mha(h, h, h, need_weights=True, average_attn_weights=False)
            if b + "ls_1.gamma" in sd:
                attn = attn * sd[b + "ls_1.gamma"]
            rec[f"blocks.{i}.attn.hook_pattern"] = pattern
            rec[f"blocks.{i}.hook_attn_out"] = attn
            x = x + attn
            rec[f"blocks.{i}.hook_resid_mid"] = x
            h = nn.functional.linear(self.ln(x, b + "ln_2"), sd[b + "mlp.c_fc.weight"], sd[b + "mlp.c_fc.bias"])
            rec[f"blocks.{i}.mlp.hook_pre"] = h
            h = nn.functional.linear(self.act(h), sd[b + "mlp.c_proj.weight"], sd[b + "mlp.c_proj.bias"])
            if b + "ls_2.gamma" in sd:
                h = h * sd[b + "ls_2.gamma"]
            rec[f"blocks.{i}.hook_mlp_out"] = h
            x = x + h
            rec[f"blocks.{i}.hook_resid_post"] = x
        return self.ln(x[:, 0], "visual.ln_post") @ sd["visual.proj"], rec
