"""Interactive explorers for notebooks, built from ipywidgets core controls only (works with
ipywidgets 7.7 as on Colab, and 8).

Each explorer exposes its controls as attributes (set them from Python to drive it), its layout
as ``.widget`` (a bare explorer object displays itself), and its latest results as public
attributes (``HeadExplorer.current_texts``, ``AblationPanel.last_probs``, ...). Figures go into
``Output`` widgets: as PNG images under the inline backend, as live canvases under ipympl
(``%matplotlib widget``), where a click on a :class:`ConceptHeadMap` cell selects the head.
Errors raised while reacting to a control are shown in the explorer's ``log`` output.
"""
from __future__ import annotations

import base64
import html
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from ipywidgets import (HTML, Checkbox, DOMWidget, Dropdown, FloatSlider, HBox, IntSlider, Label, Output,
                        SelectMultiple, Text, ToggleButtons, VBox)
from matplotlib.figure import Figure

from .. import interventions as iv
from ..decompose import decompose
from ..evaluation import retrieval_recall
from ..heads import HeadLike, head_name, parse_head
from ..model.hooked_clip import DEFAULT_TEMPLATES
from .plots import (plot_decomposition_bars, plot_head_heatmap, plot_images, plot_patch_overlay, plot_zero_shot,
                    require_columns)
from .style import grid_figsize, new_axes, png_bytes, truncate

__all__ = ["AblationPanel", "ConceptHeadMap", "HeadExplorer", "KINDS", "show_figure"]

KINDS = ("zero", "mean", "prune", "scale", "attn_uniform", "attn_identity")


def show_figure(output: Output, fig: Figure) -> None:
    """Replace what ``output`` shows by ``fig``: its live canvas where it has one (ipympl), else a
    PNG image (the figure is then closed)."""
    if isinstance(fig.canvas, DOMWidget):
        output.clear_output(wait=True)
        with output:
            display(fig.canvas)
        return
    png = base64.b64encode(png_bytes(fig)).decode("ascii")
    plt.close(fig)
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"image/png": png, "text/plain": repr(fig)}},)


def _take(images: Any, indices: Sequence[int]) -> Any:
    """The images at ``indices``: a pixel-tensor slice or a list."""
    if isinstance(images, torch.Tensor):
        return images[list(indices)]
    return [images[i] for i in indices]


