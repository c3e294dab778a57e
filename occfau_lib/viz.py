"""Plotting functions for the notebooks: faces, action units, labels and their statistics.

Every function takes data (arrays, datasets, dicts), draws a new matplotlib Figure (or onto
``ax=`` where it accepts one) and returns it. A notebook cell that ends with the call shows the
figure, and ``ipywidgets.interact(viz.face_explorer, au12=(0, 5, 0.5))`` redraws it whenever a
slider moves; every default draws a meaningful figure by itself.

The functions are pure: the same arguments give the same figure, and pyplot keeps no reference
to the figures made here (each is detached from pyplot as soon as it is created). So a figure is
shown exactly once when returned (not once more by the inline backend), widget redraws do not
pile figures up, and nothing needs closing. In a script, save one with ``fig.savefig(path)``.

Each docstring names the notebook that uses the function (00 = "FACS and the SynthFACS world").
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Rectangle

from . import synthfacs
from .aus import ALL_AUS, AUS, au_labels, au_set

#: What each SynthFACS look-alike quirk (``synthfacs.LOOKALIKES``) imitates at rest.
LOOKS_LIKE = {
    "low_close_brows": "AU4",
    "upturned_mouth": "AU12",
    "downturned_mouth": "AU15",
    "narrow_eyes": "AU7",
    "aged": "AU1/2 lines",
}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    """A new constrained-layout Figure (inches) that pyplot does not track."""
    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)  # detach from pyplot only; the figure stays fully usable
    return fig


def _panel_grid(n: int, ncols: int, panel: float, label_width: float = 0.0):
    """A figure of ``n`` square panels of ``panel`` inches, ``ncols`` per row, plus ``label_width``
    inches for row labels: (fig, list of n Axes)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _figure(ncols * panel + label_width, nrows * panel * 1.15)  # the extra height holds captions
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def _show_image(ax, image, caption: str | None = None, **imshow_kw):
    """Draw one image without ticks or frame, ``caption`` underneath; returns the AxesImage.

    Accepts (S, S, 3) uint8 or float arrays, (S, S) maps (grey unless ``cmap`` is given) and
    channel-first (3, S, S) arrays or tensors such as ``ds[i]["image"]``.
    """
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
    """Frontal studio renders (B, size, size, 3) of identities (B, P) or (P,) with AU intensities
    (B, 15): pixel-identical to ``synthfacs.render_face`` with its default pose and lighting."""
    n = len(intensities)
    identities = np.array(np.broadcast_to(identities, (n, len(synthfacs.IDENTITY_PARAMS))))  # writable copy
    nuisances = np.repeat(synthfacs.make_nuisance()[None], n, axis=0)
    return synthfacs.render_faces(identities, intensities, nuisances, np.zeros(n, np.int64), size)


# --------------------------------------------------------------------------------------------
# Faces
# --------------------------------------------------------------------------------------------
def show_faces(images, titles=None, ncols: int = 8, size: float = 1.6):
    """A grid of face images with an optional caption under each; returns the Figure.

    ``images``: (N, S, S, 3) uint8 or float in [0, 1] (e.g. ``ds.images[:16]``), or a sequence
    of images, channel-first tensors included. ``size``: inches per panel. Used throughout,
    first in notebook 00 to look at SynthFACS samples.
    """
    images = list(images)
    if not images:
        raise ValueError("show_faces: no images to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_faces: {len(titles)} titles for {len(images)} images")
    fig, axes = _panel_grid(len(images), ncols, size)
    for i, ax in enumerate(axes):
        _show_image(ax, images[i], None if titles is None else titles[i])
    return fig


