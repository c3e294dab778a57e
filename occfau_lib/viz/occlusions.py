"""Occlusion effects: galleries, level curves, sensitivity maps, the occluder figure, drift (notebook 03)."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from ..aus import au_labels
from ..occlusion import apply, occlude
from ..patches import box_mask
from ._base import _figure, _panel_grid, _show_image
from .pretraining import masked_view


def occlusion_gallery(occluded: dict, n_faces: int = 3, patch_size: int | None = None):
    """Columns = conditions (``{label: occlusion.Occluded}``), rows = faces; with ``patch_size`` one
    more row shows what the MAE encoder receives for face 0. Notebook 03."""
    labels = list(occluded)
    rows = n_faces + (patch_size is not None)
    fig, axes = _panel_grid(rows * len(labels), len(labels), 1.25, label_width=0.9)
    for c, label in enumerate(labels):
        occ = occluded[label]
        for r in range(n_faces):
            _show_image(axes[r * len(labels) + c], occ.images[r])
        if patch_size is not None:
            _show_image(axes[n_faces * len(labels) + c], masked_view(occ.images[0], occ.visible[0], patch_size))
        axes[c].set_title(label, fontsize=8)
    if patch_size is not None:
        axes[n_faces * len(labels)].set_ylabel("MAE sees", rotation=0, ha="right", va="center", fontsize=8)
    return fig


def level_curves(results: dict[str, dict], families: dict[str, dict[str, float]], aus, reference: str = "clean",
                 chance: float | None = None):
    """F1 against occlusion level, one panel per family ``{name: {condition: level}}``: the average
    (thick) and each AU (thin), ``reference`` at level 0, ``chance`` dotted. Notebook 03."""
    aus = tuple(aus)
    fig = _figure(4.2 * len(families), 3.2)
    axes = fig.subplots(1, len(families), sharey=True, squeeze=False)[0]
    cmap = colormaps["tab20"]
    for ax, (family, levels) in zip(axes, families.items()):
        names = [reference, *levels]
        x = [0.0, *levels.values()]
        for j, au in enumerate(aus):
            ax.plot(x, [100 * results[n]["f1"][au] for n in names], color=cmap(j % 20), lw=0.9, alpha=0.8,
                    label=f"AU{au}")
        ax.plot(x, [100 * results[n]["avg_f1"] for n in names], color="black", lw=2.5, marker="o", label="average")
        if chance is not None:
            ax.axhline(100 * chance, color="0.3", ls=":", lw=1.5, label="always present (average)")
        ax.set_title(family)
        ax.set_xlabel("fraction of the image hidden")
        ax.set_xticks(x, [f"{v:.0%}" for v in x])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 (%)")
    axes[-1].legend(fontsize=6, ncol=2, loc="upper right")
    return fig


def sensitivity_maps(drop: np.ndarray, truth: np.ndarray, aus, regions):
    """Side by side, (n_au, n_regions): where each AU shows (``truth``, :func:`occlusion.region_overlap`)
    and how many F1 points the detector loses when the region is hidden (``drop``). Notebook 03."""
    aus, regions = tuple(aus), list(regions)
    fig = _figure(9.5, 0.32 * len(aus) + 1.6)
    axes = fig.subplots(1, 2)
    panels = ((truth, "renderer: share of the AU's pixel change\ninside the region", "Greys", 0, 1, "{:.2f}"),
              (drop, "detector: F1 drop (points)\nwhen the region is hidden", "Reds", 0,
               max(10.0, float(np.nanmax(drop))), "{:.0f}"))
    for ax, (m, title, cmap, lo, hi, fmt) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(len(regions)), [r.replace("_", " ") for r in regions], rotation=45, ha="right")
        ax.set_yticks(range(len(aus)), au_labels(aus))
        ax.set_title(title)
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                dark = (v - lo) / (hi - lo) > 0.55
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6, color="white" if dark else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def occluder_explorer(predict, face: np.ndarray, labels, aus, occluder: str = "block", cx: float = 0.0,
                      cy: float = 0.45, side: float = 0.5, seed: int = 0):
    """An occluded face beside each AU's probability (``predict(uint8 faces) -> probs``) before and
    after: ``occluder`` ``"block"`` is a square of ``side`` (fraction of the image) centred at
    ``(cx, cy)`` in [-1, 1], anything else a spec of :func:`occlusion.apply`. Notebook 03's widget."""
    face = np.asarray(face)
    if occluder == "block":
        h = side  # half the side in canonical units (the image is 2 wide)
        image = occlude(face[None], box_mask((cx - h, cx + h, cy - h, cy + h), face.shape[0]))[0]
    else:
        image = apply(face[None], occluder, 1, seed=seed).images[0]  # patch size 1: only the image is used
    probs = predict(np.stack([face, image]))  # (2, n_au)
    aus = tuple(aus)
    fig = _figure(7.5, 3.0)
    ax_img, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.2]})
    _show_image(ax_img, image, occluder)
    x = np.arange(len(aus))
    ax_bar.bar(x - 0.2, probs[0], 0.4, color="0.7", label="clean")
    ax_bar.bar(x + 0.2, probs[1], 0.4, color="tab:red", label="occluded")
    for i, y in enumerate(labels):
        if y == 1:
            ax_bar.plot(i, 1.03, marker="v", color="black", ms=5)
    ax_bar.axhline(0.5, color="black", lw=0.8, ls=":")
    ax_bar.set_xticks(x, au_labels(aus), fontsize=7)
    ax_bar.set_ylim(0, 1.08)
    ax_bar.set_ylabel("P(AU present)")
    ax_bar.set_title("▼ = present in the ground truth; dotted = decision threshold", fontsize=9)
    ax_bar.legend(fontsize=7, loc="upper right")
    return fig


def drift_bars(drift: dict[str, dict[str, np.ndarray]]):
    """How much the *visible* patches' tokens change under each occluder (:func:`latent_space.token_drift`),
    hidden patches dropped vs occluder pixels fed in. Notebook 03."""
    names = list(drift)
    x = np.arange(len(names))
    ax = _figure(max(4.5, 0.8 * len(names) + 1.5), 3.0).add_subplot()
    for k, (way, color) in enumerate((("dropped", "tab:green"), ("fed", "tab:red"))):
        ax.bar(x + (k - 0.5) * 0.38, [1 - drift[n][way].mean() for n in names], 0.38, color=color,
               label={"dropped": "hidden patches dropped", "fed": "occluder pixels fed in"}[way])
    ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=30, ha="right")
    ax.set_ylabel("change of visible tokens\n(1 - cosine similarity to clean)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return ax.figure
