import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

import clipinterp  # noqa: E402
from clipinterp.viz import (contributions, image_array, plot_ablation_sweep, plot_ccs_tiers,  # noqa: E402
                            plot_decomposition_bars, plot_head_heatmap, plot_images, plot_patch_overlay,
                            plot_pursuit_table, plot_zero_shot, pursuit_summary, pursuit_table_style)
from clipinterp.viz.style import DIVERGING_CMAP, HIGHLIGHT, NEGATIVE, POSITIVE  # noqa: E402


def bar_heights(ax):
    return np.array([p.get_height() for p in ax.patches])


def tick_texts(labels):
    return [t.get_text() for t in labels]


# ---------------------------------------------------------------- head heatmap
def test_head_heatmap_cells_labels_and_highlight():
    values = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    labels = np.array([[f"head {layer}.{h} likes long descriptions" for h in range(4)] for layer in range(3)])
    fig = plot_head_heatmap(values, labels, highlight=["L1.H2", (0, 3)], title="TextSpan", label_chars=10)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    assert mesh.get_array().size == 12
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 4), values.numpy())
    texts = tick_texts(ax.texts)
    assert len(texts) == 12 and texts[0] == "head 0.0 …" and all(len(t) <= 10 for t in texts)
    frames = [p for p in ax.patches if p.get_edgecolor()[:3] == matplotlib.colors.to_rgb(HIGHLIGHT)]
    assert sorted(p.get_xy() for p in frames) == [(2, 1), (3, 0)]
    assert ax.get_title() == "TextSpan" and ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"


def test_head_heatmap_from_frame_leaves_absent_heads_blank():
    df = pd.DataFrame({"layer": [0, 0, 1], "head": [0, 2, 1], "ccs": [1.0, 5.0, 3.0]})
    fig = plot_head_heatmap(df, value="ccs", labels={"L0.H2": "red", (1, 1): "round"}, center=3.0)
    ax = fig.axes[0]
    grid = ax.collections[0].get_array().reshape(2, 3)
    assert grid.mask.tolist() == [[False, True, False], [True, False, True]]
    assert grid[0, 2] == 5.0 and grid[1, 1] == 3.0
    assert sorted(t for t in tick_texts(ax.texts) if t) == ["red", "round"]
    mesh = ax.collections[0]
    centre = matplotlib.colormaps[DIVERGING_CMAP](0.5)
    np.testing.assert_allclose(mesh.get_cmap()(mesh.norm(3.0)), centre, atol=0.02)


@pytest.mark.parametrize("values, kwargs, match", [
    (np.zeros(5), {}, "grid"),
    (np.zeros((2, 2, 2)), {}, "grid"),
    (np.zeros((2, 3)), {"labels": [["a"] * 2] * 2}, "labels have shape"),
    (np.zeros((2, 3)), {"highlight": ["L2.H0"]}, "out of range"),
    (np.full((2, 2), np.nan), {}, "NaN"),
    (pd.DataFrame({"layer": [0], "head": [0]}), {}, "value"),
    (pd.DataFrame({"layer": [0, 0], "head": [1, 1], "value": [1.0, 2.0]}), {}, "several rows for head L0.H1"),
])
def test_head_heatmap_rejects_bad_input(values, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_head_heatmap(values, **kwargs)


def test_plots_draw_into_a_given_axes_and_leave_pyplot_alone():
    before = plt.get_fignums()
    fig = plot_head_heatmap(np.ones((2, 2)))
    assert plt.get_fignums() == before and fig.canvas.figure is fig
    assert fig._repr_png_().startswith(b"\x89PNG")  # Jupyter shows it even before pyplot picks a backend
    outer = Figure()
    axes = outer.subplots(1, 2)
    assert plot_zero_shot([0.3, 0.7], ["a", "b"], ax=axes[1]) is outer
    assert len(axes[1].patches) == 2 and len(axes[0].patches) == 0


# ---------------------------------------------------------------- sweeps
def test_ablation_sweep_series_from_nested_dict():
    fig = plot_ablation_sweep({"forward": {2: 0.5, 0: 0.9, 1: 0.8}, "backward": {0: 0.9, 1: 0.85}}, baseline=0.9,
                              ylabel="accuracy")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"forward", "backward", "baseline"}
    assert list(lines["forward"].get_xdata()) == [0, 1, 2]
    assert list(lines["forward"].get_ydata()) == [0.9, 0.8, 0.5]
    assert list(lines["backward"].get_xdata()) == [0, 1]
    assert ax.get_ylabel() == "accuracy" and ax.get_legend() is not None