class _Explorer:
    """Display delegation, callback wiring and error capture shared by the explorers."""

    widget: VBox

    def __init__(self) -> None:
        self.log = Output()
        self._quiet = False

    def _watch(self, controls: Sequence[Any], handler: Callable[[], None]) -> None:
        """Call ``handler`` whenever one of the controls' value changes."""
        for control in controls:
            control.observe(lambda change: self._react(handler), names="value")

    def _react(self, handler: Callable[[], None]) -> None:
        if self._quiet:
            return
        self.log.clear_output(wait=True)
        with self.log:  # in a kernel, an exception is shown here rather than lost
            handler()

    @contextmanager
    def _silenced(self) -> Iterator[None]:
        """Change several controls without triggering their handlers."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _ipython_display_(self) -> None:
        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Optional[dict]:
        """ipywidgets 8 draws widgets through this (7 through ``_ipython_display_``)."""
        bundle = getattr(self.widget, "_repr_mimebundle_", None)
        return bundle(**kwargs) if bundle is not None else None


class HeadExplorer(_Explorer):
    """One head at a time: its TextSpan texts (with variance explained), CCS and label, the images
    it writes most into, and a map of its per-patch contributions to a text's score.

    ``images``: the images (PIL list or pixels ``[N, c, S, S]``) that ``decomposition`` (unprojected,
    from :func:`clipinterp.decompose`) was made from. ``textspan_df``: ``layer, head, rank, text``
    (+ ``variance_explained``); ``ccs_df``: ``layer, head, ccs`` (+ ``label``);
    ``texts_for_heatmap``: texts offered for the patch map beside the head's TextSpan texts.
    Top images rank by the head's contribution projected on its top TextSpan text (by the
    contribution's norm without TextSpan results). Per-token contributions come from
    ``decomposition.tokens`` where it has the layer, else from a one-image decomposition.

    Controls: ``layer``, ``head``, ``image``, ``text``, ``suggestions``. State: ``current_texts``,
    ``current_ccs``, ``current_label``, ``top_images``, ``top_scores``, ``current_heatmap``.
    """

    def __init__(self, model: Any, images: Any, decomposition: Any, textspan_df: Optional[pd.DataFrame] = None,
                 ccs_df: Optional[pd.DataFrame] = None, texts_for_heatmap: Optional[Sequence[str]] = None,
                 top_k: int = 5) -> None:
        super().__init__()
        cfg = model.cfg
        expected = (len(images), cfg.n_layers, cfg.n_heads, cfg.d_embed)
        if tuple(decomposition.heads.shape) != expected:
            raise ValueError(f"decomposition.heads has shape {tuple(decomposition.heads.shape)}, expected {expected} "
                             "(the unprojected decomposition of these images by this model)")
        if textspan_df is not None:
            require_columns(textspan_df, ["layer", "head", "rank", "text"], "textspan_df")
        if ccs_df is not None:
            require_columns(ccs_df, ["layer", "head", "ccs"], "ccs_df")
        self.model, self.images, self.decomposition = model, images, decomposition
        self.textspan, self.ccs = textspan_df, ccs_df
        self.texts_for_heatmap = list(texts_for_heatmap or [])
        self.top_k = top_k
        self.layer = Dropdown(options=list(range(cfg.n_layers)), value=0, description="layer")
        self.head = Dropdown(options=list(range(cfg.n_heads)), value=0, description="head")
        self.image = IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
        self.text = Text(description="text", placeholder="a text to map over the patches", continuous_update=False)
        self.suggestions = Dropdown(options=self.texts_for_heatmap, description="suggested")
        self.summary = HTML()
        self.texts_table = HTML()
        self.top_images_output = Output()
        self.heatmap_output = Output()
        if self.texts_for_heatmap:
            self.text.value = self.texts_for_heatmap[0]
        self.current_texts: list[str] = []
        self.current_ccs: Optional[float] = None
        self.current_label: Optional[str] = None
        self.top_images: list[int] = []
        self.top_scores: list[float] = []
        self.current_heatmap: Optional[torch.Tensor] = None
        self._tokens: dict[tuple[int, int], torch.Tensor] = {}
        self._watch([self.layer, self.head], self._show_head)
        self._watch([self.image, self.text], self._show_heatmap)
        self._watch([self.suggestions], self._use_suggestion)
        self.widget = VBox([HBox([self.layer, self.head]), self.summary,
                            HBox([self.texts_table, self.top_images_output]),
                            HBox([self.image, self.text, self.suggestions]), self.heatmap_output, self.log])
        self._show_head()

    @property
    def selected_head(self) -> tuple[int, int]:
        return self.layer.value, self.head.value

    def select(self, head: HeadLike) -> None:
        """Show ``head`` (``(layer, head)`` or ``"L2.H1"``); usable as ``ConceptHeadMap``'s ``on_select``."""
        layer, h = parse_head(head, self.model.cfg.n_layers, self.model.cfg.n_heads)
        with self._silenced():
            self.layer.value, self.head.value = layer, h
        self._show_head()

    # ---------------------------------------------------------------- head view
    def _show_head(self) -> None:
        layer, h = self.selected_head
        name = head_name((layer, h))
        rows = self._rows(self.textspan, layer, h)
        rows = rows.sort_values("rank") if rows is not None else None
        self.current_texts = [] if rows is None else rows["text"].astype(str).tolist()
        ccs = self._rows(self.ccs, layer, h)
        has_ccs = ccs is not None and len(ccs) > 0
        self.current_ccs = float(ccs["ccs"].iloc[0]) if has_ccs else None
        label = ccs["label"].iloc[0] if has_ccs and "label" in ccs.columns else None
        self.current_label = label if isinstance(label, str) else None
        facts = [f"<b>{name}</b>"]
        if self.current_ccs is not None:
            facts.append(f"CCS {self.current_ccs:g}")
        if self.current_label is not None:
            facts.append(f"label: <i>{html.escape(str(self.current_label))}</i>")
        self.summary.value = " · ".join(facts)
        if rows is None or rows.empty:
            self.texts_table.value = "<i>no TextSpan texts for this head</i>"
        else:
            columns = [c for c in ("rank", "text", "variance_explained") if c in rows.columns]
            table = rows[columns].rename(columns={"variance_explained": "variance explained (cumulative)"})
            self.texts_table.value = table.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        self._show_top_images(layer, h)
        offered = list(dict.fromkeys(self.current_texts + self.texts_for_heatmap))
        with self._silenced():
            self.suggestions.options = offered
            if offered:  # the head's own first text, else the first suggestion: box and dropdown agree
                self.suggestions.value = self.text.value = offered[0]
        self._show_heatmap()

    @staticmethod
    def _rows(df: Optional[pd.DataFrame], layer: int, head: int) -> Optional[pd.DataFrame]:
        return None if df is None else df[(df["layer"] == layer) & (df["head"] == head)]

    def _show_top_images(self, layer: int, head: int) -> None:
        contribution = self.decomposition.heads[:, layer, head].float()  # [N, d]
        if self.current_texts:
            scores = contribution @ self._text_embedding(self.current_texts[0]).to(contribution)
        else:
            scores = contribution.norm(dim=-1)
        order = torch.argsort(scores, descending=True, stable=True)[:self.top_k].tolist()
        self.top_images, self.top_scores = order, [float(scores[i]) for i in order]
        titles = [f"#{i} · {s:.3f}" for i, s in zip(self.top_images, self.top_scores)]
        cfg = self.model.cfg
        fig = plot_images(self.model.to_pixels(_take(self.images, order)).cpu(), titles, mean=cfg.image_mean,
                          std=cfg.image_std)
        show_figure(self.top_images_output, fig)

    def _use_suggestion(self) -> None:
        if self.suggestions.value is not None:
            self.text.value = self.suggestions.value

    # ---------------------------------------------------------------- patch heatmap
    def _text_embedding(self, text: str) -> torch.Tensor:
        return self.model.encode_text([text])[0].float()

    def _layer_tokens(self, image: int, layer: int) -> torch.Tensor:
        """Per-token contributions ``[H, T, d]`` of one layer for one image."""
        dec = self.decomposition
        if dec.tokens is not None and layer in dec.token_layers:
            return dec.tokens[image, dec.token_layers.index(layer)]
        if (image, layer) not in self._tokens:
            one = decompose(self.model, _take(self.images, [image]), tokens=True, layers=[layer],
                            convention=dec.convention, normalize=dec.normalized, progress=False)
            self._tokens[(image, layer)] = one.tokens[0, 0]
        return self._tokens[(image, layer)]

    def _show_heatmap(self) -> None:
        (layer, h), image = self.selected_head, self.image.value
        patches = self._layer_tokens(image, layer)[h, 1:].float()  # [grid^2, d], CLS dropped
        text = self.text.value.strip()
        heat = patches @ self._text_embedding(text).to(patches) if text else patches.norm(dim=-1)
        grid = int(round(len(heat) ** 0.5))
        self.current_heatmap = heat.reshape(grid, grid)
        about = f"“{truncate(text, 30)}”" if text else "contribution norm"
        cfg = self.model.cfg
        fig = plot_patch_overlay(self.model.to_pixels(_take(self.images, [image]))[0].cpu(), self.current_heatmap,
                                 mean=cfg.image_mean, std=cfg.image_std,
                                 title=f"{head_name((layer, h))} · image {image} · {about}")
        show_figure(self.heatmap_output, fig)


