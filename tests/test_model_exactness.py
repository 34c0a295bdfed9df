"""Every model path against an independent reference: transformers' own CLIP for HF checkpoints,
an nn.MultiheadAttention tower for the open_clip layout. Tolerance: 1e-5 relative (float32)."""
from __future__ import annotations

import pytest
import torch
from transformers import CLIPModel, CLIPTokenizer

import clipinterp
from checkpoints import ReferenceOpenCLIPVision, hf_checkpoint, open_clip_vision_cfg, write_open_clip

RTOL = 1e-5  # relative error bound: max |ours - ref| / max |ref|


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12)).item()


def hf_reference(ref: CLIPModel, pixels: torch.Tensor, n_heads: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """transformers' forward with torch hooks on its own modules, named as our hook points."""
    rec: dict[str, torch.Tensor] = {}
    vm = ref.vision_model
    handles = []

    def save(name, reshape_heads=False, take_input=False):
        def hook(module, inputs, output):
            t = inputs[0] if take_input else (output[0] if isinstance(output, tuple) else output)
            rec[name] = t.unflatten(-1, (n_heads, -1)) if reshape_heads else t
        return hook

    handles.append(vm.pre_layrnorm.register_forward_hook(save("hook_embed")))
    for i, layer in enumerate(vm.encoder.layers):
        b = f"blocks.{i}."
        a = layer.self_attn
        handles += [a.q_proj.register_forward_hook(save(b + "attn.hook_q", True)),
                    a.k_proj.register_forward_hook(save(b + "attn.hook_k", True)),
                    a.v_proj.register_forward_hook(save(b + "attn.hook_v", True)),
                    a.out_proj.register_forward_hook(save(b + "attn.hook_z", True, take_input=True)),
                    a.out_proj.register_forward_hook(save(b + "hook_attn_out")),
                    layer.layer_norm1.register_forward_hook(save(b + "hook_resid_pre", take_input=True)),
                    layer.layer_norm2.register_forward_hook(save(b + "hook_resid_mid", take_input=True)),
                    layer.mlp.fc1.register_forward_hook(save(b + "mlp.hook_pre")),
                    layer.mlp.fc2.register_forward_hook(save(b + "mlp.hook_post", take_input=True)),
                    layer.mlp.fc2.register_forward_hook(save(b + "hook_mlp_out")),
                    layer.register_forward_hook(save(b + "hook_resid_post"))]
    try:
        with torch.no_grad():
            out = vm(pixel_values=pixels, output_attentions=True)
            emb = ref.visual_projection(out.pooler_output)
    finally:
        for h in handles:
            h.remove()
    for i, pattern in enumerate(out.attentions):
        rec[f"blocks.{i}.attn.hook_pattern"] = pattern
    return emb, rec


def check_all_hooks(model, cache, rec, pixels):
    """Compare every recorded reference activation, plus the ones derived from definitions."""
    for name, ref in rec.items():
        assert cache[name].shape == ref.shape, name
        assert rel_err(cache[name], ref) < RTOL, (name, rel_err(cache[name], ref))
    for i, block in enumerate(model.blocks):
        b = f"blocks.{i}."
        # per-head results sum (plus b_O) to the attention output, and equal z_h @ W_O[h]
        result = cache[b + "attn.hook_result"]
        assert rel_err(result.sum(2) + block.attn.b_O, cache[b + "hook_attn_out"]) < RTOL
        z = cache[b + "attn.hook_z"]
        assert rel_err(result[:, :, 1], z[:, :, 1] @ block.attn.W_O[1]) < RTOL
        for ln, inp in (("ln1", "hook_resid_pre"), ("ln2", "hook_resid_mid")):
            x = cache[b + inp]
            centred = x - x.mean(-1, keepdim=True)
            std = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
            assert cache[b + f"{ln}.hook_scale"].shape == (*x.shape[:2], 1)
            assert rel_err(cache[b + f"{ln}.hook_scale"], std) < RTOL
            assert rel_err(cache[b + f"{ln}.hook_normalized"], centred / std) < RTOL
        scores = cache[b + "attn.hook_attn_scores"]
        assert rel_err(scores.softmax(-1), cache[b + "attn.hook_pattern"]) < RTOL
    final = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    assert cache["ln_final.hook_scale"].shape == (pixels.shape[0], model.cfg.n_ctx, 1)
    centred = final - final.mean(-1, keepdim=True)
    assert rel_err(cache["ln_final.hook_scale"], (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()) < RTOL


HF_FAMILIES = [
    ("openai/clip-vit-base-patch32", 2),
    ("openai/clip-vit-base-patch16", 2),
    ("openai/clip-vit-large-patch14-336", 1),
    ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", 2),
    ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", 1),
]


@pytest.mark.parametrize("spec_name,layers", HF_FAMILIES)
def test_hf_family_matches_transformers(tmp_path, spec_name, layers):
    folder = hf_checkpoint(tmp_path / "ckpt", spec_name, layers=layers)
    ref = CLIPModel.from_pretrained(folder, attn_implementation="eager").eval()
    model = clipinterp.load(folder)
    spec = clipinterp.model.registry.MODELS[spec_name]
    assert model.cfg.act_fn == spec.act and model.cfg.n_heads == spec.heads and model.cfg.d_head == spec.width // spec.heads
    torch.manual_seed(1)
    pixels = torch.randn(2, 3, spec.image_size, spec.image_size)
    ref_emb, rec = hf_reference(ref, pixels, spec.heads)
    with torch.no_grad():
        emb = model.encode_image(pixels, normalize=False)
        out, cache = model.run_with_cache(pixels)
    assert rel_err(emb, ref_emb) < RTOL
    assert rel_err(out, ref_emb) < RTOL
    check_all_hooks(model, cache, rec, pixels)
    # text side: the checkpoint's own text tower, equal to transformers' get_text_features
    texts = ["a photo of a cat", "dog"]
    tok = CLIPTokenizer.from_pretrained(folder)
    ids = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref_text = ref.get_text_features(**ids).pooler_output
    assert rel_err(model.encode_text(texts, normalize=False), ref_text) < RTOL


def test_wrong_activation_would_be_caught(tmp_path):
    """The exactness check has teeth: forcing GELU on an OpenAI (QuickGELU) checkpoint misses by far
    more than the tolerance (the peer bug in ANCHORS section 1)."""
    folder = hf_checkpoint(tmp_path / "ckpt", "openai/clip-vit-base-patch32", layers=2)
    ref = CLIPModel.from_pretrained(folder).eval()
    wrong = clipinterp.load(folder, act_fn="gelu")
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref_emb = ref.get_image_features(pixel_values=pixels).pooler_output
    assert rel_err(wrong.encode_image(pixels, normalize=False), ref_emb) > 100 * RTOL


def test_interpolated_positions_match_transformers(tmp_path):
    folder = hf_checkpoint(tmp_path / "ckpt", "openai/clip-vit-base-patch32", layers=1)
    ref = CLIPModel.from_pretrained(folder).eval()
    model = clipinterp.load(folder)
    pixels = torch.randn(1, 3, 288, 288)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(pixels)
    with torch.no_grad():
        ref_emb = ref.get_image_features(pixel_values=pixels, interpolate_pos_encoding=True).pooler_output
        assert rel_err(model(pixels, interpolate_pos_encoding=True), ref_emb) < RTOL


@pytest.mark.parametrize("ls_init_value,quick_gelu,safetensors", [(None, False, True), (0.1, False, False), (None, True, True)])
def test_open_clip_layout_matches_multihead_attention(tmp_path, ls_init_value, quick_gelu, safetensors):
    vision_cfg = open_clip_vision_cfg(width=256, layers=2, head_width=32, patch=16, image_size=64, ls_init_value=ls_init_value)
    sd = write_open_clip(tmp_path / "oc", vision_cfg, embed_dim=128, quick_gelu=quick_gelu, safetensors=safetensors)
    model = clipinterp.load(tmp_path / "oc")
    assert model.cfg.n_heads == 256 // 32  # from width / head_width, never from the name
    assert model.cfg.act_fn == ("quick_gelu" if quick_gelu else "gelu")
    reference = ReferenceOpenCLIPVision(sd, vision_cfg, quick_gelu)
    pixels = torch.randn(2, 3, 64, 64)
    ref_emb, rec = reference(pixels)
    with torch.no_grad():
        out, cache = model.run_with_cache(pixels)
    assert rel_err(out, ref_emb) < RTOL
    for name, ref in rec.items():
        assert rel_err(cache[name], ref) < RTOL, name


def test_open_clip_weights_file_and_real_width(tmp_path):
    """The file-pair form, at ViT-B/16 width (12 heads of 64)."""
    vision_cfg = open_clip_vision_cfg(width=768, layers=1, head_width=64, patch=16, image_size=224)
    sd = write_open_clip(tmp_path / "oc", vision_cfg, embed_dim=512)
    model = clipinterp.load(tmp_path / "oc" / "open_clip_model.safetensors")
    assert (model.cfg.n_heads, model.cfg.d_head) == (12, 64)
    pixels = torch.randn(1, 3, 224, 224)
    ref_emb, _ = ReferenceOpenCLIPVision(sd, vision_cfg, False)(pixels)
    assert rel_err(model.encode_image(pixels, normalize=False), ref_emb) < RTOL


def reference_open_clip_text(sd: dict, text_cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    """open_clip's text transformer written out: token + position embeddings, causal pre-LN
    blocks (``nn.MultiheadAttention`` with the packed weights, exact GELU), ``ln_final``, the
    end-of-text token (the highest id) projected. ``ids [n, T]`` -> ``[n, embed_dim]``."""
    w, eps = text_cfg["width"], (text_cfg.get("norm_kwargs") or {}).get("eps", 1e-5)

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (w,), sd[name + ".weight"], sd[name + ".bias"], eps)

    T = ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:T]
    causal = torch.full((T, T), float("-inf")).triu(1)
    for i in range(text_cfg["layers"]):
        b = f"transformer.resblocks.{i}."
        mha = torch.nn.MultiheadAttention(w, text_cfg["heads"], batch_first=True)
        mha.load_state_dict({"in_proj_weight": sd[b + "attn.in_proj_weight"], "in_proj_bias": sd[b + "attn.in_proj_bias"],
                             "out_proj.weight": sd[b + "attn.out_proj.weight"], "out_proj.bias": sd[b + "attn.out_proj.bias"]})
        h = ln(x, b + "ln_1")
        x = x + mha(h, h, h, attn_mask=causal, need_weights=False)[0]
        h = torch.nn.functional.linear(ln(x, b + "ln_2"), sd[b + "mlp.c_fc.weight"], sd[b + "mlp.c_fc.bias"])
        x = x + torch.nn.functional.linear(torch.nn.functional.gelu(h), sd[b + "mlp.c_proj.weight"], sd[b + "mlp.c_proj.bias"])
    x = ln(x, "ln_final")
    return x[torch.arange(len(ids)), ids.argmax(-1)] @ sd["text_projection"]


def test_open_clip_text_tower_matches_its_reference(tmp_path):
    """The open_clip text transformer, converted to transformers' layout, against the written-out
    reference (1e-5 relative), with a LayerNorm eps from ``norm_kwargs`` large enough to matter."""
    from checkpoints import write_char_tokenizer

    folder = tmp_path / "oc"
    vocab = write_char_tokenizer(folder)
    text_cfg = {"context_length": 16, "vocab_size": vocab, "width": 32, "heads": 2, "layers": 2,
                "norm_kwargs": {"eps": 0.5}}
    sd = write_open_clip(folder, open_clip_vision_cfg(width=64, layers=1, head_width=32, patch=16, image_size=32),
                         embed_dim=24, text_cfg=text_cfg)
    model = clipinterp.load(folder)
    texts = ["a photo of a cat", "dog", "a cat of a dog photo"]
    ids = model.text.tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ours, ref = model.encode_text(texts, normalize=False), reference_open_clip_text(sd, text_cfg, ids)
        assert rel_err(ours, ref) < RTOL
        default_eps = reference_open_clip_text(sd, {**text_cfg, "norm_kwargs": None}, ids)
    assert rel_err(default_eps, ref) > 100 * RTOL  # a dropped eps would show


def test_open_clip_layer_norm_eps_is_honoured(tmp_path):
    """``norm_kwargs.eps`` reaches every LayerNorm (a large eps, so that ignoring it shows)."""
    vision_cfg = open_clip_vision_cfg(width=64, layers=2, head_width=32, patch=16, image_size=32)
    vision_cfg["norm_kwargs"] = {"eps": 0.5}
    sd = write_open_clip(tmp_path / "oc", vision_cfg, embed_dim=32)
    model = clipinterp.load(tmp_path / "oc")
    pixels = torch.randn(2, 3, 32, 32)
    ref_emb, _ = ReferenceOpenCLIPVision(sd, vision_cfg, False)(pixels)
    assert rel_err(model.encode_image(pixels, normalize=False), ref_emb) < RTOL
    default_eps, _ = ReferenceOpenCLIPVision(sd, {**vision_cfg, "norm_kwargs": None}, False)(pixels)
    assert rel_err(default_eps, ref_emb) > 100 * RTOL  # the check above would see a dropped eps


@pytest.mark.parametrize("feature, value", [("attentional_pool", True), ("no_ln_pre", True),
                                            ("timm_model_name", "vit_base"), ("qk_norm", True),
                                            ("global_average_pool", True), ("scale_attn", True),
                                            ("act_kwargs", {"approximate": "tanh"}), ("block_type", "custom"),
                                            ("norm_kwargs", {"elementwise_affine": False})])
def test_open_clip_unsupported_features_are_refused(tmp_path, feature, value):
    vision_cfg = open_clip_vision_cfg(width=64, layers=1, head_width=32, patch=16, image_size=32)
    vision_cfg[feature] = value
    write_open_clip(tmp_path / "oc", vision_cfg, embed_dim=32)
    with pytest.raises(ValueError, match=feature):
        clipinterp.load(tmp_path / "oc")


def test_open_clip_unknown_settings_are_warned_about(tmp_path):
    vision_cfg = open_clip_vision_cfg(width=64, layers=1, head_width=32, patch=16, image_size=32)
    vision_cfg["rope"] = True
    write_open_clip(tmp_path / "oc", vision_cfg, embed_dim=32)
    with pytest.warns(UserWarning, match=r"keys \['rope'\] are not known"):
        clipinterp.load(tmp_path / "oc")