def au_gallery(identity=None, aus=ALL_AUS, intensities=(1, 2, 3, 4, 5), size: int = 64,
               show_difference: bool = False):
    """Each AU at increasing intensity on one face: rows = AUs, columns = neutral, then each
    intensity; returns the Figure.

    Every cell is ``synthfacs.render_face(identity, {au: intensity}, size=size)`` (frontal,
    studio light); ``identity=None`` is the average face. With ``show_difference`` a last column
    shows |strongest - neutral| averaged over colour channels, each row on its own colour scale,
    so even the subtle cues (AU14, AU23) show where they are. Notebook 00.
    """
    aus = au_set(aus)
    levels = tuple(intensities)
    if not levels:
        raise ValueError("au_gallery: give at least one intensity")
    identity = synthfacs.neutral_identity() if identity is None else np.asarray(identity, np.float32)
    vectors = [synthfacs.au_vector()] + [synthfacs.au_vector({au: level}) for au in aus for level in levels]
    faces = _render_frontal(identity, np.stack(vectors), size)
    neutral, expressive = faces[0], faces[1:].reshape(len(aus), len(levels), *faces.shape[1:])
    apex = int(np.argmax(levels))

    ncols = 1 + len(levels) + int(show_difference)
    fig, axes = _panel_grid(len(aus) * ncols, ncols, 1.1, label_width=1.4)
    for row, au, au_faces in zip(np.reshape(axes, (len(aus), ncols)), aus, expressive):
        _show_image(row[0], neutral)
        row[0].set_ylabel(f"AU{au} {AUS[au].name}", rotation=0, ha="right", va="center", fontsize=8)
        for ax, face in zip(row[1:], au_faces):
            _show_image(ax, face)
        if show_difference:
            diff = np.abs(au_faces[apex].astype(np.float32) - neutral).mean(axis=-1) / 255
            _show_image(row[-1], diff, cmap="magma")
    column_titles = ["neutral"] + [f"{level:g}" for level in levels]
    if show_difference:
        column_titles.append(f"|{levels[apex]:g} - neutral|")
    for ax, title in zip(axes, column_titles):
        ax.set_title(title, fontsize=9)
    return fig


def face_explorer(au1=0.0, au2=0.0, au4=0.0, au6=0.0, au7=0.0, au9=0.0, au10=0.0, au12=0.0, au14=0.0,
                  au15=0.0, au17=0.0, au23=0.0, au24=0.0, au25=0.0, au26=0.0, identity_seed: int = 0,
                  roll=0.0, yaw=0.0, pitch=0.0, light_x=-0.3, light_y=-0.4, light_strength=0.6,
                  size: int = 128):
    """One SynthFACS face from AU intensity sliders, beside a bar chart of those intensities;
    returns the Figure. The slider widget of notebook 00 wraps it::

        interact(viz.face_explorer, au12=(0, 5, 0.5), identity_seed=(0, 20), roll=(-20, 20), ...)

    ``au<n>``: intensity 0-5 of AU n. ``identity_seed``: 0 is the average face; k > 0 is the
    fixed random identity ``synthfacs.sample_identities(1, np.random.default_rng(k))`` (about
    30% carry a look-alike quirk, named in the title). ``roll`` in degrees, ``yaw``/``pitch``
    and the light direction ``light_x``/``light_y`` in [-1, 1]. One render: fast enough to
    follow a slider.
    """
    intensities = {1: au1, 2: au2, 4: au4, 6: au6, 7: au7, 9: au9, 10: au10, 12: au12, 14: au14,
                   15: au15, 17: au17, 23: au23, 24: au24, 25: au25, 26: au26}
    if identity_seed == 0:
        identity, title = synthfacs.neutral_identity(), "average identity"
    else:
        ids, quirks = synthfacs.sample_identities(1, np.random.default_rng(identity_seed))
        identity, title = ids[0], f"identity {identity_seed}"
        if quirks[0]:
            title += f" (looks like {LOOKS_LIKE[quirks[0]]})"
    face = synthfacs.render_face(identity, intensities, pose=(roll, yaw, pitch),
                                 lighting=(light_x, light_y, light_strength), size=size)

    fig = _figure(7.0, 3.8)
    ax_face, ax_bars = fig.subplots(1, 2, width_ratios=(3, 2))
    _show_image(ax_face, face)
    ax_face.set_title(title, fontsize=10)
    values = [float(intensities[au]) for au in ALL_AUS]
    present = [v >= synthfacs.PRESENCE_THRESHOLD for v in values]
    ax_bars.barh(range(len(ALL_AUS)), values, color=["tab:orange" if p else "tab:gray" for p in present])
    ax_bars.axvline(synthfacs.PRESENCE_THRESHOLD, color="0.4", ls=":", lw=1)
    ax_bars.set_yticks(range(len(ALL_AUS)), au_labels(ALL_AUS), fontsize=8)
    ax_bars.invert_yaxis()
    ax_bars.set(xlim=(0, 5), xlabel="intensity (orange: present, >= 1)", title="AU intensities")
    return fig


