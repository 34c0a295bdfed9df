"""Spatial maps: patch (r, c) of the image lands on map[r, c], the maps add up to the heads'
contributions, and bad text embeddings or selections fail clearly."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from clipinterp.decompose import Decomposition, decompose
from clipinterp.spatial import model_view, overlay, spatial_maps, upsample

matplotlib.use("Agg")


def by_hand(tokens: torch.Tensor, token_layers: list[int], n_layers: int) -> Decomposition:
    """A decomposition holding only ``tokens [N, len(token_layers), H, T, d]``."""
    n, _, h, _, d = tokens.shape
    return Decomposition(heads=torch.zeros(n, n_layers, h, d), mlps=torch.zeros(n, n_layers, d), embed=torch.zeros(n, d),
                         bias=torch.zeros(n, d), norms=torch.ones(n), tokens=tokens, token_layers=token_layers)


def test_planted_token_pattern_lands_row_by_row():
    grid, width = 4, 5
    tokens = torch.zeros(2, 2, 3, 1 + grid * grid, width)
    index = torch.arange(1 + grid * grid, dtype=torch.float32)
    tokens[:, 1, 2, :, 0] = index + 100 * torch.arange(2.0)[:, None]  # layer 2, head 2, on dimension 0
    tokens[:, 1, 2, 0, 0] = 1e6  # the CLS token: never on the map
    tokens[:, 0, 0, :, 1] = -index  # layer 0, head 0, on dimension 1
    d = by_hand(tokens, token_layers=[0, 2], n_layers=3)
    e0, e1 = torch.eye(width)[:2]
    maps = spatial_maps(d, None, e0)
    assert maps.shape == (2, grid, grid)
    for n in range(2):
        for r in range(grid):
            for c in range(grid):
                assert maps[n, r, c] == 100 * n + 1 + r * grid + c
    assert torch.equal(spatial_maps(d, None, e0, heads=["L2.H2"]), maps)
    assert torch.equal(spatial_maps(d, None, e0, heads=[(0, 0)]), torch.zeros(2, grid, grid))
    assert torch.equal(spatial_maps(d, None, e1, layers=[0]), -maps + 100 * torch.arange(2.0)[:, None, None])
    both = spatial_maps(d, None, torch.stack([e0, e1]))
    assert both.shape == (2, 2, grid, grid) and torch.equal(both[:, 0], maps)


def test_patch_of_the_image_is_the_same_cell_of_the_map(tiny, pixels):
    """Change the pixels of patch (1, 2) only: the patch embeddings change at exactly one token, and
    spatial_maps puts that token at map[1, 2]."""
    p, g = tiny.cfg.patch_size, tiny.cfg.grid_size
    edited = pixels.clone()
    edited[:, :, 1 * p:2 * p, 2 * p:3 * p] += 1.0
    _, a = tiny.run_with_cache(pixels, names_filter=["hook_embed_raw"])
    _, b = tiny.run_with_cache(edited, names_filter=["hook_embed_raw"])
    changed = (b["hook_embed_raw"] - a["hook_embed_raw"]).norm(dim=-1)  # [N, 1 + g * g]
    maps = spatial_maps(by_hand(changed[:, None, None, :, None], [0], 1), None, torch.ones(1))
    expected = torch.zeros(g, g)
    expected[1, 2] = 1
    assert torch.equal(maps > 1e-4, expected.bool().expand(len(pixels), g, g))


def test_model_maps_are_the_token_contributions_and_add_up_to_the_heads(tiny, pixels):
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(24), dim=0)
    d = decompose(tiny, pixels, tokens=True, progress=False)
    maps = spatial_maps(tiny, pixels, text, layers=[1, 2])
    g = tiny.cfg.grid_size
    for n, r, c in [(0, 1, 2), (3, 3, 0)]:
        expected = (d.tokens[n, 1:3, :, 1 + r * g + c] @ text).sum()
        torch.testing.assert_close(maps[n, r, c], expected, rtol=1e-5, atol=1e-6)
    cls = (d.tokens[:, 1:3, :, 0] @ text).sum((1, 2))
    torch.testing.assert_close(maps.sum((1, 2)) + cls, (d.heads[:, 1:3] @ text).sum((1, 2)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(spatial_maps(tiny, pixels, text, heads=["L2.H1"]),
                               spatial_maps(d, None, text, heads=["L2.H1"]), rtol=1e-5, atol=1e-6)
    centered = spatial_maps(tiny, pixels, text, layers=[2], convention="centered", normalize=True)
    expected = decompose(tiny, pixels, tokens=True, layers=[2], convention="centered", normalize=True, progress=False)
    torch.testing.assert_close(centered[0, 0, 0], (expected.tokens[0, 0, :, 1] @ text).sum(), rtol=1e-5, atol=1e-6)


def test_bad_text_embeddings_and_selections_fail_clearly(tiny, pixels):
    d = decompose(tiny, pixels[:2], tokens=True, layers=[1], progress=False)
    cases = [
        (d, None, torch.randn(23), {}, r"expected \[24\] or \[M, 24\]"),
        (d, None, torch.randn(2, 2, 24), {}, r"shape \(2, 2, 24\)"),
        (d.project(torch.randn(3, 24)), None, torch.randn(24), {}, "already projected"),
        (tiny, pixels[:2], torch.randn(512), {}, "expected"),
        (decompose(tiny, pixels[:2], progress=False), None, torch.randn(24), {}, "tokens=True"),
        (d, None, torch.randn(24), {"layers": [2]}, r"layers \[2\] have no per-token"),
        (d, None, torch.randn(24), {"heads": ["L0.H1"]}, r"layers \[0\]"),
        (d, None, torch.randn(24), {"heads": ["L1.H9"]}, "out of range"),
        (d, pixels[:2], torch.randn(24), {}, "images=None"),
        (d, None, torch.randn(24), {"layers": [1], "heads": ["L1.H0"]}, "not both"),
    ]
    for source, images, text, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            spatial_maps(source, images, text, **kwargs)


def test_upsample_keeps_each_patch_in_its_place():
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 2] = 1.0
    maps[1] = 3.0
    big = upsample(maps, 32)
    assert big.shape == (2, 32, 32) and upsample(maps[0], (16, 24)).shape == (16, 24)
    row, col = divmod(int(big[0].argmax()), 32)
    assert 8 <= row < 16 and 16 <= col < 24  # inside patch (1, 2)'s 8x8 block
    torch.testing.assert_close(big[1], torch.full((32, 32), 3.0))


def test_overlay_draws_the_upsampled_map_over_the_image(tiny):
    import matplotlib.pyplot as plt

    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (40, 64, 3), dtype=np.uint8))
    view = model_view(tiny, image)
    assert view.size == (32, 32)
    torch.testing.assert_close(tiny.preprocess(view), tiny.preprocess(image), rtol=0, atol=1e-6)
    heatmap = torch.arange(16.0).reshape(4, 4)
    ax = overlay(view, heatmap, alpha=0.4, cmap="viridis")
    picture, drawn = ax.get_images()
    assert picture.get_array().shape == (32, 32, 3) and drawn.get_array().shape == (32, 32)
    assert drawn.get_alpha() == 0.4 and drawn.get_cmap().name == "viridis"
    np.testing.assert_allclose(drawn.get_array(), upsample(heatmap, 32).numpy())
    fig, given = plt.subplots()
    assert overlay(np.asarray(view), heatmap.numpy(), ax=given) is given
    with pytest.raises(ValueError, match="one map"):
        overlay(view, torch.zeros(2, 4, 4))
    plt.close("all")
