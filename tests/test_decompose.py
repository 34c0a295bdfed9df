"""The decomposition sums to the embedding it decomposes (1e-5 relative, float32) on every
architecture family, and its per-head values match independent computations."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import clipinterp
from checkpoints import hf_checkpoint, open_clip_vision_cfg, write_open_clip
from clipinterp.decompose import Decomposition, decompose

TOL = 1e-5


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("convention", ["split", "centered"])
@pytest.mark.parametrize("normalize", [False, True])
def test_sums_to_embedding_and_tokens_to_heads(tiny, pixels, convention, normalize):
    d = decompose(tiny, pixels, tokens=True, convention=convention, normalize=normalize)
    emb = tiny.encode_image(pixels, normalize=normalize)
    assert rel(d.total(), emb) < TOL
    assert rel(d.tokens.sum(3), d.heads) < TOL
    assert d.heads.shape == (4, 3, 4, 24) and d.tokens.shape == (4, 3, 4, 17, 24)


FAMILIES = [("hf", "openai/clip-vit-base-patch32"), ("hf", "openai/clip-vit-base-patch16"),
            ("hf", "openai/clip-vit-large-patch14-336"), ("hf", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
            ("hf", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"), ("open_clip", None), ("open_clip_ls", None)]


@pytest.mark.parametrize("kind,spec", FAMILIES)
def test_sum_check_on_every_family(tmp_path, kind, spec):
    if kind == "hf":
        model = clipinterp.load(hf_checkpoint(tmp_path / "c", spec, layers=1))
    else:
        vc = open_clip_vision_cfg(width=128, layers=2, head_width=32, patch=16, image_size=64,
                                  ls_init_value=0.1 if kind == "open_clip_ls" else None)
        write_open_clip(tmp_path / "c", vc, embed_dim=64)
        model = clipinterp.load(tmp_path / "c")
    size = model.cfg.image_size
    pixels = torch.randn(2, 3, size, size)
    emb = model.encode_image(pixels, normalize=False)
    for convention in ("split", "centered"):
        d = decompose(model, pixels, convention=convention, tokens=True, layers=[model.cfg.n_layers - 1])
        assert rel(d.total(), emb) < TOL, convention
        assert rel(d.tokens[:, 0].sum(2), d.heads[:, -1]) < TOL


def test_split_heads_follow_textspan_formula(tiny, pixels):
    """Each head: [gamma * (r + b_O/H - mu/(n H)) / sigma + beta/(n H)] @ P, from a full cache."""
    d = decompose(tiny, pixels, convention="split")
    _, cache = tiny.run_with_cache(pixels)
    L, H = tiny.cfg.n_layers, tiny.cfg.n_heads
    n = 2 * L + 1
    x = cache[f"blocks.{L - 1}.hook_resid_post"][:, 0]
    mu, sigma = x.mean(-1, keepdim=True), cache["ln_final.hook_scale"][:, 0]
    g, b, P = tiny.ln_final.w, tiny.ln_final.b, tiny.W_proj
    for layer in range(L):
        r = cache[f"blocks.{layer}.attn.hook_result"][:, 0]  # [N, H, d]
        expected = ((g * (r + tiny.blocks[layer].attn.b_O / H - mu[:, None] / (n * H)) / sigma[:, None]) + b / (n * H)) @ P
        assert rel(d.heads[:, layer], expected) < TOL
        m = cache[f"blocks.{layer}.hook_mlp_out"][:, 0]
        assert rel(d.mlps[:, layer], (g * (m - mu / n) / sigma + b / n) @ P) < TOL


def test_centered_heads_match_transformer_lens(tiny, pixels):
    """TransformerLens's own apply_ln_to_stack on the cached head results, then gamma and P."""
    d = decompose(tiny, pixels, convention="centered")
    _, cache = tiny.run_with_cache(pixels)
    stack = cache.stack_head_results(layer=-1, pos_slice=0)  # [L*H, N, d]
    tl = cache.apply_ln_to_stack(stack, layer=-1, pos_slice=0) * tiny.ln_final.w @ tiny.W_proj
    ours = d.heads.permute(1, 2, 0, 3).reshape(-1, *d.heads.shape[::3])
    assert rel(ours, tl) < TOL


def test_project_mean_ablate_save_load(tiny, pixels, tmp_path):
    d = decompose(tiny, pixels, normalize=True)
    texts = tiny.encode_text(["cat", "dog", "a photo of a cat"])
    p = d.project(texts)
    assert p.heads.shape == (4, 3, 4, 3)
    assert rel(p.total(), tiny.encode_image(pixels) @ texts.T) < TOL  # additive shares of cosine
    assert p.projected and not d.projected
    with pytest.raises(ValueError, match="projected already"):  # even where texts and embedding widths agree
        p.project(torch.randn(5, 3))
    ab = d.mean_ablate(heads=["L1.H2", (0, 0)], mlps=[2], layers=[2])
    assert torch.allclose(ab.heads[:, 1, 2], d.heads[:, 1, 2].mean(0).expand(4, -1))
    assert torch.allclose(ab.heads[:, 2], d.heads[:, 2].mean(0).expand(4, -1, -1))
    assert torch.equal(ab.heads[:, 1, 0], d.heads[:, 1, 0])
    assert rel(ab.total().mean(0), d.total().mean(0)) < TOL  # mean ablation keeps the mean
    d.save(tmp_path / "d.safetensors")
    back = Decomposition.load(tmp_path / "d.safetensors")
    assert torch.equal(back.heads, d.heads) and back.convention == "split" and back.normalized
    p.save(tmp_path / "p.safetensors")
    assert Decomposition.load(tmp_path / "p.safetensors").projected


def test_bad_input(tiny, pixels):
    with pytest.raises(ValueError, match="out of range"):
        decompose(tiny, pixels, tokens=True, layers=[5])
    with pytest.raises(ValueError, match="convention"):
        decompose(tiny, pixels, convention="textspan")
    d = decompose(tiny, pixels)
    with pytest.raises(ValueError, match="width 7"):
        d.project(torch.randn(2, 7))
    with pytest.raises(ValueError, match="head 9 out of range"):
        d.mean_ablate(heads=["L0.H9"])
    other = torch.randn(3, 3, 32, 32)
    assert d.mean_ablate(heads=["L0.H1"], reference=decompose(tiny, other)).n_images == 4  # same settings: fine
    for wrong in (decompose(tiny, other, normalize=True), decompose(tiny, other, convention="centered")):
        with pytest.raises(ValueError, match="reference decomposition does not match"):
            d.mean_ablate(heads=["L0.H1"], reference=wrong)
    renamed = dataclasses.replace(decompose(tiny, other), model_name="another-clip")
    with pytest.warns(UserWarning, match="comes from 'another-clip'"):  # names may differ for the same weights
        d.mean_ablate(heads=["L0.H1"], reference=renamed)
    with pytest.raises(ValueError, match="empty"):
        decompose(tiny, pixels[:0])
