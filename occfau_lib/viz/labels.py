"""Labels: co-occurrence heat maps, label statistics, AU sequences (notebook 00)."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from .. import synthfacs
from ..aus import ALL_AUS, AUS, au_labels
from ..metrics import cooccurrence
from ._base import _figure


_COOCCURRENCE_STYLE = {  # kind -> (colour map, value range, title)
    "conditional": ("viridis", (0.0, 1.0), "P(column AU present | row AU present)"),
    "correlation": ("RdBu_r", (-1.0, 1.0), "phi correlation of AU labels"),
}


def cooccurrence_heatmap(labels, aus, ax=None, kind: str = "conditional"):
    """Heat map of :func:`metrics.cooccurrence` of labels (N, len(aus)), values written in for up to
    15 AUs: AUs come in groups (6 with 12, 1 with 2, ...). Notebook 00."""
    aus = tuple(aus)
    matrix = cooccurrence(labels, kind)
    if len(matrix) != len(aus):
        raise ValueError(f"cooccurrence_heatmap: labels have {len(matrix)} AU columns, aus names {len(aus)}")
    cmap, (vmin, vmax), title = _COOCCURRENCE_STYLE[kind]
    n = len(aus)
    if ax is None:
        ax = _figure(max(4.0, 0.45 * n + 2.0), max(3.2, 0.45 * n + 1.2)).add_subplot()
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), au_labels(aus), rotation=90, fontsize=8)
    ax.set_yticks(range(n), au_labels(aus), fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.8)
    if n <= 15:
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                r, g, b, _ = im.cmap(im.norm(value))
                color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=color)
    return ax.figure


def label_stats(ds, ax=None):
    """Each AU's positive rate over the known labels, unknown counts above the bars: most AUs are
    rare. Notebook 00."""
    rate = ds.positive_rate()
    unknown = ds.unknown_count()
    x = np.arange(len(ds.aus))
    if ax is None:
        ax = _figure(max(4.0, 0.45 * len(x) + 1.5), 3.2).add_subplot()
    ax.bar(x, np.nan_to_num(rate), color="tab:blue")
    for i in np.flatnonzero(unknown):
        ax.text(x[i], np.nan_to_num(rate[i]) + 0.02, f"{unknown[i]}?", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, au_labels(ds.aus), fontsize=8)
    ax.set(ylim=(0, 1.1), ylabel="positive rate (known labels)")
    unknown_note = f"{unknown.sum()} unknown labels (n? above bars)" if unknown.any() else "no unknown labels"
    ax.set_title(f"{ds.name}: {len(ds)} images, {len(np.unique(ds.subjects))} subjects; {unknown_note}",
                 fontsize=9)
    return ax.figure


def sequence_plot(intensities, aus=ALL_AUS, frames=None, ax=None):
    """AU intensities (F, len(aus)) over the frames of one task, a curve per active AU (each AU keeps
    its colour across figures) and the presence threshold. Notebook 00."""
    intensities = np.asarray(intensities, np.float32)
    aus = tuple(aus)
    if intensities.ndim != 2 or intensities.shape[1] != len(aus):
        raise ValueError(f"sequence_plot: intensities must be (frames, {len(aus)}), got {intensities.shape}")
    frames = np.arange(len(intensities)) if frames is None else np.asarray(frames)
    if ax is None:
        ax = _figure(7.0, 3.2).add_subplot()
    colors = colormaps["tab20"]
    for column, au in enumerate(aus):
        if intensities[:, column].max() > 0:
            ax.plot(frames, intensities[:, column], color=colors(ALL_AUS.index(au)), label=f"AU{au} {AUS[au].name}")
    ax.axhline(synthfacs.PRESENCE_THRESHOLD, color="0.5", ls="--", lw=1, label="presence threshold")
    ax.set(xlabel="frame", ylabel="intensity (0-5)", ylim=(0, 5.2))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure
