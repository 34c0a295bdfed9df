"""Hooks whose edits count, hooks that are never left behind, and clear errors for bad input."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

import clipinterp
from clipinterp.errors import UnknownNameError


def test_every_hook_edit_changes_the_output(tiny, pixels):
    base = tiny(pixels)
    for name in tiny.hook_names():
        def perturb(x, hook):
            return x + 0.5 * torch.randn_like(x)

        out = tiny.run_with_hooks(pixels, fwd_hooks=[(name, perturb)])
        assert not torch.allclose(out, base, atol=1e-6), f"editing {name} did not change the output"


def test_hooked_layer_norm_is_safe_in_half_precision(tiny_folder, pixels):
    """The explicit LayerNorm (taken when its hooks are used) keeps its statistics in float32: in
    fp16 a residual coordinate of 300 squared would overflow; the result matches the fused path."""
    half = clipinterp.load(tiny_folder, dtype=torch.float16)

    def outlier(x, hook):
        return x + torch.nn.functional.one_hot(torch.tensor(7), x.shape[-1]).to(x) * 300

    store = {}
    fused = half.run_with_hooks(pixels, fwd_hooks=[("blocks.0.hook_resid_pre", outlier)]).float()
    hooked = half.run_with_hooks(pixels, fwd_hooks=[("blocks.0.hook_resid_pre", outlier),
                                                    ("blocks.0.ln1.hook_scale", lambda x, hook: store.setdefault("s", x))])
    assert store["s"].dtype == torch.float16 and torch.isfinite(store["s"]).all()
    torch.testing.assert_close(hooked.float(), fused, atol=2e-3, rtol=0)  # fp16 rounding of a unit-norm embedding
    double = clipinterp.load(tiny_folder, dtype=torch.float64)  # and float64 keeps its precision
    wide = pixels.double()
    hooked = double.run_with_hooks(wide, fwd_hooks=[("blocks.0.ln1.hook_scale", lambda x, hook: x)])
    torch.testing.assert_close(hooked, double(wide), atol=1e-12, rtol=0)


def test_hook_names_come_in_forward_order(tiny, pixels):
    fired = []
    tiny.run_with_hooks(pixels, fwd_hooks=[(name, lambda x, hook: fired.append(hook.name)) for name in tiny.hook_names()])
    assert fired == tiny.hook_names()


def test_hook_result_costs_nothing_unless_hooked(tiny, pixels):
    calls = []
    point = tiny.blocks[0].attn.hook_result
    original = point.forward
    point.forward = lambda x: calls.append(1) or original(x)
    tiny(pixels)
    assert calls == []
    _, cache = tiny.run_with_cache(pixels, names_filter=["blocks.0.attn.hook_result"])
    assert calls == [1] and cache["blocks.0.attn.hook_result"].shape == (4, 17, 4, 64)


def test_names_filter_caches_only_those(tiny, pixels):
    out_all, cache_all = tiny.run_with_cache(pixels)
    out, cache = tiny.run_with_cache(pixels, names_filter=["blocks.1.hook_resid_post", "ln_final.hook_scale"])
    assert set(cache.keys()) == {"blocks.1.hook_resid_post", "ln_final.hook_scale"}
    assert torch.allclose(out, out_all, atol=1e-6)
    assert torch.allclose(cache["blocks.1.hook_resid_post"], cache_all["blocks.1.hook_resid_post"], atol=1e-6)


def no_hooks_left(model) -> bool:
    return all(not hp._forward_hooks and not hp._backward_hooks for hp in model.hook_points())


def test_unknown_hook_name_suggests_close_ones_and_leaves_nothing(tiny, pixels):
    good = ("blocks.0.attn.hook_z", lambda x, hook: x)
    with pytest.raises(UnknownNameError, match="hook_pattern"):
        tiny.run_with_hooks(pixels, fwd_hooks=[good, ("blocks.0.attn.hook_patern", lambda x, hook: x)])
    assert no_hooks_left(tiny)
    with pytest.raises(KeyError, match="Did you mean"):
        tiny.run_with_cache(pixels, names_filter=["blocks.0.hook_resid_psot"])
    assert no_hooks_left(tiny)


def test_exceptions_inside_hooks_leave_nothing_registered(tiny, pixels):
    def broken(x, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tiny.run_with_hooks(pixels, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x),
                                               ("blocks.1.attn.hook_pattern", broken)])
    assert no_hooks_left(tiny)
    with pytest.raises(ValueError, match="inside"):
        with tiny.hooks(fwd_hooks=[("blocks.2.mlp.hook_post", lambda x, hook: x)]):
            assert not no_hooks_left(tiny)
            raise ValueError("inside the block")
    assert no_hooks_left(tiny)


def test_unknown_model_name_suggests(monkeypatch):
    with pytest.raises(UnknownNameError, match="ViT-B-32"):
        clipinterp.load("ViT-B-23")
    with pytest.raises(UnknownNameError, match="shapes-clip"):
        clipinterp.load("shape-clip")


def test_offline_without_cache_fails_fast(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    attempts = []  # failing fast means trying no connection at all

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(clipinterp.OfflineError, match="huggingface-cli download"):
        clipinterp.load("openai/clip-vit-base-patch16")
    with pytest.raises(clipinterp.OfflineError):
        clipinterp.load("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert attempts == []


def test_cached_snapshot_without_weights_is_not_taken_for_the_model(monkeypatch, tmp_path):
    """A snapshot holding only the processor's files (left by CLIPProcessor.from_pretrained) is
    not a cached model: offline, loading says so instead of failing on missing weights."""
    from huggingface_hub import constants

    repo = tmp_path / "models--openai--clip-vit-base-patch16"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(clipinterp.OfflineError, match="not in the Hugging Face cache"):
        clipinterp.load("openai/clip-vit-base-patch16")


def test_pixel_input_errors(tiny):
    with pytest.raises(ValueError, match="3 channels|channels"):
        tiny(torch.randn(2, 4, 32, 32))
    with pytest.raises(ValueError, match="channels last"):
        tiny(torch.randn(2, 32, 32, 3))
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        tiny(torch.randn(1, 3, 48, 48))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny(torch.randn(1, 3, 30, 30), interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="batch of size 0"):
        tiny(torch.randn(0, 3, 32, 32))
    with pytest.raises(ValueError, match="empty"):
        tiny.encode_image([])
    with pytest.raises(ValueError, match="empty"):
        tiny.encode_text([])
    with pytest.raises(TypeError, match="list of strings"):
        tiny.encode_text("a cat")


def test_pil_modes_are_handled(tiny):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    gray = rgb.convert("L")
    rgba = rgb.convert("RGBA")
    emb = tiny.encode_image([rgb, gray, rgba, np.asarray(rgb)])
    assert emb.shape == (4, tiny.cfg.d_embed)
    assert torch.allclose(emb[0], emb[2], atol=1e-5)  # opaque RGBA is the RGB image
    assert torch.allclose(emb[0], emb[3], atol=1e-5)  # array and PIL agree
    gray_as_rgb = tiny.encode_image(gray.convert("RGB"))
    assert torch.allclose(emb[1], gray_as_rgb[0], atol=1e-5)
    with pytest.raises(ValueError, match="channels-first"):
        tiny.encode_image(np.zeros((3, 40, 50), dtype=np.uint8))


def test_zero_shot_probabilities(tiny, pixels):
    probs = tiny.zero_shot(pixels, ["cat", "dog"], templates=["a photo of a {}", "{}"])
    assert probs.shape == (4, 2)
    # by hand: each class's unit prompt embeddings averaged and renormalised, scaled cosines, softmax
    unit = torch.nn.functional.normalize
    prompts = unit(tiny.encode_text(["a photo of a cat", "cat", "a photo of a dog", "dog"], normalize=False), dim=-1)
    classes = unit(prompts.reshape(2, 2, -1).mean(1), dim=-1)
    image = unit(tiny.encode_image(pixels, normalize=False), dim=-1)
    expected = (tiny.text.logit_scale * image @ classes.T).softmax(-1)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)  # float32
    with pytest.raises(ValueError, match="class name"):
        tiny.zero_shot(pixels, [])


def test_text_cache_is_keyed_by_text(tiny):
    a = tiny.encode_text(["cat", "dog"])
    b = tiny.encode_text(["dog", "cat"])
    assert torch.equal(a[0], b[1]) and not torch.equal(a[0], a[1])
    assert len(tiny.text._cache) >= 2


def test_list_models_table():
    table = clipinterp.list_models()
    assert {"openai/clip-vit-base-patch16", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "shapes-clip"} <= set(table["name"])
    h14 = table.set_index("name").loc["laion/CLIP-ViT-H-14-laion2B-s32B-b79K"]
    assert (h14.layers, h14.width, h14.heads, h14.act) == (32, 1280, 16, "gelu")
