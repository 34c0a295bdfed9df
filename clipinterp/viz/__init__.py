"""Plots (:mod:`.plots`) and notebook explorers (:mod:`.widgets`) for clipinterp results."""
from .plots import (contributions, image_array, plot_ablation_sweep, plot_ccs_tiers, plot_decomposition_bars,
                    plot_head_heatmap, plot_images, plot_patch_overlay, plot_pursuit_table, plot_zero_shot,
                    pursuit_summary, pursuit_table_style)
from .widgets import KINDS, AblationPanel, ConceptHeadMap, HeadExplorer, show_figure

__all__ = [
    "AblationPanel", "ConceptHeadMap", "HeadExplorer", "KINDS", "contributions", "image_array",
    "plot_ablation_sweep", "plot_ccs_tiers", "plot_decomposition_bars", "plot_head_heatmap", "plot_images",
    "plot_patch_overlay", "plot_pursuit_table", "plot_zero_shot", "pursuit_summary", "pursuit_table_style",
    "show_figure",
]