def test_ablation_sweep_long_frame_averages_repeats():
    df = pd.DataFrame({"n_layers": [0, 1, 0, 1, 0, 1], "accuracy": [0.8, 0.4, 1.0, 0.6, 0.5, 0.5],
                       "order": ["early", "early", "early", "early", "late", "late"]})
    ax = plot_ablation_sweep(df, x="n_layers", y="accuracy", hue="order").axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["early"].get_ydata(), [0.9, 0.5])
    np.testing.assert_allclose(lines["late"].get_ydata(), [0.5, 0.5])
    assert ax.get_xlabel() == "n_layers"
    single = plot_ablation_sweep({0: 0.9, 1: 0.7}).axes[0]
    assert len(single.lines) == 1 and single.get_legend() is None
    wide = plot_ablation_sweep(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "note": ["x", "y"]})).axes[0]
    assert [line.get_label() for line in wide.lines] == ["a", "b"]


@pytest.mark.parametrize("data, kwargs", [
    ({}, {}),
    ({"a": {0: 1.0}, 1: 0.5}, {}),
    ({0: "high"}, {}),
    (pd.DataFrame({"n": [0], "acc": [1.0], "order": ["a"]}), {"x": "n", "hue": "order"}),
    (pd.DataFrame({"n": [0]}), {"x": "n", "y": "accuracy"}),
    ([0.1, 0.2], {}),
])
def test_ablation_sweep_rejects_bad_input(data, kwargs):
    with pytest.raises(ValueError):
        plot_ablation_sweep(data, **kwargs)


# ---------------------------------------------------------------- images
def test_patch_overlay_stretches_the_grid_over_the_image():
    heat = torch.arange(16.0).reshape(4, 4)
    fig = plot_patch_overlay(torch.randn(1, 3, 32, 32), heat, alpha=0.4, title="map")
    ax = fig.axes[0]
    base, overlay = ax.images
    assert base.get_array().shape == (32, 32, 3)
    np.testing.assert_allclose(overlay.get_array(), heat.numpy())
    assert list(overlay.get_extent()) == [0, 32, 32, 0] and overlay.get_alpha() == 0.4
    assert len(fig.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="grid"):
        plot_patch_overlay(torch.rand(3, 32, 32), torch.rand(16))
    with pytest.raises(ValueError, match="alpha"):
        plot_patch_overlay(torch.rand(3, 32, 32), torch.rand(4, 4), alpha=2.0)


def test_image_array_forms():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.1, 0.25)
    target = np.random.default_rng(0).random((8, 8, 3))
    pixels = torch.tensor((target - mean) / std).permute(2, 0, 1)
    np.testing.assert_allclose(image_array(pixels, mean, std), target, atol=1e-6)
    scaled = image_array(pixels)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    uint8 = (target * 255).astype(np.uint8)
    np.testing.assert_allclose(image_array(uint8), uint8 / 255.0)
    np.testing.assert_allclose(image_array(Image.fromarray(uint8)), uint8 / 255.0)
    assert image_array(np.zeros((8, 8))).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="cannot show"):
        image_array(np.zeros((2, 8, 8, 3)))


def test_plot_images_one_axes_per_image():
    fig = plot_images(torch.randn(3, 3, 16, 16), ["a", "b", "c"], ncols=2)
    assert len(fig.axes) == 3 and [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="titles"):
        plot_images(torch.randn(2, 3, 16, 16), ["a"])
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    for one in (image, torch.randn(3, 16, 16), Image.fromarray(image)):  # one image is one panel
        assert len(plot_images(one).axes) == 1


