"""TransformerLens's own tools on HookedCLIP: cache decompositions, per-image LayerNorm, logit
attributions and activation-patching sweeps give correct results (tolerances stated per check)."""
from __future__ import annotations

import torch
from transformer_lens import patching

TOL = 1e-5  # relative, float32


def close(a, b, tol=TOL):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item() < tol


def test_full_resid_decomposition_sums_to_residual(tiny, pixels):
    _, cache = tiny.run_with_cache(pixels)
    final = cache[f"blocks.{tiny.cfg.n_layers - 1}.hook_resid_post"]
    stack = cache.get_full_resid_decomposition(expand_neurons=False)
    assert close(stack.sum(0), final)
    neurons = cache.get_full_resid_decomposition(expand_neurons=True)
    assert close(neurons.sum(0), final)
    layers = cache.decompose_resid(layer=tiny.cfg.n_layers)
    assert close(layers.sum(0), final)  # attn_out and mlp_out carry their biases
    heads = cache.stack_head_results(layer=-1)
    L, H = tiny.cfg.n_layers, tiny.cfg.n_heads
    assert heads.shape == (L * H, *final.shape)
    per_layer = heads.reshape(L, H, *final.shape).sum(1)  # each layer's heads plus its b_O: its attn_out
    for layer in range(L):
        assert close(per_layer[layer] + tiny.blocks[layer].attn.b_O, cache[f"blocks.{layer}.hook_attn_out"])


def test_apply_ln_to_stack_is_per_image(tiny, pixels):
    """The final LN's scale has a position axis, so ``pos_slice=0`` slices positions, not the
    batch: every image gets its own scale (ANCHORS section 1's silent 4.6e-3 error otherwise)."""
    emb, cache = tiny.run_with_cache(pixels)
    stack = cache.get_full_resid_decomposition(expand_neurons=False, pos_slice=0)
    scaled = cache.apply_ln_to_stack(stack, layer=-1, pos_slice=0)
    rebuilt = (scaled.sum(0) * tiny.ln_final.w + tiny.ln_final.b) @ tiny.W_proj
    assert close(rebuilt, emb)
    # each image really has a different scale, so using image 0's for all would be caught
    scales = cache["ln_final.hook_scale"][:, 0, 0]
    assert (scales - scales[0]).abs().max() > 1e-3


def test_logit_attrs_add_up_to_image_text_logit(tiny, pixels):
    texts = ["a photo of a cat", "dog", "a", "of"]
    emb, cache = tiny.run_with_cache(pixels)
    stack = cache.get_full_resid_decomposition(expand_neurons=False, pos_slice=0)
    attrs = cache.logit_attrs(stack, tokens=texts, pos_slice=0)  # [components, batch]
    t = tiny.encode_text(texts)
    remainder = tiny.ln_final.b @ tiny.W_proj @ t.T  # the LN bias term, documented
    expected = (emb * t).sum(-1)
    assert close(attrs.sum(0) + remainder, expected)


def test_accumulated_resid_with_ln(tiny, pixels):
    emb, cache = tiny.run_with_cache(pixels)
    acc = cache.accumulated_resid(layer=-1, apply_ln=True, pos_slice=0)
    assert acc.shape[0] == tiny.cfg.n_layers + 1
    assert close((acc[-1]) @ tiny.W_proj, emb)


def test_head_patching_sweep_matches_manual_patch(tiny, pixels):
    clean, corrupted = pixels[:2], pixels[2:]
    _, clean_cache = tiny.run_with_cache(clean)
    direction = torch.randn(tiny.cfg.d_embed)

    def metric(out):
        return (out @ direction).sum()

    sweep = patching.get_act_patch_attn_head_out_all_pos(tiny, corrupted, clean_cache, metric)
    assert sweep.shape == (tiny.cfg.n_layers, tiny.cfg.n_heads)

    def patch_head(z, hook):
        z[:, :, 2] = clean_cache[hook.name][:, :, 2]
        return z

    manual = metric(tiny.run_with_hooks(corrupted, fwd_hooks=[("blocks.1.attn.hook_z", patch_head)]))
    assert torch.allclose(sweep[1, 2], manual, rtol=1e-5, atol=1e-5)
    # patching every head of the last layer's output with the clean run gives the clean run
    assert not torch.allclose(sweep[1, 2], metric(tiny(corrupted)))
