"""One place for the look of every clipinterp plot: font sizes, colormaps, colours, figure
creation. Change a constant here and every plot and widget follows."""
from __future__ import annotations

import functools
import io
from typing import Callable, Optional, TypeVar

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

CMAP = "viridis"  # sequential values (scores, variance explained)
DIVERGING_CMAP = "RdBu_r"  # signed values, used when a plot is given a center
OVERLAY_CMAP = "inferno"  # patch heatmaps over images
PALETTE = "colorblind"  # series, tiers and methods
POSITIVE = "#d1495b"  # bars of positive contributions
NEGATIVE = "#2e86ab"  # bars of negative contributions
HIGHLIGHT = "#ff00ff"  # frames around highlighted heads (visible on viridis and RdBu)
CELL_FONTSIZE = 7  # labels drawn inside heatmap cells
LABEL_CHARS = 14  # cell labels longer than this are truncated

RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}

F = TypeVar("F", bound=Callable)


def styled(fn: F) -> F:
    """Run a plotting function under :data:`RC`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def png_bytes(fig: Figure) -> bytes:
    """The figure rendered as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class NotebookFigure(Figure):
    """A figure outside pyplot that Jupyter shows as a PNG even when pyplot has not set up its
    inline backend yet (where it has, the backend's own formatter takes precedence)."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def new_figure(figsize: tuple[float, float] = (6.0, 4.0), pyplot: bool = False) -> Figure:
    """A new figure with constrained layout. It is not registered with pyplot (so a returned figure
    displays once in Jupyter) unless ``pyplot=True``: then it gets the backend's canvas (live under
    ipympl) but is not shown automatically (made with interactive mode off)."""
    with plt.rc_context(RC):
        if not pyplot:
            return NotebookFigure(figsize=figsize, layout="constrained")
        with plt.ioff():
            return plt.figure(figsize=figsize, layout="constrained")


def new_axes(ax: Optional[Axes] = None, figsize: tuple[float, float] = (6.0, 4.0),
             pyplot: bool = False) -> tuple[Figure, Axes]:
    """``(figure, axes)``: ``ax`` and its figure when given, else one axes on a :func:`new_figure`."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(figsize, pyplot)
    with plt.rc_context(RC):
        return fig, fig.add_subplot()


def grid_figsize(n_rows: int, n_cols: int, cell: tuple[float, float] = (0.55, 0.4)) -> tuple[float, float]:
    """A figure size for a ``n_rows x n_cols`` cell grid (plus room for ticks and a colour bar)."""
    return (min(2.2 + cell[0] * n_cols, 22.0), min(1.4 + cell[1] * n_rows, 18.0))


def palette(n: int) -> list:
    """``n`` colours of :data:`PALETTE`."""
    return sns.color_palette(PALETTE, n)


def truncate(text: str, n: int = LABEL_CHARS) -> str:
    """``text`` cut to ``n`` characters, with an ellipsis when cut."""
    text = str(text)
    return text if len(text) <= n else text[:max(n - 1, 0)] + "…"