def test_ablation_sweep_with_named_positions():
    fig = plot_ablation_sweep({"L0": 0.9, "L1": 0.7, "L2": 0.4})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:3] == ["L0", "L1", "L2"]


# ---------------------------------------------------------------- CCS tiers
def test_ccs_tiers_bars_spread_and_seed_points():
    df = pd.DataFrame({"tier": ["original"] * 3 + ["high CCS"] * 3 + ["low CCS"] * 3 + ["random"] * 3,
                       "seed": [0, 1, 2] * 4,
                       "accuracy": [0.8, 0.8, 0.8, 0.2, 0.3, 0.4, 0.7, 0.75, 0.8, 0.5, 0.6, 0.4]})
    fig = plot_ccs_tiers(df, order=["original", "high CCS", "low CCS", "random"])
    ax = fig.axes[0]
    np.testing.assert_allclose(bar_heights(ax), [0.8, 0.3, 0.75, 0.5])
    assert tick_texts(ax.get_xticklabels()) == ["original", "high CCS", "low CCS", "random"]
    errorbar = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    spans = [s[1, 1] - s[0, 1] for s in errorbar.lines[2][0].get_segments()]
    np.testing.assert_allclose(spans, [0.0, 0.2, 0.1, 0.2], atol=1e-12)  # +-1 std
    points = [c for c in ax.collections if c.get_offsets().shape[0] == 3]
    assert len(points) == 4
    summary = pd.DataFrame({"tier": ["original", "pruned"], "mean": [0.9, 0.4]})
    np.testing.assert_allclose(bar_heights(plot_ccs_tiers(summary).axes[0]), [0.9, 0.4])


def test_ccs_tiers_rejects_bad_input():
    with pytest.raises(ValueError, match="'accuracy' column"):
        plot_ccs_tiers(pd.DataFrame({"tier": ["a"], "acc": [1.0]}))
    with pytest.raises(ValueError, match="tier"):
        plot_ccs_tiers(pd.DataFrame({"accuracy": [1.0]}))
    with pytest.raises(ValueError, match="unknown tier"):
        plot_ccs_tiers(pd.DataFrame({"tier": ["a"], "accuracy": [1.0]}), order=["b"])