class AblationPanel(_Explorer):
    """Edit heads live and watch the model change: pick heads, an intervention ``kind`` (with
    ``alpha`` for ``scale`` and ``cls_only`` for the attention edits), and see zero-shot
    probabilities for one image (with ``class_names``), retrieval recall (with ``captions``,
    paired 1:1 with the images unless ``image_of_caption`` says otherwise) and the direct
    contributions to one target's score (decomposed with ``convention``, default ``"centered"``
    so that a zeroed head contributes exactly 0; normalised, so the parts sum to the cosine).
    ``mean`` ablates to the mean over ``reference`` images (default: ``images``).

    Controls: ``heads``, ``kind``, ``alpha``, ``cls_only``, ``image``, ``target``. State:
    ``interventions()``, ``last_model``, ``last_probs [N, C]``, ``baseline_probs``, ``last_table``
    (rows ``original`` and ``edited``), ``last_decomposition`` (one image, projected on the targets).
    """

    def __init__(self, model: Any, images: Any, class_names: Optional[Sequence[str]] = None,
                 captions: Optional[Sequence[str]] = None, templates: Sequence[str] = DEFAULT_TEMPLATES, *,
                 image_of_caption: Optional[Sequence[int]] = None, reference: Any = None,
                 ks: Sequence[int] = (1, 5, 10), convention: str = "centered", top: int = 10) -> None:
        super().__init__()
        if not class_names and not captions:
            raise ValueError("give class_names (zero-shot view), captions (retrieval view) or both")
        cfg = model.cfg
        self.model, self.images = model, images
        self.class_names = list(class_names) if class_names else None
        self.captions = list(captions) if captions else None
        self.templates, self.image_of_caption, self.ks = list(templates), image_of_caption, tuple(ks)
        self.reference = images if reference is None else reference
        self.convention, self.top = convention, top
        self.heads = SelectMultiple(options=[head_name((layer, h)) for layer in range(cfg.n_layers)
                                             for h in range(cfg.n_heads)],
                                    rows=min(12, cfg.n_layers * cfg.n_heads), description="heads")
        self.kind = ToggleButtons(options=list(KINDS), value="zero", description="kind")
        self.alpha = FloatSlider(value=0.0, min=-5.0, max=5.0, step=0.25, description="alpha",
                                 continuous_update=False)
        self.cls_only = Checkbox(value=False, description="CLS query only")
        self.image = IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
        targets = self.class_names or self.captions
        self.target = Dropdown(options=[(truncate(t, 40), i) for i, t in enumerate(targets)], value=0,
                               description="target")
        self.status = Label()
        self.probs_output = Output()
        self.decomposition_output = Output()
        self.table = HTML()
        self._targets = (model.class_embeddings(self.class_names, self.templates) if self.class_names
                         else model.encode_text(self.captions))
        self._target_names = targets
        self._means: Optional[dict] = None
        self.baseline_probs = self._probs(model)
        self.baseline_table = self._recall(model)
        self.last_model: Any = None
        self.last_probs: Optional[torch.Tensor] = None
        self.last_table: Optional[pd.DataFrame] = None
        self.last_decomposition: Any = None
        self._watch([self.heads, self.kind], self.refresh)
        self._watch([self.alpha], self._on_alpha)
        self._watch([self.cls_only], self._on_cls_only)
        self._watch([self.image, self.target], self._show_image)
        views = [self.decomposition_output] + ([self.probs_output] if self.class_names else [])
        self.widget = VBox([HBox([self.heads, VBox([self.kind, self.alpha, self.cls_only, self.image, self.target])]),
                            self.status, HBox(views), self.table, self.log])
        self.refresh()

    def interventions(self) -> list:
        """The interventions the controls describe (none while no head is selected)."""
        heads = list(self.heads.value)
        if not heads:
            return []
        kind, cls_only = self.kind.value, self.cls_only.value
        build = {"zero": lambda: iv.zero(heads), "mean": lambda: iv.mean(heads, self._layer_means()),
                 "prune": lambda: iv.prune(heads), "scale": lambda: iv.scale(self.alpha.value, heads),
                 "attn_uniform": lambda: iv.attn_uniform(heads, cls_only),
                 "attn_identity": lambda: iv.attn_identity(heads, cls_only)}
        return [build[kind]()]

    def refresh(self) -> None:
        """Re-run the edited model on all images and redraw."""
        self.alpha.disabled = self.kind.value != "scale"
        self.cls_only.disabled = not self.kind.value.startswith("attn")
        self.last_model = self.model.with_interventions(*self.interventions())
        self.status.value = f"interventions: {self.last_model.describe()}"
        self.last_probs = self._probs(self.last_model)
        edited = self._recall(self.last_model)
        if edited is not None:
            self.last_table = pd.concat([self.baseline_table, edited], ignore_index=True)
            self.last_table.index = ["original", "edited"]
            columns = [c for c in self.last_table.columns if "@" in c]
            self.table.value = self.last_table[columns].to_html(float_format=lambda v: f"{v:.3f}")
        self._show_image()

    def _on_alpha(self) -> None:
        if self.kind.value == "scale":  # alpha matters to scale only
            self.refresh()

    def _on_cls_only(self) -> None:
        if self.kind.value.startswith("attn"):  # cls_only matters to the attention edits only
            self.refresh()

    def _layer_means(self) -> dict:
        if self._means is None:
            self._means = iv.mean_z(self.model, self.reference, range(self.model.cfg.n_layers))
        return self._means

    def _probs(self, model: Any) -> Optional[torch.Tensor]:
        return model.zero_shot(self.images, self.class_names, self.templates) if self.class_names else None

    def _recall(self, model: Any) -> Optional[pd.DataFrame]:
        if not self.captions:
            return None
        return retrieval_recall(model, self.images, self.captions, self.image_of_caption, ks=self.ks)

    def _show_image(self) -> None:
        image, target = self.image.value, self.target.value
        one = decompose(self.last_model, _take(self.images, [image]), convention=self.convention, normalize=True,
                        progress=False)
        self.last_decomposition = one.project(self._targets)
        name = self._target_names[target]
        score = float(self.last_decomposition.total()[0, target])
        fig = plot_decomposition_bars(self.last_decomposition, 0, self.top, text_index=target,
                                      title=f"image {image} · {truncate(name, 30)}: score {score:.3f}")
        show_figure(self.decomposition_output, fig)
        if self.last_probs is not None:
            fig = plot_zero_shot(self.last_probs[image], self.class_names, top=10,
                                 baseline=self.baseline_probs[image], title=f"image {image}")
            show_figure(self.probs_output, fig)


