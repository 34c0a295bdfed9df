"""Each intervention against an independent computation (tolerance 1e-5 relative, float32)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from clipinterp import interventions as iv

TOL = 1e-5


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def edited_copy(model, edit):
    """The unhooked model on a copy of the weights edited by hand."""
    clone = copy.deepcopy(model)
    with torch.no_grad():
        edit(clone)
    return clone


def test_zero_scale_prune_equal_hand_edited_weights(tiny, pixels):
    heads = ["L1.H2", (2, 0)]

    def scale_w(alpha):
        def edit(m):
            m.blocks[1].attn.W_O[2] *= alpha
            m.blocks[2].attn.W_O[0] *= alpha
        return edit

    for intervention, edit in [(iv.zero(heads), scale_w(0.0)), (iv.scale(-1.0, heads), scale_w(-1.0)),
                               (iv.scale(5.0, heads), scale_w(5.0))]:
        ours = tiny.with_interventions(intervention).encode_image(pixels, normalize=False)
        assert rel(ours, edited_copy(tiny, edit)(pixels)) < TOL, intervention

    def prune_w(m):  # CCS code: query rows (weight, bias) and out-projection columns
        for layer, h in [(1, 2), (2, 0)]:
            m.blocks[layer].attn.W_Q[h] = 0
            m.blocks[layer].attn.b_Q[h] = 0
            m.blocks[layer].attn.W_O[h] = 0

    ours = tiny.with_interventions(iv.prune(heads)).encode_image(pixels, normalize=False)
    assert rel(ours, edited_copy(tiny, prune_w)(pixels)) < TOL
    assert rel(ours, tiny(pixels)) > 1e-3  # it does something


def test_attn_scale_equals_output_scaling(tiny, pixels):
    a = tiny.with_interventions(iv.attn_scale([0.3, 0.0], ["L0.H1", "L2.H3"]))(pixels)
    b = tiny.with_interventions(iv.scale(0.3, "L0.H1"), iv.scale(0.0, "L2.H3"))(pixels)
    assert rel(a, b) < TOL
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny.with_interventions(iv.attn_scale(1.5, "L0.H1"))


def test_attention_pattern_variants(tiny, pixels):
    _, cache = tiny.with_interventions(iv.attn_identity("L1.H0"), iv.attn_uniform("L2.H1", cls_only=True)).run_with_cache(pixels)
    p1, p2 = cache["blocks.1.attn.hook_pattern"], cache["blocks.2.attn.hook_pattern"]
    T = p1.shape[-1]
    assert torch.equal(p1[:, 0], torch.eye(T).expand(4, T, T))
    assert torch.allclose(p2[:, 1, 0], torch.full((4, T), 1 / T))
    assert not torch.allclose(p2[:, 1, 1], torch.full((4, T), 1 / T))  # other rows untouched
    # identity attention: the head's z at each position is that position's own value vector
    assert rel(cache["blocks.1.attn.hook_z"][:, :, 0], cache["blocks.1.attn.hook_v"][:, :, 0]) < TOL


def test_mean_ablation_replaces_by_reference_mean(tiny, pixels):
    reference = torch.randn(6, 3, 32, 32)
    _, ref_cache = tiny.run_with_cache(reference)
    expected = ref_cache["blocks.1.attn.hook_z"][:, :, 3].mean(0)
    _, cache = tiny.with_interventions(iv.mean("L1.H3", reference)).run_with_cache(pixels)
    assert rel(cache["blocks.1.attn.hook_z"][:, :, 3], expected.expand(4, -1, -1)) < TOL


def test_centred_scale_moves_only_the_deviation_from_the_reference_mean(tiny, pixels):
    reference = torch.randn(6, 3, 32, 32)
    heads = ["L1.H3", "L2.H0"]
    _, ref_cache = tiny.run_with_cache(reference)
    _, plain = tiny.run_with_cache(pixels)
    _, first_only = tiny.with_interventions(iv.scale(-2.0, "L1.H3", reference)).run_with_cache(pixels)
    unedited = {1: plain, 2: first_only}  # each head's own z, given the edits upstream of it
    _, cache = tiny.with_interventions(iv.scale(-2.0, heads, reference)).run_with_cache(pixels)
    for layer, h in [(1, 3), (2, 0)]:
        name = f"blocks.{layer}.attn.hook_z"
        mu, z = ref_cache[name][:, :, h].mean(0), unedited[layer][name][:, :, h]
        assert rel(cache[name][:, :, h], mu - 2.0 * (z - mu)) < TOL
    as_mean = tiny.with_interventions(iv.scale(0.0, heads, reference)).encode_image(pixels)
    assert rel(as_mean, tiny.with_interventions(iv.mean(heads, reference)).encode_image(pixels)) < TOL
    assert rel(tiny.with_interventions(iv.scale(1.0, heads, reference)).encode_image(pixels),
               tiny.encode_image(pixels)) < TOL
    assert "around the reference mean" in iv.scale(2.0, heads, reference).describe()


def test_patch_reproduces_source_values(tiny, pixels):
    clean, corrupt = pixels[:2], pixels[2:]
    _, source = tiny.run_with_cache(clean)
    _, patched = tiny.with_interventions(iv.patch(["L1.H1", "L2.H3"], source)).run_with_cache(corrupt)
    assert rel(patched["blocks.1.attn.hook_z"][:, :, 1], source["blocks.1.attn.hook_z"][:, :, 1]) < TOL
    assert rel(patched["blocks.2.attn.hook_z"][:, :, 3], source["blocks.2.attn.hook_z"][:, :, 3]) < TOL
    # patching every head's pattern with the clean run's, from the clean run itself, changes nothing
    every = [(l, h) for l in range(3) for h in range(4)]
    same = tiny.with_interventions(iv.patch(every, source, what="pattern"))(clean)
    assert rel(same, tiny(clean)) < TOL
    with pytest.raises(ValueError, match="batch of 1"):
        tiny.with_interventions(iv.patch("L0.H0", source))(torch.randn(3, 3, 32, 32))


def test_context_manager_edits_model_and_cleans_up(tiny, pixels):
    base = tiny(pixels)
    with tiny.with_interventions(iv.zero("L0.H0")):
        inside = tiny(pixels)
    assert rel(inside, base) > 1e-4
    assert rel(tiny(pixels), base) < 1e-7
    with pytest.raises(RuntimeError):
        with tiny.with_interventions(iv.zero("L0.H0")):
            raise RuntimeError
    assert all(not hp._forward_hooks for hp in tiny.hook_points())


def test_chained_and_nested_edits_apply_once(tiny, pixels):
    both = tiny.with_interventions(iv.scale(2.0, "L1.H0"), iv.zero("L2.H1"))(pixels)
    chained = tiny.with_interventions(iv.scale(2.0, "L1.H0")).with_interventions(iv.zero("L2.H1"))
    assert chained.describe() == "scale(L1.H0, alpha=2.0) + zero(L2.H1)"
    torch.testing.assert_close(chained(pixels), both, atol=1e-6, rtol=0)
    edited = tiny.with_interventions(iv.scale(2.0, "L1.H0"))
    once = edited(pixels)
    assert rel(once, tiny(pixels)) > 1e-4
    with edited:  # calling the edited model inside its own block does not apply the edit twice
        torch.testing.assert_close(edited(pixels), once, atol=1e-6, rtol=0)
        torch.testing.assert_close(tiny(pixels), once, atol=1e-6, rtol=0)
        inside = edited.with_interventions(iv.zero("L2.H1"))(pixels)  # chained inside the block: scaled once
    torch.testing.assert_close(inside, edited.with_interventions(iv.zero("L2.H1"))(pixels), atol=1e-6, rtol=0)
    assert all(not hp._forward_hooks for hp in tiny.hook_points())


def test_heads_given_as_numpy_pairs_and_per_head_factors(tiny, pixels):
    from clipinterp.heads import parse_heads

    assert parse_heads((np.int64(1), np.int64(2))) == [(1, 2)]  # one head, not two
    one = tiny.with_interventions(iv.attn_scale([0.5], (1, 2)))(pixels)
    torch.testing.assert_close(one, tiny.with_interventions(iv.attn_scale(0.5, "L1.H2"))(pixels))
    with pytest.raises(ValueError, match="listed twice"):
        tiny.with_interventions(iv.attn_scale([0.5, 0.2], [(1, 2), "L1.H2"]))


def test_bad_heads(tiny):
    with pytest.raises(ValueError, match="layer 7 out of range"):
        tiny.with_interventions(iv.zero("L7.H0"))
    with pytest.raises(ValueError, match="cannot read head"):
        tiny.with_interventions(iv.zero("layer 1 head 2"))
    with pytest.raises(ValueError, match="empty"):
        tiny.with_interventions(iv.mean("L0.H0", torch.randn(0, 3, 32, 32)))