# ---------------------------------------------------------------- Head Pursuit
@pytest.fixture()
def pursuit_runs():
    random = [{"k": k, "method": "random", "value": v} for k in (8, 16) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    chosen = [{"k": 8, "method": "SOMP", "value": 0.9}, {"k": 16, "method": "SOMP", "value": 0.95},
              {"k": 8, "method": "logit lens", "value": 0.6}, {"k": 16, "method": "logit lens", "value": 0.7}]
    return pd.DataFrame(chosen + random)


def test_pursuit_summary_and_table(pursuit_runs):
    summary = pursuit_summary(pursuit_runs)
    assert list(summary["k"]) == [8, 8, 8, 16, 16, 16]
    assert list(summary["method"][:3]) == ["SOMP", "logit lens", "random"]
    row = summary[(summary["k"] == 8) & (summary["method"] == "random")].iloc[0]
    assert (row["median"], row["q25"], row["q75"], row["n"]) == pytest.approx((0.3, 0.2, 0.4, 5))
    table = pursuit_table_style(pursuit_runs, decimals=2)
    assert list(table.columns) == ["SOMP", "logit lens", "random"] and list(table.index) == [8, 16]
    assert table.loc[8, "random"] == "0.30 [0.20, 0.40]" and table.loc[16, "SOMP"] == "0.95"


def test_pursuit_grouped_bars(pursuit_runs):
    ax = plot_pursuit_table(pursuit_runs, ylabel="accuracy drop").axes[0]
    assert len(ax.patches) == 6
    np.testing.assert_allclose(bar_heights(ax), [0.9, 0.95, 0.6, 0.7, 0.3, 0.3])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SOMP", "logit lens", "random"]
    assert tick_texts(ax.get_xticklabels()) == ["8", "16"] and ax.get_ylabel() == "accuracy drop"
    summarised = pd.DataFrame({"k": [4, 4], "method": ["SOMP", "random"], "median": [0.5, 0.1],
                               "q25": [0.5, 0.05], "q75": [0.5, 0.2]})
    np.testing.assert_allclose(bar_heights(plot_pursuit_table(summarised).axes[0]), [0.5, 0.1])
    with pytest.raises(ValueError, match="median"):
        plot_pursuit_table(pd.DataFrame({"k": [1], "method": ["a"], "score": [1.0]}))


# ---------------------------------------------------------------- decomposition and zero-shot
def fake_projection(n_images=2, n_layers=2, n_heads=3, n_texts=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(heads=torch.randn(n_images, n_layers, n_heads, n_texts, generator=g),
                           mlps=torch.randn(n_images, n_layers, n_texts, generator=g),
                           embed=torch.randn(n_images, n_texts, generator=g), bias=torch.zeros(n_images, n_texts))


def test_decomposition_bars_show_the_largest_parts():
    dec = fake_projection()
    parts = contributions(dec, 1, text_index=2)
    assert len(parts) == 2 * 3 + 2 + 2 and parts["L1.H2"] == dec.heads[1, 1, 2, 2].item()
    assert parts["MLP0"] == dec.mlps[1, 0, 2].item()
    fig = plot_decomposition_bars(dec, 1, top=4, text_index=2, text="a cat")
    ax = fig.axes[0]
    expected = parts.abs().sort_values(ascending=False).index[:4]
    assert tick_texts(ax.get_yticklabels()) == list(expected)
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths, parts[expected].to_numpy(), rtol=1e-6)
    colors = [matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches]
    assert colors == [POSITIVE if w >= 0 else NEGATIVE for w in widths]
    assert f"{parts.sum():.3f}" in ax.get_title() and "a cat" in ax.get_title()


@pytest.mark.parametrize("kwargs, match", [
    ({"image_index": 2}, "image_index"),
    ({"image_index": 0, "text_index": 4}, "text_index"),
    ({"image_index": 0, "top": 0}, "top"),
])
def test_decomposition_bars_reject_bad_indices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_decomposition_bars(fake_projection(), **kwargs)
    flat = SimpleNamespace(heads=torch.zeros(2, 3, 4), mlps=None, embed=None, bias=None)
    with pytest.raises(ValueError, match="heads must be"):
        contributions(flat, 0)


def test_contributions_sum_to_the_cosine(tiny, pixels):
    texts = ["a cat", "a dog"]
    text_emb = tiny.encode_text(texts)
    projected = clipinterp.decompose(tiny, pixels, normalize=True).project(text_emb)
    cosine = tiny.encode_image(pixels) @ text_emb.T
    for i in range(len(pixels)):
        for j in range(len(texts)):
            assert contributions(projected, i, j).sum() == pytest.approx(cosine[i, j].item(), abs=1e-5)
    with pytest.raises(ValueError, match="not projected"):  # its last axis is the embedding, not texts
        contributions(clipinterp.decompose(tiny, pixels), 0)


def test_zero_shot_bars_sorted_with_baseline():
    probs = torch.tensor([0.1, 0.6, 0.05, 0.25])
    fig = plot_zero_shot(probs, ["cat", "dog", "bird", "fish"], top=3, baseline=[0.4, 0.2, 0.1, 0.3])
    ax = fig.axes[0]
    assert tick_texts(ax.get_yticklabels()) == ["dog", "fish", "cat"]
    np.testing.assert_allclose([p.get_width() for p in ax.patches], [0.6, 0.25, 0.1], rtol=1e-6)
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], [0.2, 0.3, 0.4])
    assert tick_texts(ax.texts) == ["0.60", "0.25", "0.10"]
    with pytest.raises(ValueError, match="class names"):
        plot_zero_shot(probs, ["cat"])
    with pytest.raises(ValueError, match="one image"):
        plot_zero_shot(probs[None], ["cat", "dog", "bird", "fish"])
    with pytest.raises(ValueError, match="baseline"):
        plot_zero_shot(probs, ["cat", "dog", "bird", "fish"], baseline=[0.5, 0.5])
