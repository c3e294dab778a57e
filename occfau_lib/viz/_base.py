"""What every figure module shares: figure and panel grids, image panels, frontal faces, heat maps."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps

from .. import synthfacs
from ..aus import au_labels


#: Okabe & Ito's eight colours, told apart by colour-blind readers (no red-green pair): line and bar colours.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")


def _colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def _figure(width: float, height: float):
    """A new constrained-layout Figure (inches) that pyplot does not track."""
    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)  # detach from pyplot only; the figure stays fully usable
    return fig


def _panel_grid(n: int, ncols: int, panel: float, label_width: float = 0.0):
    """(fig, n Axes): ``n`` square panels of ``panel`` inches, ``ncols`` per row, and room for row labels."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _figure(ncols * panel + label_width, nrows * panel * 1.15)  # the extra height holds captions
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def _show_image(ax, image, caption: str | None = None, **imshow_kw):
    """One image, (S, S, 3), (3, S, S) or an (S, S) map, without ticks or frame, ``caption`` underneath."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if image.ndim == 2:
        imshow_kw.setdefault("cmap", "gray")
    im = ax.imshow(image, **imshow_kw)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    if caption:
        ax.set_xlabel(caption, fontsize=8)
    return im


def _render_frontal(identities: np.ndarray, intensities: np.ndarray, size: int) -> np.ndarray:
    """Frontal studio renders (B, size, size, 3) of identities (B, P) or (P,) with intensities (B, 15),
    as ``synthfacs.render_face`` draws them."""
    n = len(intensities)
    identities = np.array(np.broadcast_to(identities, (n, len(synthfacs.IDENTITY_PARAMS))))  # writable copy
    nuisances = np.repeat(synthfacs.make_nuisance()[None], n, axis=0)
    return synthfacs.render_faces(identities, intensities, nuisances, np.zeros(n, np.int64), size)


def _annotated_heatmap(matrix, conditions, aus, cmap: str, limits: tuple[float, float], ax, title: str,
                       digits: int = 2):
    """Rows = conditions, columns = AUs, each finite cell written in; nan cells blank, marked "–"."""
    matrix = np.asarray(matrix, np.float64)
    conditions, aus = list(conditions), tuple(aus)
    if matrix.shape != (len(conditions), len(aus)):
        raise ValueError(f"heatmap: matrix is {matrix.shape}, expected ({len(conditions)}, {len(aus)})")
    if ax is None:
        ax = _figure(max(4.5, 0.5 * len(aus) + 2.5), max(2.5, 0.38 * len(conditions) + 1.3)).add_subplot()
    cmap = colormaps[cmap].with_extremes(bad="0.9")
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
    ax.set_xticks(range(len(aus)), au_labels(aus), fontsize=8)
    ax.set_yticks(range(len(conditions)), conditions, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, shrink=0.8)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            r, g, b, _ = im.cmap(im.norm(min(value, limits[1])))
            color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.45 else "black"
            ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", fontsize=6, color=color)
        else:
            ax.text(j, i, "–", ha="center", va="center", fontsize=6, color="0.4")
    return ax.figure