class ConceptHeadMap(_Explorer):
    """A layer x head heatmap of ``scores_df`` (``layer, head, concept, score``; e.g. Head Pursuit
    scores) for the concept chosen in ``concept``. Choosing a head in ``head`` -- or clicking its
    cell under ipympl -- sets ``selected_head``, frames the cell and calls ``on_select(head)``
    (e.g. ``HeadExplorer.select``). State: ``selected_head``, ``current_values [L, H]``, ``figure``."""

    def __init__(self, scores_df: pd.DataFrame, on_select: Optional[Callable[[tuple[int, int]], Any]] = None, *,
                 cmap: Optional[str] = None, center: Optional[float] = None) -> None:
        super().__init__()
        require_columns(scores_df, ["layer", "head", "concept", "score"], "scores_df")
        if scores_df.empty:
            raise ValueError("scores_df has no rows")
        if scores_df.duplicated(["concept", "layer", "head"]).any():
            raise ValueError("scores_df has several scores for one (concept, layer, head)")
        if (scores_df[["layer", "head"]] < 0).any().any():
            raise ValueError("layer and head indices must be >= 0")
        self.scores, self.on_select, self.cmap, self.center = scores_df, on_select, cmap, center
        self.shape = (int(scores_df["layer"].max()) + 1, int(scores_df["head"].max()) + 1)
        self._heads = sorted({(int(layer), int(h)) for layer, h in zip(scores_df["layer"], scores_df["head"])})
        self.concept = Dropdown(options=list(pd.unique(scores_df["concept"])), description="concept")
        self.head = Dropdown(options=[("(none)", None)] + [(head_name(h), h) for h in self._heads], value=None,
                             description="head")
        self.output = Output()
        self.selected_head: Optional[tuple[int, int]] = None
        self.current_values: Optional[np.ndarray] = None
        self.figure: Optional[Figure] = None
        self._watch([self.concept], self._draw)
        self._watch([self.head], self._choose)
        self.widget = VBox([HBox([self.concept, self.head]), self.output, self.log])
        self._draw()

    def select(self, head: HeadLike) -> None:
        """Select ``head`` as if chosen in the dropdown."""
        chosen = parse_head(head)
        if chosen not in self._heads:
            raise ValueError(f"{head_name(chosen)} has no scores here")
        self.head.value = chosen

    def _choose(self) -> None:
        self.selected_head = self.head.value
        self._draw()
        if self.selected_head is not None and self.on_select is not None:
            self.on_select(self.selected_head)

    def _draw(self) -> None:
        rows = self.scores[self.scores["concept"] == self.concept.value]
        values = np.full(self.shape, np.nan)
        values[rows["layer"].to_numpy(int), rows["head"].to_numpy(int)] = rows["score"].to_numpy(float)
        self.current_values = values
        if self.figure is not None:
            plt.close(self.figure)
        fig, ax = new_axes(figsize=grid_figsize(*self.shape), pyplot=True)
        plot_head_heatmap(values, title=str(self.concept.value), cmap=self.cmap, center=self.center,
                          highlight=[self.selected_head] if self.selected_head else None, colorbar_label="score",
                          ax=ax)
        fig.canvas.mpl_connect("button_press_event", lambda event: self._click(event, ax))
        self.figure = fig
        show_figure(self.output, fig)

    def _click(self, event: Any, ax: Any) -> None:
        if event.inaxes is not ax or event.xdata is None or event.ydata is None:
            return
        head = (int(np.floor(event.ydata)), int(np.floor(event.xdata)))
        if head in self._heads:
            self.select(head)
