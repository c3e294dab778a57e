"""The numbers that describe a face to the SynthFACS renderer, and those vectors from readable arguments.

A face is three vectors: an identity (:data:`IDENTITY_PARAMS`, z-scores of morphology, skin, hair
and age), AU intensities 0-5 in ``aus.ALL_AUS`` order, and per-image nuisances
(:data:`NUISANCE_PARAMS`: pose, crop, lighting, camera, backdrop). :mod:`occfau_lib.synthfacs`
samples them; :func:`render.render_faces` draws them; :func:`make_identity`, :func:`au_vector` and
:func:`make_nuisance` build them by name (notebook 00's face explorer).
"""
from __future__ import annotations

import numpy as np

from .aus import ALL_AUS

#: Identity (morphology) parameters, each a z-score, roughly N(0, 1) clipped to [-2.5, 2.5].
IDENTITY_PARAMS = (
    "face_width", "face_length", "jaw_width", "skin_tone", "skin_warmth",
    "brow_thickness", "brow_height", "brow_gap", "brow_arch",
    "eye_size", "eye_spacing", "nose_width", "nose_length",
    "lip_thickness", "mouth_width", "mouth_curve",
    "hair_color", "hair_volume", "fringe", "age",
)  # fmt: skip
#: Per-image nuisances: pose (roll in degrees, yaw/pitch in [-1, 1]), scale, translation (image
#: half-widths), lighting direction and strength, sensor noise std, blur mix, two background colours.
NUISANCE_PARAMS = (
    "roll", "yaw", "pitch", "scale", "tx", "ty",
    "light_x", "light_y", "light_strength", "noise", "blur",
    "bg_r", "bg_g", "bg_b", "bg2_r", "bg2_g", "bg2_b",
)  # fmt: skip

#: Column of each identity parameter, nuisance and AU in the renderer's input arrays.
ID_INDEX = {name: i for i, name in enumerate(IDENTITY_PARAMS)}
NU_INDEX = {name: i for i, name in enumerate(NUISANCE_PARAMS)}
AU_INDEX = {au: i for i, au in enumerate(ALL_AUS)}

#: The one studio every subject is filmed in, as in BP4D and DISFA: a plain grey-blue backdrop (top and
#: bottom colours), varied a little per session (docs/decisions.md, "The SynthFACS world").
STUDIO_BACKGROUND = ((0.55, 0.59, 0.66), (0.40, 0.43, 0.50))


def neutral_identity() -> np.ndarray:
    """The average identity (len(IDENTITY_PARAMS),): every z-score 0."""
    return np.zeros(len(IDENTITY_PARAMS), np.float32)


def make_identity(**params: float) -> np.ndarray:
    """An identity vector from named z-scores, e.g. ``make_identity(brow_height=-2)``."""
    unknown = set(params) - set(IDENTITY_PARAMS)
    if unknown:
        raise ValueError(f"unknown identity parameter(s) {sorted(unknown)}; known: {IDENTITY_PARAMS}")
    ident = neutral_identity()
    for name, value in params.items():
        ident[ID_INDEX[name]] = value
    return ident


def au_vector(intensities: dict[int, float] | None = None) -> np.ndarray:
    """AU intensities (15,) in ``ALL_AUS`` order from ``{12: 3.0, 6: 2.0}``."""
    vec = np.zeros(len(ALL_AUS), np.float32)
    for au, value in (intensities or {}).items():
        if au not in AU_INDEX:
            raise ValueError(f"AU{au} is not rendered by SynthFACS; renderable AUs: {list(ALL_AUS)}")
        if not 0 <= value <= 5:
            raise ValueError(f"AU{au} intensity {value} is outside the FACS range 0-5")
        vec[AU_INDEX[au]] = value
    return vec


def make_nuisance(roll: float = 0.0, yaw: float = 0.0, pitch: float = 0.0, scale: float = 1.0, tx: float = 0.0,
                  ty: float = 0.0, light=(-0.3, -0.4, 0.6), noise: float = 0.0, blur: float = 0.0,
                  background=STUDIO_BACKGROUND) -> np.ndarray:
    """A nuisance vector (len(NUISANCE_PARAMS),); defaults are a frontal, clean studio shot."""
    values = [roll, yaw, pitch, scale, tx, ty, *light, noise, blur, *background[0], *background[1]]
    return np.asarray(values, np.float32)