def identity_gallery(n: int = 16, seed: int = 0, size: int = 64, show_quirks: bool = True):
    """``n`` random SynthFACS identities (``synthfacs.sample_identities``), neutral and frontal;
    returns the Figure.

    With ``show_quirks`` each look-alike identity is captioned with the AU it imitates at rest
    ("looks like AU4" for low close brows, ...): the reason evaluation must be subject-exclusive.
    Draw it first with ``show_quirks=False`` and ask which faces look expressive. Notebook 00.
    """
    ids, quirks = synthfacs.sample_identities(n, np.random.default_rng(seed))
    faces = _render_frontal(ids, np.zeros((n, len(ALL_AUS)), np.float32), size)
    titles = [f"looks like {LOOKS_LIKE[q]}" if q else "" for q in quirks] if show_quirks else None
    return show_faces(faces, titles)


def region_maps(maps: dict[int, np.ndarray], face=None, ncols: int = 5, boxes: bool = True):
    """Where each AU changes pixels: one panel per AU of ``maps`` (from
    ``synthfacs.au_region_maps``); returns the Figure.

    Each map is a heat map on its own colour scale; given a neutral ``face`` image (any size,
    e.g. ``synthfacs.render_face(size=64)``) it is overlaid on the face, transparent where the
    AU changes nothing. With ``boxes`` the AU's ``synthfacs.AU_BOXES`` rectangle, which must
    contain every change, is outlined. Notebook 00; later notebooks compare occlusion
    sensitivity maps with these.
    """
    fig, axes = _panel_grid(len(maps), ncols, 1.6)
    for ax, (au, heat) in zip(axes, maps.items()):
        heat = np.asarray(heat, np.float32)
        size = heat.shape[0]
        extent = (0, size, size, 0)  # map pixel coordinates, whatever the face's resolution
        if face is None:
            _show_image(ax, heat, cmap="inferno", extent=extent)
        else:
            _show_image(ax, face, extent=extent)
            alpha = 0.85 * heat / max(float(heat.max()), 1e-12)
            ax.imshow(heat, cmap="inferno", alpha=alpha, extent=extent)
        ax.set_title(f"AU{au} ({AUS[au].region})", fontsize=9)
        if boxes:
            u0, u1, v0, v1 = (size * (c + 1) / 2 for c in synthfacs.AU_BOXES[au])  # canonical -> pixel
            ax.add_patch(Rectangle((u0, v0), u1 - u0, v1 - v0, fill=False, edgecolor="cyan", lw=1))
    return fig


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------
def cooccurrence(labels, kind: str = "conditional") -> np.ndarray:
    """AU co-occurrence matrix (n_au, n_au) from labels (N, n_au) of 1/0/-1.

    Each pair (i, j) uses only the rows where both labels are known (-1 is masked pairwise).
    ``kind="conditional"``: entry [i, j] = P(AU j present | AU i present), nan if AU i is never
    present. ``kind="correlation"``: the phi coefficient (Pearson correlation of the 0/1
    labels), nan where either AU is constant. Notebook 00.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"cooccurrence: labels must be (N, n_au), got shape {labels.shape}")
    known = (labels >= 0).astype(np.float64)
    present = (labels == 1).astype(np.float64)
    both = present.T @ present  # [i, j]: rows where i and j are present
    i_present_j_known = present.T @ known
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "conditional":
            return both / i_present_j_known
        if kind == "correlation":
            n = known.T @ known  # rows where both are known
            mean_i = i_present_j_known / n
            mean_j = mean_i.T
            cov = both / n - mean_i * mean_j
            return cov / np.sqrt(mean_i * (1 - mean_i) * mean_j * (1 - mean_j))
    raise ValueError(f"cooccurrence: kind must be 'conditional' or 'correlation', got {kind!r}")


_COOCCURRENCE_STYLE = {  # kind -> (colour map, value range, title)
    "conditional": ("viridis", (0.0, 1.0), "P(column AU present | row AU present)"),
    "correlation": ("RdBu_r", (-1.0, 1.0), "phi correlation of AU labels"),
}


def cooccurrence_heatmap(labels, aus, ax=None, kind: str = "conditional"):
    """Heat map of :func:`cooccurrence` (row AU i, column AU j) with a colour bar, values written
    in the cells for up to 15 AUs; returns the Figure (that of ``ax`` when given).

    ``labels``: (N, len(aus)) of 1/0/-1, e.g. ``ds.labels`` with ``ds.aus``. Shows that AUs
    come in groups (6 with 12, 1 with 2, ...), which later notebooks exploit. Notebook 00.
    """
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
    """Positive rate of each AU of a dataset (over its known labels), with the number of unknown
    (-1) labels written above each AU that has any; returns the Figure (that of ``ax`` when
    given). Shows how rare most AUs are (class imbalance). Notebook 00.
    """
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
    """AU intensity over the frames of one task: a curve per AU that is active (max > 0), rising
    from onset to apex and falling at offset, and the presence threshold (intensity 1); returns
    the Figure (that of ``ax`` when given).

    ``intensities``: (F, len(aus)) with columns in ``aus`` order, e.g. the rows of one task of
    ``ds.meta["intensities"]`` (``ALL_AUS`` order). ``frames``: x values (default 0..F-1).
    Each AU keeps its colour from figure to figure. Notebook 00.
    """
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


# --------------------------------------------------------------------------------------------
# The masked autoencoder (notebook 01)
# --------------------------------------------------------------------------------------------
def loss_curve(history: dict, ax=None, title: str = "MAE pretraining",
               ylabel: str = "reconstruction loss (hidden patches)"):
    """Training loss and learning rate against the optimiser step; ``history`` as returned by
    every training loop (``mae.mae_for_profile``, ``teacher.trained_teacher``,
    ``distill.trained_student``). Notebooks 01 and 04."""
    if ax is None:
        ax = _figure(5.5, 3.0).add_subplot()
    ax.plot(history["step"], history["loss"], marker=".", color="C0")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel, color="C0")
    lr_ax = ax.twinx()
    lr_ax.plot(history["step"], history["lr"], color="C1", alpha=0.6)
    lr_ax.set_ylabel("learning rate", color="C1")
    ax.set_title(title)
    return ax.figure


def run_curves(records: list[dict]):
    """Loss curves of a command-line run, from its ``metrics.jsonl`` records (see
    :func:`occfau_lib.metrics.read_jsonl`): one panel per kind of model (mae, teacher, student), one
    line per fold. Records without a logged history (a model loaded from the cache) are skipped.
    Notebook 05."""
    trained = [r for r in records if r.get("history", {}).get("loss")]
    kinds = list(dict.fromkeys(r["model"] for r in trained))
    if not kinds:
        raise ValueError("run_curves: no record with a loss history (were all models loaded from the cache?)")
    fig = _figure(4.2 * len(kinds), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(kinds)))
    for ax, kind in zip(axes, kinds):
        for r in (r for r in trained if r["model"] == kind):
            label = f"fold {r['fold']}" if "fold" in r else kind
            ax.plot(r["history"]["step"], r["history"]["loss"], label=label)
        ax.set(title=kind, xlabel="optimiser step", ylabel="training loss")
        ax.legend(fontsize=7)
    return fig


def masked_view(image: np.ndarray, visible: np.ndarray, patch_size: int) -> np.ndarray:
    """uint8 image (S, S, 3) with its hidden patches (visible (L,) False) drawn light grey, the way
    MAE figures show what the encoder receives. Notebook 01."""
    from .occlusion import patch_pixels

    return np.where(patch_pixels(visible, patch_size)[..., None], np.uint8(200), image)


def mae_views(model, images: np.ndarray, visibles: list[np.ndarray], labels: list[str]):
    """The four-panel MAE view, one row per masking: original / what the encoder sees /
    reconstruction / reconstruction pasted into the visible patches. ``images``: uint8
    (S, S, 3) or one per row (R, S, S, 3); ``visibles``: R patch-visibility masks (L,). Notebook 01."""
    from . import mae

    images = np.asarray(images)
    images = np.repeat(images[None], len(visibles), 0) if images.ndim == 3 else images
    vis = np.stack(visibles)
    raw = mae.reconstruct_images(model, images, vis, paste=False)
    pasted = mae.reconstruct_images(model, images, vis, paste=True)
    p = model.config.patch_size
    titles = ("original", "encoder sees", "reconstruction", "+ visible pixels")
    fig, axes = _panel_grid(4 * len(vis), 4, 1.5, label_width=1.0)
    for r, label in enumerate(labels):
        row = (images[r], masked_view(images[r], vis[r], p), raw[r], pasted[r])
        for c, img in enumerate(row):
            _show_image(axes[4 * r + c], img)
            if r == 0:
                axes[c].set_title(titles[c])
        axes[4 * r].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return fig


def mae_view(model, images: np.ndarray, mask_ratio: float = 0.75, sample: int = 0, seed: int = 0):
    """One four-panel row for ``images[sample]`` under MAE's random masking at ``mask_ratio``
    (fixed by ``seed``): what the mask-ratio widget of notebook 01 redraws."""
    from .occlusion import random_patches

    L = model.vit.embeddings.patch_embeddings.num_patches
    visible = random_patches(1, L, mask_ratio, seed)[0]
    return mae_views(model, images[sample], [visible], [f"{mask_ratio:.0%} hidden"])


def region_error_plot(errors: np.ndarray, ratios, regions, ax=None):
    """Reconstruction error of hidden pixels per face region (lines) against the mask ratio;
    ``errors`` (n_ratios, n_regions) from ``mae.region_errors``. Notebook 01."""
    if ax is None:
        ax = _figure(5.5, 3.2).add_subplot()
    for g, region in enumerate(regions):
        ax.plot(ratios, errors[:, g], marker="o", label=region)
    ax.set_xlabel("fraction of patches hidden")
    ax.set_ylabel("MSE of hidden pixels")
    ax.legend(fontsize=7, ncols=2)
    ax.set_title("Where is the face hard to invent?")
    return ax.figure


def condition_bars(values: dict[str, np.ndarray], ylabel: str, title: str = "", ax=None):
    """Mean (bar) and spread (dots) of a per-sample score under several conditions, e.g. AU12
    probability on clean faces vs reconstructions of hidden mouths. Notebook 01."""
    if ax is None:
        ax = _figure(1.3 * len(values) + 2, 3.2).add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: same figure every time
    for k, (name, v) in enumerate(values.items()):
        v = np.asarray(v, float)
        ax.bar(k, v.mean(), color=f"C{k}", alpha=0.5)
        ax.scatter(k + rng.uniform(-0.25, 0.25, len(v)), v, s=6, color=f"C{k}")
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax.figure


# --------------------------------------------------------------------------------------------
# Latent-space probing (notebook 02)
# --------------------------------------------------------------------------------------------
def probe_by_layer(results: dict[str, list[float]], references: dict[str, float] | None = None, ax=None,
                   ylabel: str = "average F1 (%)"):
    """Linear-probe score per encoder layer: one line per feature space (e.g. ``{"trained MAE ·
    CLS": [...], "random MAE · mean": [...]}``, a value in [0, 1] per layer, layer 0 = the
    embeddings), and a dashed horizontal line per ``references`` entry (``{"raw pixels": 0.41}``);
    values are drawn in percent. Returns the Figure (that of ``ax`` when given). Notebook 02.
    """
    if not results:
        raise ValueError("probe_by_layer: no results to draw")
    if ax is None:
        ax = _figure(6.4, 3.4).add_subplot()
    colors = colormaps["tab10"]
    n_layers = max(len(v) for v in results.values())
    for i, (name, values) in enumerate(results.items()):
        values = 100 * np.asarray(values, np.float64)
        style = "--" if "random" in name.lower() else "-"
        ax.plot(np.arange(len(values)), values, style, marker="o", ms=4, color=colors(i % 10), label=name)
    for j, (name, value) in enumerate((references or {}).items()):
        ax.axhline(100 * value, color=colors((len(results) + j) % 10), ls=":", lw=1.5, label=name)
    ax.set_xticks(range(n_layers), ["emb"] + [str(k) for k in range(1, n_layers)])
    ax.set(xlabel="encoder layer (emb = patch embeddings, before block 1)", ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def per_au_bars(rows: dict[str, dict[int, float]], aus, ax=None, ylabel: str = "F1 (%)"):
    """Grouped bars: per-AU scores (values in [0, 1], drawn in percent) of several methods or
    conditions, one colour per row of ``rows`` (``{name: {au: value}}``, e.g. the ``"f1"`` of
    :func:`occfau_lib.probe.probe_folds` results); nan draws no bar. Returns the Figure (that of
    ``ax`` when given). Notebook 02.
    """
    aus = tuple(aus)
    if not rows:
        raise ValueError("per_au_bars: no rows to draw")
    if ax is None:
        ax = _figure(max(5.0, 0.55 * len(aus) + 2.5), 3.2).add_subplot()
    width = 0.8 / len(rows)
    x = np.arange(len(aus))
    colors = colormaps["tab10"]
    for i, (name, scores) in enumerate(rows.items()):
        values = [100 * float({int(k): v for k, v in scores.items()}.get(a, np.nan)) for a in aus]
        ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(values), width, color=colors(i % 10), label=name)
    ax.set_xticks(x, au_labels(aus), fontsize=8)
    ax.set(ylabel=ylabel, ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def survival_heatmap(matrix, conditions, aus, ax=None, relative: bool = True, title: str | None = None):
    """Heat map of a score per hiding condition (rows) and AU (columns), each cell annotated.

    ``relative=True``: ``matrix`` is the fraction of the clean F1 that survives (from
    :func:`occfau_lib.probe.retained` with a reference), coloured red (lost) to green (kept) on
    [0, 1] -- values above 1 are written but coloured as 1. ``relative=False``: absolute F1 in
    [0, 1]. nan cells (no clean F1 to retain) are left blank and marked "–". Returns the Figure
    (that of ``ax`` when given). Notebook 02.
    """
    return _annotated_heatmap(matrix, conditions, aus, "RdYlGn" if relative else "viridis", (0, 1), ax,
                              title or ("fraction of clean F1 retained" if relative else "F1"))


def gain_heatmap(matrix, conditions, aus, ax=None, title: str = "F1 gain (points)"):
    """Heat map of a signed difference per condition (rows) and AU (columns), e.g. student F1 minus
    the teacher's on the same occluded faces, in points: blue = gain, red = loss. Notebook 04."""
    matrix = np.asarray(matrix, np.float64)
    bound = max(1e-9, float(np.nanmax(np.abs(matrix)))) if np.isfinite(matrix).any() else 1.0
    return _annotated_heatmap(matrix, conditions, aus, "RdBu", (-bound, bound), ax, title, digits=0)


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


def umap_scatter(emb, values, title: str = "", categorical: bool | None = None, ax=None, max_legend: int = 12):
    """A 2-D embedding (M, 2) as a scatter coloured by ``values`` (M,): categories (subject ids,
    AU presence 0/1, with -1 drawn grey as "unknown") get one colour each and a legend (up to
    ``max_legend`` categories; more are only counted in the title), continuous values (head yaw,
    intensity) a colour bar. ``categorical=None`` decides from the dtype: float is continuous,
    anything else categorical. Returns the Figure (that of ``ax`` when given). Notebook 02.
    """
    emb, values = np.asarray(emb), np.asarray(values)
    if emb.ndim != 2 or emb.shape[1] != 2 or len(values) != len(emb):
        raise ValueError(f"umap_scatter: need emb (M, 2) and values (M,); got {emb.shape} and {values.shape}")
    if categorical is None:
        categorical = values.dtype.kind not in "fc"
    if ax is None:
        ax = _figure(5.6, 4.4).add_subplot()
    if categorical:
        cats = np.unique(values)
        cmap = colormaps["tab10" if len(cats) <= 10 else "tab20" if len(cats) <= 20 else "turbo"]
        for i, cat in enumerate(cats):
            sel = values == cat
            unknown = str(cat) == "-1"
            color = "0.75" if unknown else cmap(i % 20 if len(cats) <= 20 else i / max(1, len(cats) - 1))
            ax.scatter(emb[sel, 0], emb[sel, 1], s=5, color=color, label="unknown" if unknown else str(cat),
                       linewidths=0, alpha=0.8)
        if len(cats) <= max_legend:
            ax.legend(fontsize=7, markerscale=2.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            title = f"{title} ({len(cats)} categories)"
    else:
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=values.astype(np.float64), s=5, cmap="coolwarm", linewidths=0)
        ax.figure.colorbar(sc, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set(xlabel="UMAP 1", ylabel="UMAP 2")
    return ax.figure


def umap_view(emb, colourings: dict, colour_by: str):
    """:func:`umap_scatter` of ``emb`` coloured by ``colourings[colour_by]`` (``{name: (M,) values}``)
    and titled by it: the widget of notebook 02 is
    ``interact(partial(viz.umap_view, emb, colourings), colour_by=list(colourings))``."""
    if colour_by not in colourings:
        raise ValueError(f"umap_view: no colouring {colour_by!r}; choose one of {list(colourings)}")
    return umap_scatter(emb, colourings[colour_by], title=f"coloured by {colour_by}")


def hiding_curves(curves: dict[str, list[float]], hidden_fractions, references: dict[str, float] | None = None,
                  ax=None, ylabel: str = "average F1 (%)"):
    """Score against the fraction of patches hidden (0 = clean): one line per feature space
    (``{"MAE patch tokens": [f1 at 0, at 0.25, ...]}``, values in [0, 1] drawn in percent) and a
    dotted horizontal line per ``references`` entry (e.g. the "always present" chance level).
    Returns the Figure (that of ``ax`` when given). Notebook 02.
    """
    fractions = 100 * np.asarray(hidden_fractions, np.float64)
    if not curves:
        raise ValueError("hiding_curves: no curves to draw")
    if ax is None:
        ax = _figure(5.8, 3.2).add_subplot()
    colors = colormaps["tab10"]
    for i, (name, values) in enumerate(curves.items()):
        if len(values) != len(fractions):
            raise ValueError(f"hiding_curves: {name!r} has {len(values)} values for {len(fractions)} fractions")
        ax.plot(fractions, 100 * np.asarray(values, np.float64), marker="o", ms=4, color=colors(i % 10), label=name)
    for j, (name, value) in enumerate((references or {}).items()):
        ax.axhline(100 * value, color="0.5", ls=":", lw=1.5, label=name)
    ax.set_xticks(fractions)
    ax.set(xlabel="patches hidden at random (%)", ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


# --------------------------------------------------------------------------------------------
# Notebook 03: occlusion effects
# --------------------------------------------------------------------------------------------
def occlusion_gallery(occluded: dict, n_faces: int = 3, patch_size: int | None = None):
    """Columns = conditions (``{label: occlusion.Occluded}``), rows = the first ``n_faces``
    faces; with ``patch_size`` one more row shows what the MAE encoder receives for face 0
    (hidden patches grey). Notebook 03."""
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


def level_curves(results: dict[str, dict], families: dict[str, dict[str, float]], aus, reference: str = "clean"):
    """F1 against occlusion level, one panel per family: the average (thick) and each AU (thin).

    results: ``{condition label: result}`` from :func:`metrics.evaluate_conditions`;
    families: ``{family name: {condition label: level}}`` (level = fraction of the image hidden,
    say); the ``reference`` condition is drawn at level 0 of every family. Notebook 03.
    """
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
        ax.set_title(family)
        ax.set_xlabel("fraction of the image hidden")
        ax.set_xticks(x, [f"{v:.0%}" for v in x])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 (%)")
    axes[-1].legend(fontsize=6, ncol=2, loc="upper right")
    return fig


def sensitivity_maps(drop: np.ndarray, truth: np.ndarray, aus, regions):
    """Side by side: where each AU shows on the face (``truth``, the renderer's share of the AU's
    pixel change per region, from :func:`occlusion.region_overlap`) and how much the detector's F1
    drops when that region is hidden (``drop``, F1 points). Both (n_au, n_regions). Notebook 03."""
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
    """An occluded face next to every AU's probability before and after the occlusion.

    predict: ``predict(images uint8 (N, S, S, 3)) -> probs (N, n_au)`` (e.g. a teacher's);
    face: one uint8 face (S, S, 3), labels its (n_au,) ground truth (1 / 0 / -1).
    occluder: ``"block"`` -- a mean-colour square of side ``side`` (fraction of the image) centred
    at canonical ``(cx, cy)`` (x right, y down, the image spans [-1, 1]) -- or any spec of
    :func:`occlusion.apply` (``"sunglasses"``, ``"mouth"``, ``"patches:0.5"`` ...), drawn with
    ``seed``. The widget of notebook 03 redraws this as the sliders move.
    """
    from .occlusion import apply, box_mask, occlude

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
    ax_bar.set_title("▼ = present in the ground truth; dotted = decision threshold")
    ax_bar.legend(fontsize=7, loc="upper right")
    return fig


def drift_bars(drift: dict[str, dict[str, np.ndarray]]):
    """How much the tokens of the *visible* patches change under each occluder (``{occluder:
    mae.token_drift(...)}``): mean 1 - cosine similarity to the clean encoding (0 = unchanged),
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


# --------------------------------------------------------------------------------------------
# The student (notebook 04)
# --------------------------------------------------------------------------------------------
def student_flow():
    """The data flow of the method as a diagram: teacher on the clean face above, student on the
    occluded face below, the two distillation losses between them. Notebook 04."""
    fig = _figure(10.5, 3.6)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, 10.5), ylim=(0, 3.6))
    ax.axis("off")

    def box(x, y, text, color):
        ax.text(x, y, text, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": color, "edgecolor": "0.3"})

    def arrow(x0, y0, x1, y1, text="", style="-|>"):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": style, "color": "0.3"})
        if text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, text, ha="center", fontsize=7, color="0.25")

    top, bottom = 2.9, 0.7
    box(0.8, top, "clean face", "white")
    box(3.0, top, "teacher backbone\n(CNN tokens)", "#dbe9f6")
    box(5.6, top, "ME-GraphAU head\nnodes (N, C), edges (N, N, C)", "#dbe9f6")
    box(8.9, top, "teacher classifiers\nprototypes + edge classifier", "#dbe9f6")
    box(0.8, bottom, "occluded face\n+ visible patches", "white")
    box(3.0, bottom, "frozen MAE encoder\nvisible patches only", "#e8e8e8")
    box(5.6, bottom, "mapping network\nlatent grid -> nodes, edges", "#fde2c8")
    box(8.9, bottom, "the same classifiers\n(frozen copies) -> AUs", "#fde2c8")
    for y in (top, bottom):
        arrow(1.5, y, 2.1, y)
        arrow(3.9, y, 4.3, y, "tokens")
        arrow(6.95, y, 7.65, y)
    ax.annotate("", (5.6, bottom + 0.45), (5.6, top - 0.45),
                arrowprops={"arrowstyle": "-|>", "color": "C3", "linestyle": "--"})
    ax.text(5.75, 1.8, "node KD + edge KD\n(MSE to the teacher's features)", fontsize=8, color="C3", va="center")
    ax.text(0.8, 1.8, "same face,\nsame labels", ha="center", fontsize=7, color="0.4")
    return fig


def method_bars(results: dict[str, dict[str, dict]], conditions=None, metric: str = "avg_f1", ax=None):
    """Grouped bars: one group per test condition, one bar per method, ``metric`` in percent, from
    ``{method: evaluate_conditions(...)}`` (:func:`occfau_lib.distill.compare_methods`). Notebook 04."""
    methods = list(results)
    conditions = list(conditions or next(iter(results.values())))
    if ax is None:
        ax = _figure(max(7.0, 0.9 * len(conditions) + 3), 3.8).add_subplot()
    width = 0.85 / len(methods)
    for m, name in enumerate(methods):
        values = [100 * results[name][c][metric] for c in conditions]
        ax.bar(np.arange(len(conditions)) + (m - (len(methods) - 1) / 2) * width, values, width, label=name,
               color=colormaps["tab10"](m % 10))
    ax.set_xticks(range(len(conditions)), conditions, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel({"avg_f1": "average F1 (%)", "avg_auc": "average AUC (%)"}.get(metric, metric))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return ax.figure


def feature_spaces(embeddings: dict[str, np.ndarray], present, occluded, title: str = ""):
    """Side-by-side 2-D embeddings (M, 2) of the same faces in several feature spaces (e.g. MAE
    latent, student node, teacher node): colour = AU present (1) / absent (0) / unknown (-1),
    marker = clean (o) or occluded (x) input. Notebook 04's UMAP widget."""
    present, occluded = np.asarray(present), np.asarray(occluded, bool)
    fig = _figure(4.0 * len(embeddings) + 1.2, 3.9)
    axes = fig.subplots(1, len(embeddings))
    axes = np.atleast_1d(axes)
    colours = {1: "C3", 0: "C0", -1: "0.75"}
    for ax, (name, emb) in zip(axes, embeddings.items()):
        emb = np.asarray(emb)
        if emb.shape != (len(present), 2):
            raise ValueError(f"feature_spaces: {name!r} embedding is {emb.shape}, expected ({len(present)}, 2)")
        for value, colour in colours.items():
            for occ, marker in ((False, "o"), (True, "x")):
                sel = (present == value) & (occluded == occ)
                if sel.any():
                    label = f"{'present' if value == 1 else 'absent' if value == 0 else 'unknown'}, " \
                            f"{'occluded' if occ else 'clean'}"
                    ax.scatter(emb[sel, 0], emb[sel, 1], s=7 if occ else 5, marker=marker, color=colour,
                               linewidths=0.6 if occ else 0, alpha=0.7, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(fontsize=7, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    return fig


def pair_heatmaps(matrices: dict[str, np.ndarray], aus):
    """Several (N, N) AU-pair matrices side by side on one [0, 1] scale, e.g. the empirical rate
    of "both present" and what the teacher's and the student's edges predict for it. Notebook 04."""
    aus = tuple(aus)
    fig = _figure(3.6 * len(matrices) + 0.8, 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (name, m) in zip(axes, matrices.items()):
        m = np.asarray(m, np.float64)
        if m.shape != (len(aus), len(aus)):
            raise ValueError(f"pair_heatmaps: {name!r} is {m.shape}, expected ({len(aus)}, {len(aus)})")
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=1)
        ax.set_xticks(range(len(aus)), au_labels(aus), fontsize=6, rotation=90)
        ax.set_yticks(range(len(aus)), au_labels(aus), fontsize=6)
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig
