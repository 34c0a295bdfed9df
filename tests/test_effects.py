"""Total effects: each head's mean ablation, measured through every later layer."""
import pandas as pd
import pytest
import torch

from clipinterp import TotalEffects, decompose, total_effects
from clipinterp.interventions import mean
from clipinterp.methods.ccs import KeywordJudge, ccs_scores, ccs_table
from clipinterp.methods.textspan import textspan_heads
from clipinterp.textbank import TextBank


def _ablated_by_hand(model, pixels, head, reference):
    """The embedding change through the public intervention API and the full forward (no caching)."""
    edited = model.with_interventions(mean([head], reference=reference))
    return model.encode_image(pixels) - edited.encode_image(pixels)


def test_total_effects_equal_the_full_forward_with_each_head_mean_ablated(tiny) -> None:
    torch.manual_seed(0)
    pixels, other = torch.randn(8, 3, 32, 32), torch.randn(6, 3, 32, 32)
    effects = total_effects(tiny, pixels, progress=False)
    L, H = tiny.cfg.n_layers, tiny.cfg.n_heads
    assert isinstance(effects, TotalEffects) and effects.layers == list(range(L))
    assert effects.heads.shape == (8, L, H, tiny.cfg.d_embed) and effects.n_images == 8
    for layer in range(L):
        for head in range(H):
            expected = _ablated_by_hand(tiny, pixels, (layer, head), pixels)
            torch.testing.assert_close(effects.heads[:, layer, head], expected, atol=1e-5, rtol=0)
    assert effects.heads.abs().amax() > 1e-3  # the heads do something, so the comparison means something
    # means over another reference set
    shifted = total_effects(tiny, pixels, layers=[-1], reference=other, progress=False)
    torch.testing.assert_close(shifted.heads[:, 2, 1], _ablated_by_hand(tiny, pixels, (2, 1), other),
                               atol=1e-5, rtol=0)


def test_total_effects_of_some_layers_leave_the_rest_unmeasured(tiny) -> None:
    torch.manual_seed(1)
    pixels = torch.randn(5, 3, 32, 32)
    effects = total_effects(tiny, pixels, layers=[-1, 1], progress=False)
    assert effects.layers == [1, 2]
    assert effects.heads[:, 0].isnan().all() and not effects.heads[:, 1:].isnan().any()
    bank = TextBank.from_texts(["red", "blue", "a circle", "a square", "left"]).embed(tiny)
    assert len(textspan_heads(effects, bank, layers=[1, 2], n_texts=2)) == 2 * tiny.cfg.n_heads * 2
    with pytest.raises(ValueError, match=r"layers \[0\] were not measured .* pass layers=\[1, 2\]"):
        textspan_heads(effects, bank, layers=[0], n_texts=2)
    with pytest.raises(ValueError, match="out of range"):
        total_effects(tiny, pixels, layers=[3], progress=False)
    with pytest.raises(ValueError, match="no images"):
        total_effects(tiny, pixels[:0], progress=False)


def test_ccs_table_on_total_effects(tiny) -> None:
    torch.manual_seed(2)
    pixels = torch.randn(12, 3, 32, 32)
    bank = TextBank.from_texts(["red", "blue", "green", "circle", "square", "a red circle", "left"]).embed(tiny)
    judge = KeywordJudge({"color": ["red", "blue", "green"], "shape": ["circle", "square"]})
    table = ccs_table(tiny, pixels, bank, judge, layers=[1, 2], k=3, effect="total")
    effects = total_effects(tiny, pixels, layers=[1, 2], progress=False)
    expected = ccs_scores(textspan_heads(effects, bank, [1, 2], n_texts=3), judge, k=3)
    pd.testing.assert_frame_equal(table, expected)
    pd.testing.assert_frame_equal(ccs_table(tiny, effects, bank, judge, layers=[1, 2], k=3), expected)
    with pytest.raises(ValueError, match="effect='indirect'"):
        ccs_table(tiny, pixels, bank, judge, effect="indirect")
    # a precomputed object says which effect it holds; asking for the other one is an error
    direct = decompose(tiny, pixels, normalize=True, progress=False)
    with pytest.raises(ValueError, match="Decomposition holds direct effects"):
        ccs_table(tiny, direct, bank, judge, layers=[1, 2], k=3, effect="total")
    with pytest.raises(ValueError, match="TotalEffects holds total effects"):
        ccs_table(tiny, effects, bank, judge, layers=[1, 2], k=3, effect="direct")


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny, tmp_path, monkeypatch) -> None:
    import clipinterp.effects as effects_module

    torch.manual_seed(4)
    pixels = torch.randn(6, 3, 32, 32)
    whole = total_effects(tiny, pixels, progress=False)
    L, H = tiny.cfg.n_layers, tiny.cfg.n_heads
    calls, interrupt = [], [True]

    def ablation_that_breaks(heads, reference):
        calls.append(heads)
        if interrupt[0] and len(calls) == H + 2:  # in the second layer: the first is finished and saved
            raise KeyboardInterrupt
        return mean(heads, reference=reference)

    checkpoint = tmp_path / "effects"
    monkeypatch.setattr(effects_module, "mean", ablation_that_breaks)
    with pytest.raises(KeyboardInterrupt):
        total_effects(tiny, pixels, progress=False, checkpoint=checkpoint)
    assert [p.name for p in checkpoint.iterdir()] == ["layer_000.pt"]
    calls.clear()
    interrupt[0] = False
    resumed = total_effects(tiny, pixels, progress=False, checkpoint=checkpoint, batch_size=4)
    assert len(calls) == (L - 1) * H  # the first layer was not measured again; the batch size does not matter
    torch.testing.assert_close(resumed.heads, whole.heads, atol=1e-6, rtol=0)
    calls.clear()
    forwards = []
    handle = tiny.register_forward_pre_hook(lambda *_: forwards.append(1))
    tiny(pixels[:1])
    assert forwards  # the hook sees a forward pass, so the check below can fail
    forwards.clear()
    with monkeypatch.context() as patched:  # neither the means nor the cached residual are needed
        patched.setattr(effects_module, "LateRunner", None)
        patched.setattr(effects_module, "mean_z", None)
        again = total_effects(tiny, pixels, layers=[-1, 1], progress=False, checkpoint=checkpoint)
    handle.remove()
    assert not calls and not forwards and again.layers == [1, 2]  # every layer asked for is stored
    torch.testing.assert_close(again.heads[:, 1:], whole.heads[:, 1:], atol=1e-6, rtol=0)
    for changed in (dict(images=pixels[:5]), dict(images=pixels, reference=pixels[:3])):
        with pytest.raises(ValueError, match="another model, image set or reference"):
            total_effects(tiny, **changed, progress=False, checkpoint=checkpoint)
    with torch.no_grad():
        tiny.blocks[0].attn.W_O.mul_(1.5)
    with pytest.raises(ValueError, match="another model"):
        total_effects(tiny, pixels, progress=False, checkpoint=checkpoint)
