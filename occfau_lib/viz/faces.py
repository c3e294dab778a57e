"""Faces: galleries, the face explorer's figure, identities, AU region maps (notebook 00)."""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from .. import synthfacs
from ..aus import ALL_AUS, AUS, au_labels, au_set
from ._base import _figure, _panel_grid, _render_frontal, _show_image

#: What each SynthFACS look-alike quirk (``synthfacs.LOOKALIKES``) imitates at rest.
LOOKS_LIKE = {
    "low_close_brows": "AU4",
    "upturned_mouth": "AU12",
    "downturned_mouth": "AU15",
    "narrow_eyes": "AU7",
    "aged": "AU1/2 lines",
}


def show_faces(images, titles=None, ncols: int = 8, size: float = 1.6):
    """A grid of face images (any form :func:`_show_image` takes), an optional caption under each,
    ``size`` inches per panel. Used throughout, from notebook 00."""
    images = list(images)
    if not images:
        raise ValueError("show_faces: no images to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_faces: {len(titles)} titles for {len(images)} images")
    fig, axes = _panel_grid(len(images), ncols, size)
    for i, ax in enumerate(axes):
        _show_image(ax, images[i], None if titles is None else titles[i])
    return fig


def au_gallery(identity=None, aus=ALL_AUS, intensities=(1, 2, 3, 4, 5), size: int = 64, show_difference: bool = False):
    """Each AU at increasing intensity on one frontal face (None: the average face): rows = AUs,
    columns = neutral, then each intensity; with ``show_difference`` a last column shows
    |strongest - neutral|, so even the subtle cues show where they are. Notebook 00."""
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


def face_explorer(au1=0.0, au2=0.0, au4=0.0, au6=0.0, au7=0.0, au9=0.0, au10=0.0, au12=0.0, au14=0.0, au15=0.0,
                  au17=0.0, au23=0.0, au24=0.0, au25=0.0, au26=0.0, identity_seed: int = 0, roll=0.0, yaw=0.0,
                  pitch=0.0, light_x=-0.3, light_y=-0.4, light_strength=0.6, size: int = 128):
    """One face from AU intensity sliders (``au<n>``: 0-5) beside a bar chart of them: the slider
    widget of notebook 00. ``identity_seed`` 0 is the average face, k > 0 a random identity (a
    look-alike quirk is named in the title); ``roll`` in degrees, yaw, pitch and light in [-1, 1]."""
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
    """``n`` random identities, neutral and frontal; with ``show_quirks`` each look-alike is
    captioned with the AU it imitates at rest, the reason evaluation is subject-exclusive. Notebook 00."""
    ids, quirks = synthfacs.sample_identities(n, np.random.default_rng(seed))
    faces = _render_frontal(ids, np.zeros((n, len(ALL_AUS)), np.float32), size)
    titles = [f"looks like {LOOKS_LIKE[q]}" if q else "" for q in quirks] if show_quirks else None
    return show_faces(faces, titles)


def region_maps(maps: dict[int, np.ndarray], face=None, ncols: int = 5, boxes: bool = True):
    """Where each AU changes pixels, one panel per map of ``synthfacs.au_region_maps``, over a
    neutral ``face`` if given and with the AU's ``synthfacs.AU_BOXES`` outlined. Notebook 00."""
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
