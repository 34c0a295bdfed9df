"""Static plots for notebooks and reports (matplotlib + seaborn, styled by :mod:`.style`).

Every function returns the :class:`~matplotlib.figure.Figure` it drew on. Pass ``ax`` to draw into
an existing axes; without it a new figure is made that is not registered with pyplot, so a
returned figure displays exactly once in Jupyter (``fig.savefig(...)`` saves it). Bad shapes and
missing columns raise ``ValueError``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..heads import HeadLike, head_name, parse_head, parse_heads
from .style import (CELL_FONTSIZE, CMAP, DIVERGING_CMAP, HIGHLIGHT, LABEL_CHARS, NEGATIVE, OVERLAY_CMAP, POSITIVE,
                    grid_figsize, new_axes, new_figure, palette, styled, truncate)

__all__ = [
    "contributions", "image_array", "plot_ablation_sweep", "plot_ccs_tiers", "plot_decomposition_bars",
    "plot_head_heatmap", "plot_images", "plot_patch_overlay", "plot_pursuit_table", "plot_zero_shot",
    "pursuit_summary", "pursuit_table_style",
]

Stats = Optional[Sequence[float]]


def _numeric(values: Any, what: str) -> np.ndarray:
    """A float array from a tensor, array or nested sequence."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numeric") from None


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` naming the columns of ``columns`` that ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, df.columns))}")


# ---------------------------------------------------------------- head heatmaps
def _head_grid(values: Any, value: str) -> np.ndarray:
    """``[L, H]`` floats from an array or a frame with ``layer, head, <value>`` (NaN where absent)."""
    if isinstance(values, pd.DataFrame):
        require_columns(values, ["layer", "head", value], "the head frame")
        if values.empty:
            raise ValueError("the head frame has no rows")
        layers, heads = values["layer"].astype(int).to_numpy(), values["head"].astype(int).to_numpy()
        if layers.min() < 0 or heads.min() < 0:
            raise ValueError("layer and head indices must be >= 0")
        if values.duplicated(["layer", "head"]).any():
            layer, head = values.loc[values.duplicated(["layer", "head"]), ["layer", "head"]].iloc[0]
            raise ValueError(f"several rows for head {head_name((int(layer), int(head)))}: keep one value per head "
                             "(e.g. filter to one concept or one rank)")
        grid = np.full((layers.max() + 1, heads.max() + 1), np.nan)
        grid[layers, heads] = _numeric(values[value], f"column {value!r}")
        return grid
    grid = _numeric(values, "head values")
    if grid.ndim != 2 or 0 in grid.shape:
        raise ValueError(f"head values must be a [layers, heads] grid; got shape {grid.shape}")
    return grid


def _label_grid(labels: Any, n_layers: int, n_heads: int, chars: int) -> np.ndarray:
    """``[L, H]`` cell strings from a ``[L, H]`` array or a ``{head: text}`` mapping / Series."""
    grid = np.full((n_layers, n_heads), "", dtype=object)
    if isinstance(labels, pd.DataFrame):
        raise ValueError("labels must be a [layers, heads] array, a {head: text} dict or a Series indexed by "
                         "(layer, head), e.g. df.set_index(['layer', 'head'])['text']")
    if hasattr(labels, "items"):
        items = [(parse_head(head, n_layers, n_heads), text) for head, text in labels.items()]
    else:
        array = np.asarray(labels, dtype=object)
        if array.shape != (n_layers, n_heads):
            raise ValueError(f"labels have shape {array.shape}, the values {(n_layers, n_heads)}")
        items = [((layer, head), array[layer, head]) for layer in range(n_layers) for head in range(n_heads)]
    for (layer, head), text in items:
        if text is not None and not (isinstance(text, float) and math.isnan(text)):
            grid[layer, head] = truncate(text, chars)
    return grid


@styled
def plot_head_heatmap(values: Any, labels: Any = None, *, value: str = "value", title: Optional[str] = None,
                      cmap: Optional[str] = None, center: Optional[float] = None,
                      highlight: Union[HeadLike, Sequence[HeadLike], None] = None, vmin: Optional[float] = None,
                      vmax: Optional[float] = None, colorbar_label: Optional[str] = None,
                      label_chars: int = LABEL_CHARS, ax: Optional[Axes] = None) -> Figure:
    """Layer x head heatmap (layer 0 on top). ``values``: ``[L, H]`` array/tensor, or a frame with
    ``layer, head`` and the ``value`` column (absent heads are blank). ``labels``: text drawn in
    the cells (truncated to ``label_chars``), as a ``[L, H]`` array or ``{head: text}`` / a Series
    indexed by ``(layer, head)`` -- e.g. TextSpan's top text per head,
    ``ts[ts["rank"] == 0].set_index(["layer", "head"])["text"]``. ``center`` switches to a
    diverging colormap centred there; ``highlight`` frames heads."""
    grid = _head_grid(values, value)
    if np.isnan(grid).all():
        raise ValueError("every head value is NaN: nothing to plot")
    n_layers, n_heads = grid.shape
    annot = None if labels is None else _label_grid(labels, n_layers, n_heads, label_chars)
    framed = parse_heads(highlight, n_layers, n_heads)
    cell = (0.55, 0.4) if annot is None else (0.2 + 0.065 * label_chars, 0.45)
    fig, ax = new_axes(ax, grid_figsize(n_layers, n_heads, cell))
    cmap = cmap or (CMAP if center is None else DIVERGING_CMAP)
    sns.heatmap(grid, mask=np.isnan(grid), annot=annot, fmt="", cmap=cmap, center=center, vmin=vmin, vmax=vmax,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": CELL_FONTSIZE},
                cbar_kws={"label": colorbar_label or value}, ax=ax)
    for layer, head in framed:
        ax.add_patch(Rectangle((head, layer), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=2.5, clip_on=False))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------- sweeps
def _sweep_table(data: Any, x: Optional[str], y: Optional[str], hue: Optional[str]) -> pd.DataFrame:
    """A wide frame: index the x values (sorted), one float column per series."""
    if isinstance(data, Mapping):
        nested = [isinstance(v, Mapping) for v in data.values()]
        if any(nested) and not all(nested):
            raise ValueError("give either {x: metric} or {series: {x: metric}}, not a mix")
        table = pd.DataFrame({name: pd.Series(series) for name, series in data.items()}) if nested and all(nested) \
            else pd.Series(data, dtype=object).to_frame(y or "metric")
    elif isinstance(data, pd.Series):
        table = data.to_frame(data.name or y or "metric")
    elif isinstance(data, pd.DataFrame):
        if x is None:
            table = data.select_dtypes("number")
        else:
            require_columns(data, [x] + [c for c in (y, hue) if c], "the sweep frame")
            if hue is not None:
                if y is None:
                    raise ValueError("with hue, name the metric column: y=...")
                table = data.pivot_table(index=x, columns=hue, values=y, aggfunc="mean", sort=False)
            else:
                columns = [y] if y else [c for c in data.select_dtypes("number").columns if c != x]
                table = data.groupby(x)[columns].mean()
    else:
        raise ValueError(f"a sweep must be a dict, Series or DataFrame, not {type(data).__name__}")
    if table.empty or table.shape[1] == 0:
        raise ValueError("the sweep has no numeric values to plot")
    try:
        return table.astype(float).sort_index()
    except (TypeError, ValueError):
        raise ValueError("sweep values must be numeric") from None


@styled
def plot_ablation_sweep(data: Any, *, x: Optional[str] = None, y: Optional[str] = None, hue: Optional[str] = None,
                        baseline: Optional[float] = None, xlabel: Optional[str] = None, ylabel: Optional[str] = None,
                        title: Optional[str] = None, ax: Optional[Axes] = None) -> Figure:
    """Metric against sweep position (e.g. accuracy vs number of layers mean-ablated), one line per
    series. ``data``: ``{x: metric}``, ``{series: {x: metric}}``, a Series indexed by x, a wide
    frame (index x, one column per series), or a long frame with columns ``x``, ``y`` and
    optionally ``hue`` (repeats, e.g. seeds, are averaged). ``baseline``: a dashed reference line."""
    table = _sweep_table(data, x, y, hue)
    fig, ax = new_axes(ax, (6.0, 4.0))
    for color, (name, series) in zip(palette(table.shape[1]), table.items()):
        series = series.dropna()
        ax.plot(series.index, series.to_numpy(), marker="o", color=color, label=str(name))
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="0.45", label="baseline")
    ax.set_xlabel(xlabel or str(table.index.name or x or "ablated"))
    ax.set_ylabel(ylabel or (y or (str(table.columns[0]) if table.shape[1] == 1 else "metric")))
    numeric = pd.api.types.is_numeric_dtype(table.index)
    if numeric and np.all(np.mod(table.index.to_numpy(dtype=float), 1) == 0):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if table.shape[1] > 1 or baseline is not None:
        ax.legend()
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------- images
def image_array(image: Any, mean: Stats = None, std: Stats = None) -> np.ndarray:
    """An image as a ``[H, W, 3]`` float array in [0, 1] for ``imshow``. Takes PIL images,
    ``[H, W(, C)]`` arrays (uint8 or floats in [0, 1]) and pixel tensors/arrays ``[3, S, S]`` or
    ``[1, 3, S, S]``; pixels are un-normalised with ``mean`` and ``std`` (the model's
    ``cfg.image_mean`` / ``cfg.image_std``) when given, else min-max scaled."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=float) / 255.0
    is_uint8 = str(getattr(image, "dtype", "")) in ("uint8", "torch.uint8")
    array = _numeric(image, "an image")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    channels_first = array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4)
    if channels_first:
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] in (1, 4):
        array = array[..., :1] if array.shape[-1] == 1 else array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3)):
        raise ValueError(f"cannot show an image of shape {tuple(np.shape(image))}: "
                         "expected [H, W], [H, W, C] or [C, H, W]")
    if channels_first and mean is not None and std is not None:
        array = array * np.asarray(std, dtype=float) + np.asarray(mean, dtype=float)
    elif is_uint8:
        array = array / 255.0
    elif array.size and (array.min() < 0 or array.max() > 1):
        array = (array - array.min()) / max(array.max() - array.min(), 1e-12)
    if array.ndim == 2 or array.shape[-1] == 1:
        array = np.repeat(array.reshape(*array.shape[:2], 1), 3, axis=-1)
    return np.clip(array, 0.0, 1.0)


@styled
def plot_patch_overlay(image: Any, heat: Any, *, alpha: float = 0.5, cmap: Optional[str] = None,
                       title: Optional[str] = None, mean: Stats = None, std: Stats = None,
                       colorbar: bool = True, ax: Optional[Axes] = None) -> Figure:
    """A per-patch heatmap ``heat [grid, grid]`` stretched over ``image`` (see :func:`image_array`
    for the image forms), each patch one block."""
    pixels = image_array(image, mean, std)
    heat = _numeric(heat, "the heatmap")
    if heat.ndim != 2 or 0 in heat.shape:
        raise ValueError(f"the heatmap must be [grid, grid]; got shape {heat.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    height, width = pixels.shape[:2]
    fig, ax = new_axes(ax, (4.6 if colorbar else 4.0, 4.0))
    ax.imshow(pixels)
    overlay = ax.imshow(heat, cmap=cmap or OVERLAY_CMAP, alpha=alpha, extent=(0, width, height, 0),
                        interpolation="nearest")
    ax.set_axis_off()
    if colorbar:
        fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return fig


@styled
def plot_images(images: Any, titles: Optional[Sequence[str]] = None, *, mean: Stats = None, std: Stats = None,
                ncols: int = 5) -> Figure:
    """Images in a grid (pixel tensors ``[N, 3, S, S]`` or a list of images, see
    :func:`image_array`), with optional titles."""
    single = getattr(images, "ndim", None) == 3 or hasattr(images, "getpixel")  # one array / tensor / PIL image
    images = [images] if single else list(images)
    if not images:
        raise ValueError("no images to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    fig = new_figure((2.0 * ncols, 2.1 * nrows))
    for i, image in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(image_array(image, mean, std))
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(truncate(titles[i], 24), fontsize="small")
    return fig


# ---------------------------------------------------------------- CCS tiers
def _tier_summary(data: pd.DataFrame, tier: str, value: str, order: Optional[Sequence[str]]) -> pd.DataFrame:
    """``mean, std`` per tier (index), from per-seed rows or a summary with ``mean`` (and ``std``)."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"tiers must be a DataFrame, not {type(data).__name__}")
    require_columns(data, [tier], "the tier frame")
    if value in data.columns:
        summary = data.groupby(tier, sort=False)[value].agg(["mean", "std"])
    elif "mean" in data.columns:
        summary = data.set_index(tier)[["mean"]].assign(std=data["std"].to_numpy() if "std" in data else 0.0)
    else:
        raise ValueError(f"the tier frame needs a {value!r} column (one row per seed) or a 'mean' column")
    if summary.empty:
        raise ValueError("the tier frame has no rows")
    if order is not None:
        unknown = [t for t in order if t not in summary.index]
        if unknown:
            raise ValueError(f"unknown tier(s) {unknown}; the frame has {list(summary.index)}")
        summary = summary.loc[list(order)]
    return summary.astype(float).fillna({"std": 0.0})


@styled
def plot_ccs_tiers(data: pd.DataFrame, *, tier: str = "tier", value: str = "accuracy",
                   order: Optional[Sequence[str]] = None, ylabel: Optional[str] = None, title: Optional[str] = None,
                   ax: Optional[Axes] = None) -> Figure:
    """Accuracy after pruning each CCS tier (e.g. original / high CCS / low CCS / random): bars at
    the mean with a +-1 std error bar, and each seed as a dot. ``data``: one row per tier and seed
    (``tier``, ``value`` columns) or one row per tier with ``mean`` (and ``std``). A several-task
    frame of :func:`~clipinterp.methods.ccs.ccs_pruning` (``task`` column) is plotted one task at a time."""
    if "task" in data.columns and data["task"].nunique() > 1:
        raise ValueError(f"data holds {data['task'].nunique()} tasks ({', '.join(map(str, data['task'].unique()))}): "
                         "plot one, e.g. data[data.task == 'shape']")
    summary = _tier_summary(data, tier, value, order)
    xs = np.arange(len(summary))
    fig, ax = new_axes(ax, (1.8 + 1.1 * len(summary), 4.0))
    ax.bar(xs, summary["mean"], yerr=summary["std"], color=palette(len(summary)), capsize=4, alpha=0.85)
    if value in data.columns:
        for x, name in zip(xs, summary.index):
            points = data.loc[data[tier] == name, value].to_numpy(dtype=float)
            offsets = np.linspace(-0.18, 0.18, len(points)) if len(points) > 1 else np.zeros(1)
            ax.scatter(x + offsets, points, color="black", s=14, zorder=3)
    ax.set_xticks(xs, [str(t) for t in summary.index])
    ax.set_ylabel(ylabel or value)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------- Head Pursuit
def pursuit_summary(data: pd.DataFrame, *, k: str = "k", method: str = "method", value: str = "value") -> pd.DataFrame:
    """Median and inter-quartile range per ``(k, method)``: columns ``k, method, median, q25, q75,
    n``, k ascending, methods in order of appearance. ``data``: one row per run (``value``
    column; e.g. many random draws, one SOMP selection, one logit-lens selection) or already
    summarised (``median`` and optionally ``q25``, ``q75``)."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"pursuit results must be a DataFrame, not {type(data).__name__}")
    require_columns(data, [k, method], "the pursuit frame")
    if value in data.columns:
        grouped = data.groupby([k, method], sort=False)[value]
        out = pd.DataFrame({"median": grouped.median(), "q25": grouped.quantile(0.25), "q75": grouped.quantile(0.75),
                            "n": grouped.count()}).reset_index()
    elif "median" in data.columns:
        out = data[[k, method, "median"]].copy()
        out["q25"] = data["q25"] if "q25" in data else data["median"]
        out["q75"] = data["q75"] if "q75" in data else data["median"]
        out["n"] = data["n"] if "n" in data else 1
    else:
        raise ValueError(f"the pursuit frame needs a {value!r} column (one row per run) or a 'median' column")
    if out.empty:
        raise ValueError("the pursuit frame has no rows")
    methods = list(pd.unique(out[method]))
    out = out.rename(columns={k: "k", method: "method"})
    out["_order"] = out["method"].map(methods.index)
    return out.sort_values(["k", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


@styled
def plot_pursuit_table(data: pd.DataFrame, *, k: str = "k", method: str = "method", value: str = "value",
                       ylabel: Optional[str] = None, title: Optional[str] = None, ax: Optional[Axes] = None) -> Figure:
    """Head Pursuit results as grouped bars: one group per ``k`` (heads intervened on), one bar per
    method (e.g. SOMP-selected, random, logit lens) at the median, error bars spanning the IQR.
    See :func:`pursuit_summary` for the accepted frames."""
    summary = pursuit_summary(data, k=k, method=method, value=value)
    ks = sorted(summary["k"].unique())
    methods = list(pd.unique(summary["method"]))
    width = 0.8 / len(methods)
    xs = np.arange(len(ks))
    fig, ax = new_axes(ax, (1.5 + 0.5 * len(ks) * len(methods), 4.0))
    for i, (color, name) in enumerate(zip(palette(len(methods)), methods)):
        rows = summary[summary["method"] == name].set_index("k").reindex(ks)
        errors = np.vstack([rows["median"] - rows["q25"], rows["q75"] - rows["median"]])
        ax.bar(xs + (i - (len(methods) - 1) / 2) * width, rows["median"], width, yerr=errors, capsize=3,
               color=color, label=str(name))
    ax.set_xticks(xs, [str(v) for v in ks])
    ax.set_xlabel(k)
    ax.set_ylabel(ylabel or value)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # beside the bars, never on them
    if title:
        ax.set_title(title)
    return fig


def pursuit_table_style(data: pd.DataFrame, *, decimals: int = 3, k: str = "k", method: str = "method",
                        value: str = "value") -> pd.DataFrame:
    """The Head Pursuit table as text for a notebook or paper: one row per ``k``, one column per
    method, cells ``"median [q25, q75]"`` (just the median where there is no spread)."""
    summary = pursuit_summary(data, k=k, method=method, value=value)

    def cell(row: pd.Series) -> str:
        text = f"{row['median']:.{decimals}f}"
        return text if row["q25"] == row["q75"] else f"{text} [{row['q25']:.{decimals}f}, {row['q75']:.{decimals}f}]"

    table = summary.assign(cell=summary.apply(cell, axis=1)).pivot(index="k", columns="method", values="cell")
    table = table[list(pd.unique(summary["method"]))].fillna("")
    table.columns.name = None
    return table


# ---------------------------------------------------------------- decomposition and zero-shot
def contributions(decomposition: Any, image_index: int, text_index: int = 0) -> pd.Series:
    """Every part's contribution to one text's score for one image, from a projected
    decomposition (``heads [N, L, H, M]``, ``mlps [N, L, M]``, ``embed``, ``bias [N, M]``): a Series
    indexed ``"L0.H0" ... "MLP0" ... "embed", "bias"``."""
    if getattr(decomposition, "projected", None) is False:
        raise ValueError("the decomposition is not projected (its last axis is the embedding): project it onto "
                         "text embeddings first, decomposition.project(model.encode_text(texts))")
    heads = _numeric(decomposition.heads, "decomposition.heads")
    if heads.ndim != 4:
        raise ValueError(f"decomposition.heads must be [images, layers, heads, texts]; got shape {heads.shape}")
    n_images, n_layers, n_heads, n_texts = heads.shape
    if not 0 <= image_index < n_images:
        raise ValueError(f"image_index {image_index} out of range: the decomposition has {n_images} images")
    if not 0 <= text_index < n_texts:
        raise ValueError(f"text_index {text_index} out of range: the decomposition has {n_texts} texts "
                         "(project it onto text embeddings first: decomposition.project(texts))")
    mlps = _numeric(decomposition.mlps, "decomposition.mlps")[image_index, :, text_index]
    names = [head_name((layer, h)) for layer in range(n_layers) for h in range(n_heads)]
    names += [f"MLP{layer}" for layer in range(len(mlps))] + ["embed", "bias"]
    values = np.concatenate([heads[image_index, :, :, text_index].ravel(), mlps,
                             [_numeric(decomposition.embed, "decomposition.embed")[image_index, text_index],
                              _numeric(decomposition.bias, "decomposition.bias")[image_index, text_index]]])
    return pd.Series(values, index=names, name="contribution")


@styled
def plot_decomposition_bars(decomposition: Any, image_index: int, top: int = 10, *, text_index: int = 0,
                            text: Optional[str] = None, title: Optional[str] = None,
                            ax: Optional[Axes] = None) -> Figure:
    """The ``top`` largest (by magnitude) head / MLP / embedding contributions to one text's score
    for one image, from a projected decomposition (see :func:`contributions`); the title gives
    the total score."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    parts = contributions(decomposition, image_index, text_index)
    chosen = parts[parts.abs().sort_values(ascending=False, kind="stable").index[:top]]
    fig, ax = new_axes(ax, (6.0, 1.0 + 0.3 * len(chosen)))
    ys = np.arange(len(chosen))
    ax.barh(ys, chosen.to_numpy(), color=[POSITIVE if v >= 0 else NEGATIVE for v in chosen])
    ax.set_yticks(ys, list(chosen.index))
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("contribution to the score")
    about = f" · {truncate(text, 40)}" if text else ""
    ax.set_title(title or f"image {image_index}{about}: score {parts.sum():.3f}")
    return fig


@styled
def plot_zero_shot(probs: Any, class_names: Sequence[str], *, top: Optional[int] = None, baseline: Any = None,
                   title: Optional[str] = None, ax: Optional[Axes] = None) -> Figure:
    """Zero-shot class probabilities ``[C]`` for one image as horizontal bars, most likely first
    (the ``top`` ones). ``baseline [C]``: e.g. the unedited model's probabilities, drawn as ticks."""
    p = _numeric(probs, "probabilities")
    if p.ndim != 1:
        raise ValueError(f"probabilities must be [classes] for one image; got shape {p.shape}")
    if len(class_names) != len(p):
        raise ValueError(f"{len(p)} probabilities but {len(class_names)} class names")
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    base = None if baseline is None else _numeric(baseline, "baseline")
    if base is not None and base.shape != p.shape:
        raise ValueError(f"baseline has shape {base.shape}, the probabilities {p.shape}")
    order = np.argsort(-p, kind="stable")[:top]
    ys = np.arange(len(order))
    fig, ax = new_axes(ax, (5.5, 0.9 + 0.32 * len(order)))
    ax.barh(ys, p[order], color=palette(1)[0])
    right = p[order] if base is None else np.maximum(p[order], base[order])
    for y, x, value in zip(ys, right, p[order]):  # value labels clear of the bar and the baseline tick
        ax.text(x + 0.015, y, f"{value:.2f}", va="center", fontsize="small")
    if base is not None:
        ax.scatter(base[order], ys, marker="|", s=260, color="black", zorder=3, label="original")
        ax.legend(loc="lower right")
    ax.set_yticks(ys, [truncate(class_names[i], 30) for i in order])
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, float(p.max()) * 1.1))
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title)
    return fig
