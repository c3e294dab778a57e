"""Plotting functions for the notebooks: faces, action units, labels and their statistics.

Every function takes data (arrays, datasets, dicts), draws a new matplotlib Figure (or onto
``ax=`` where it accepts one) and returns it. A notebook cell that ends with the call shows the
figure, and the explorers of ``occfau_lib.widgets`` redraw one whenever a control moves (e.g.
``widgets.face_explorer()`` wraps :func:`face_explorer`); every default draws a meaningful figure.

The functions are pure: the same arguments give the same figure, and pyplot keeps no reference
to the figures made here (each is detached from pyplot as soon as it is created). So a figure is
shown exactly once when returned (not once more by the inline backend), widget redraws do not
pile figures up, and nothing needs closing. In a script, save one with ``fig.savefig(path)``.

Each docstring names the notebook that uses the function (00 = "FACS and the SynthFACS world").

One module per subject (each function's docstring names its notebook); every function is
importable from the package itself (``viz.show_faces``):

- ``faces``         galleries, the face explorer's figure, identities, AU region maps    (00)
- ``labels``        co-occurrence heat maps, label statistics, AU sequences             (00)
- ``pretraining``   loss curves, masked and reconstructed views, region errors          (01)
- ``probing``       probe curves, per-AU bars, survival heat maps, UMAP views           (02)
- ``occlusions``    occlusion galleries, level curves, sensitivity maps, drift         (03)
- ``distillation``  the student's data flow, method and record dot plots, feature spaces, pair maps (04)
- ``latent_explorer`` the linked, offline latent explorer page (Bokeh; imported on use)  (02, 04)
- ``_base``         what they share: figure and panel grids, image panels, heat maps
"""
from __future__ import annotations

from .distillation import feature_spaces, method_dots, pair_heatmaps, record_dots, student_flow  # noqa: F401
from .faces import LOOKS_LIKE, au_gallery, face_explorer, identity_gallery, region_maps, show_faces  # noqa: F401
from .labels import cooccurrence_heatmap, label_stats, sequence_plot  # noqa: F401
from .occlusions import drift_bars, level_curves, occluder_explorer, occlusion_gallery, sensitivity_maps  # noqa: F401
from .pretraining import condition_bars, loss_curve, loss_spikes, mae_view, mae_views, masked_view, region_error_plot, run_curves  # noqa: F401
from .probing import (gain_heatmap, hiding_curves, per_au_bars, probe_by_layer, regime_curves,  # noqa: F401
                      survival_difference, survival_heatmap, umap_scatter, umap_view)  # noqa: F401
