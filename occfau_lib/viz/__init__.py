"""The notebooks' figures: one module per notebook subject, every function importable from here.

Each function takes data, draws a new matplotlib Figure (or onto ``ax=``) and returns it; the
explorers of ``occfau_lib.widgets`` redraw one whenever a control moves. The functions are pure and
pyplot keeps no reference to their figures, so a figure shows exactly once and nothing needs
closing. Modules: ``faces`` and ``labels`` (notebook 00), ``pretraining`` (01), ``probing`` (02),
``occlusions`` (03), ``distillation`` (04), ``latent_explorer`` (the offline Bokeh page, 02 and 04)
and ``_base`` (what they share).
"""
from __future__ import annotations

from .distillation import feature_spaces, method_dots, pair_heatmaps, record_dots, student_flow  # noqa: F401
from .faces import LOOKS_LIKE, au_gallery, face_explorer, identity_gallery, region_maps, show_faces  # noqa: F401
from .labels import cooccurrence_heatmap, label_stats, sequence_plot  # noqa: F401
from .occlusions import drift_bars, level_curves, occluder_explorer, occlusion_gallery, sensitivity_maps  # noqa: F401
from .pretraining import condition_bars, loss_curve, loss_spikes, mae_view, mae_views, masked_view, region_error_plot, run_curves  # noqa: F401
from .probing import (budget_curve, gain_heatmap, hiding_curves, per_au_bars, probe_by_layer, regime_curves,  # noqa: F401
                      survival_difference, survival_heatmap, umap_scatter, umap_view)  # noqa: F401
