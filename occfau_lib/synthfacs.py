"""SynthFACS: a procedural face world with known action units (the repo's embedded default data).

Taught in notebook 00. BP4D and DISFA are licensed and never shipped, so every notebook runs on
faces this module draws itself. The world is built so that what the notebooks show about AUs is
true of real faces:

- **Local.** Each AU moves or shades pixels only inside its anatomical region (``AU_BOXES``;
  the tests check it pixel-exactly). ``au_region_maps`` measures where that is.
- **Graded and subtle.** Intensity 0-5 scales every cue; at 1 a brow moves about a pixel at 64 px.
- **Correlated.** Sequences follow expression prototypes (happiness 6+12, anger 4+7+23/24, ...),
  so AUs co-occur the way they do in spontaneous data and AU *relations* carry information.
- **Confounded by identity.** 20 morphology parameters; some identities look like an AU at rest
  (low close brows ~ AU4, upturned mouth ~ AU12, narrow eyes ~ AU7, an aged forehead ~ AU1/2
  lines), so subject-exclusive evaluation matters.
- **Nuisances.** Head roll/yaw/pitch, scale and translation (alignment error), lighting,
  sensor noise, blur and background vary per frame.

Rendering is analytic and batched in torch: every pixel of every face is evaluated in the
face's canonical frame (u to the right, v downwards, face centre at 0, image edges at +-1 when
the head is frontal and unscaled). Shapes are soft-edged with one-pixel anti-aliasing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .aus import ALL_AUS, au_set
from .cache import config_hash, data_root, load_or_build
from .config import DataConfig, Profile, get_profile
from .data import ArrayDataset

#: Bump when the renderer or the samplers change what they produce: cached datasets re-render.
RENDERER_VERSION = 2

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
#: Identities that look like an AU at rest (see ``sample_identities``).
LOOKALIKES = {
    "low_close_brows": {"brow_height": -2.4, "brow_gap": -2.2, "brow_thickness": 1.5},  # ~ AU4
    "upturned_mouth": {"mouth_curve": 2.4},  # ~ AU12
    "downturned_mouth": {"mouth_curve": -2.4},  # ~ AU15
    "narrow_eyes": {"eye_size": -2.4},  # ~ AU7
    "aged": {"age": 2.5},  # forehead lines ~ AU1/AU2, deep folds ~ AU10
}

#: Canonical-frame boxes (u0, u1, v0, v1) that contain every pixel each AU can change on a
#: frontal face with identity parameters in range; the locality test checks this exactly.
AU_BOXES = {
    1: (-0.62, 0.62, -0.80, -0.12),
    2: (-0.62, 0.62, -0.80, -0.12),
    4: (-0.62, 0.62, -0.50, -0.06),
    6: (-0.66, 0.66, -0.26, 0.30),
    7: (-0.50, 0.50, -0.24, 0.02),
    9: (-0.24, 0.24, -0.20, 0.30),
    10: (-0.48, 0.48, 0.04, 0.62),
    12: (-0.55, 0.55, 0.04, 0.66),
    14: (-0.55, 0.55, 0.22, 0.62),
    15: (-0.48, 0.48, 0.22, 0.76),
    17: (-0.38, 0.38, 0.30, 0.92),
    23: (-0.40, 0.40, 0.24, 0.66),
    24: (-0.40, 0.40, 0.22, 0.66),
    25: (-0.40, 0.40, 0.28, 0.66),
    26: (-0.90, 0.90, 0.28, 1.00),
}

#: Expression prototypes: (name, weight, always-on AUs, optional {AU: probability}, one-of groups).
PROTOTYPES = (
    ("happiness", 0.20, (6, 12), {25: 0.5}, ()),
    ("sadness", 0.10, (1, 4, 15), {17: 0.5}, ()),
    ("surprise", 0.10, (1, 2), {}, ((25, 26),)),
    ("fear", 0.08, (1, 2, 4), {7: 0.5, 25: 0.5}, ()),
    ("anger", 0.12, (4, 7), {}, ((23, 24),)),
    ("disgust", 0.10, (9, 10), {17: 0.5}, ()),
    ("contempt", 0.07, (14,), {}, ()),
    ("neutral", 0.07, (), {}, ()),
    ("single", 0.16, (), {}, ()),  # one AU chosen uniformly at random
)
PRESENCE_THRESHOLD = 1.0  # an AU "occurs" from FACS intensity A (1) upwards, as in BP4D coding
SPONTANEOUS_RATE = 0.08  # chance per task that an AU outside the expression flickers on weakly

_ID = {name: i for i, name in enumerate(IDENTITY_PARAMS)}
_NU = {name: i for i, name in enumerate(NUISANCE_PARAMS)}
_AU = {au: i for i, au in enumerate(ALL_AUS)}


# --------------------------------------------------------------------------------------------
# Soft 2-D shapes on batched pixel grids. Every tensor below is (B, 1, H, W) or broadcasts to it;
# per-face scalars are (B, 1, 1, 1). ``aa`` is the pixel size in canonical units (anti-aliasing).
# --------------------------------------------------------------------------------------------
def _cover(dist, aa):
    """Coverage of a shape from a signed distance (negative inside), with a one-pixel ramp."""
    return (0.5 - dist / aa).clamp(0.0, 1.0)


def _ellipse(u, v, cu, cv, ru, rv, aa):
    """Coverage of an axis-aligned ellipse centred at (cu, cv) with radii (ru, rv)."""
    r = torch.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return _cover((r - 1.0) * torch.minimum(ru, rv), aa)


def _between(v, top, bottom, aa):
    """Coverage of the band top < v < bottom (top/bottom may vary along u)."""
    return _cover(torch.maximum(top - v, v - bottom), aa)


def _span(u, left, right, aa):
    """Coverage of left < u < right."""
    return _cover(torch.maximum(left - u, u - right), aa)


def _bump(x):
    """Smooth bump of x: 1 at 0, exactly 0 for |x| >= 1 (compact, so every cue stays local)."""
    return (1 - x * x).clamp(min=0) ** 2


def _blob(u, v, cu, cv, ru, rv):
    """A smooth elliptical bump in [0, 1], zero outside radii (ru, rv) (e.g. a raised cheek)."""
    return (1 - ((u - cu) / ru) ** 2 - ((v - cv) / rv) ** 2).clamp(min=0) ** 2


def _ridges(x, period):
    """Band-limited parallel furrows in [0, 1] (1 = furrow centre): wrinkles without aliasing."""
    return (0.5 + 0.5 * torch.cos(2 * math.pi * x / period)) ** 3


def _paint(img, cover, color):
    """Alpha-composite a colour (B, 3, 1, 1) over img (B, 3, H, W) with coverage (B, 1, H, W)."""
    return img + cover * (color - img)


def _sensor_noise(seeds, size):
    """Unit Gaussian noise (B, 3, S, S), one generator per face seed (independent of batching)."""
    return torch.from_numpy(np.stack([np.random.default_rng(int(s)).standard_normal((3, size, size), np.float32)
                                      for s in seeds]))


# --------------------------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------------------------
def render_faces(identities, aus, nuisances, seeds, size: int = 64) -> np.ndarray:
    """Render a batch of faces.

    identities: (B, len(IDENTITY_PARAMS)) z-scores; aus: (B, 15) intensities 0-5 in ``ALL_AUS``
    order; nuisances: (B, len(NUISANCE_PARAMS)); seeds: (B,) ints for sensor noise.
    Returns uint8 (B, size, size, 3). The same inputs always give the same pixels, whatever
    the batch they are rendered in.
    """
    ids = torch.as_tensor(np.asarray(identities, np.float32))
    au = torch.as_tensor(np.clip(np.asarray(aus, np.float32), 0, 5)) / 5.0  # (B, 15) in [0, 1]
    nu = torch.as_tensor(np.asarray(nuisances, np.float32))
    seeds = torch.as_tensor(np.asarray(seeds, np.int64))
    B = ids.shape[0]
    if not (ids.shape == (B, len(IDENTITY_PARAMS)) and au.shape == (B, len(ALL_AUS)) and nu.shape == (B, len(NUISANCE_PARAMS)) and seeds.shape == (B,)):
        raise ValueError(
            f"render_faces: expected identities (B, {len(IDENTITY_PARAMS)}), aus (B, {len(ALL_AUS)}), "
            f"nuisances (B, {len(NUISANCE_PARAMS)}), seeds (B,); got {tuple(ids.shape)}, "
            f"{tuple(au.shape)}, {tuple(nu.shape)}, {tuple(seeds.shape)}"
        )
    with torch.no_grad():
        img = _render(ids, au, nu, seeds, int(size))  # (B, 3, S, S) in [0, 1]
    return (img.permute(0, 2, 3, 1) * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def _render(ids, au, nu, seeds, S):
    B = ids.shape[0]

    def p(name):  # identity z-score, (B, 1, 1, 1)
        return ids[:, _ID[name]].view(B, 1, 1, 1)

    def n(name):  # nuisance value, (B, 1, 1, 1)
        return nu[:, _NU[name]].view(B, 1, 1, 1)

    def a(number):  # AU intensity / 5, (B, 1, 1, 1)
        return au[:, _AU[number]].view(B, 1, 1, 1)

    # Pixel centres in image coordinates, then the inverse head pose into the canonical frame.
    xs = (torch.arange(S, dtype=torch.float32) + 0.5) / S * 2 - 1
    X, Y = xs.view(1, 1, 1, S), xs.view(1, 1, S, 1)
    roll = n("roll") * (math.pi / 180)
    scale = n("scale")
    dx, dy = X - n("tx"), Y - n("ty")
    u = (torch.cos(roll) * dx + torch.sin(roll) * dy) / scale  # (B, 1, S, S)
    v = (-torch.sin(roll) * dx + torch.cos(roll) * dy) / scale
    aa = (2.0 / S) / scale  # one pixel in canonical units
    yaw, pitch = n("yaw"), n("pitch")

    def uf(depth):  # horizontal coordinate of a feature at this depth (yaw turns it sideways)
        return u - 0.22 * depth * yaw

    def vf(depth):  # vertical coordinate of a feature at this depth (pitch tilts it)
        return v - 0.16 * depth * pitch

    # ---- background and hair (behind the head) ------------------------------------------
    bg1 = nu[:, _NU["bg_r"] : _NU["bg_b"] + 1].view(B, 3, 1, 1)
    bg2 = nu[:, _NU["bg2_r"] : _NU["bg2_b"] + 1].view(B, 3, 1, 1)
    img = bg1 + (bg2 - bg1) * (Y + 1) / 2
    img = img.expand(B, 3, S, S)
    hair_tone = 0.08 + 0.10 * (p("hair_color") + 2.5)  # dark brown .. blond
    hair_color = torch.cat([hair_tone * 1.05, hair_tone * 0.85, hair_tone * 0.6], 1)
    face_w = 0.56 * (1 + 0.05 * p("face_width")) * (1 - 0.12 * yaw.abs())
    face_top = 0.80 * (1 + 0.04 * p("face_length"))
    jaw_drop = 0.13 * a(26)
    face_bot = 0.78 * (1 + 0.04 * p("face_length"))
    hu = uf(0.2)
    hair_w = face_w * (1.12 + 0.05 * p("hair_volume"))
    img = _paint(img, _ellipse(hu, v, 0.0, -0.15, hair_w, 0.85 + 0.04 * p("hair_volume"), aa), hair_color)

    # ---- face skin with Lambertian shading on an ellipsoid -----------------------------------
    fu = uf(0.3)
    vj = v - jaw_drop * ((v - 0.3) / 0.4).clamp(0, 1)  # AU26 stretches the face below the mouth
    vb = torch.where(vj < 0, face_top, face_bot)
    jaw_taper = 1 - (0.20 - 0.05 * p("jaw_width")) * (vj.clamp(min=0) / face_bot) ** 2
    wu = face_w * jaw_taper
    r = torch.sqrt((fu / wu) ** 2 + (vj / vb) ** 2)
    face = _cover((r - 1) * wu, aa)
    tone = 0.30 + 0.11 * (p("skin_tone") + 2.5)  # dark .. light skin
    warm = 0.025 * p("skin_warmth")
    skin = torch.cat([tone * 1.12 + warm, tone * 0.92, tone * 0.80 - warm], 1)  # (B, 3, 1, 1)
    nx, ny = (fu / wu).clamp(-1, 1), (vj / vb).clamp(-1, 1)
    nz = (1 - nx**2 - ny**2).clamp(min=0).sqrt()
    lx, ly = n("light_x"), n("light_y")
    lz = (1 - lx**2 - ly**2).clamp(min=0.05).sqrt()
    lambert = (nx * lx + ny * ly + nz * lz).clamp(min=0)
    shade = 0.80 + n("light_strength") * (0.55 * lambert - 0.30)  # (B, 1, S, S)
    img = _paint(img, face, skin)

    # Everything below is drawn on the skin; ``dark``/``light`` accumulate shading cues.
    dark = torch.zeros_like(u)
    age = p("age").clamp(min=0) / 2.5  # 0 (young) .. 1

    # ---- forehead: AU1 central lines, AU2 lateral lines, identity's age lines ------------
    fu0, fv0 = uf(0.5), vf(0.5)
    forehead = _span(fv0, -0.66, -0.40, aa * 4) * face
    central = _bump(fu0 / 0.30)
    lateral = _bump((fu0.abs() - 0.32) / 0.18)
    lines = _ridges(fv0 + 0.53, 0.085)
    dark = dark + forehead * lines * (0.45 * a(1) * central + 0.40 * a(2) * lateral + 0.22 * age * (central + lateral))

    # ---- brows: AU1 inner up, AU2 outer up, AU4 down and together + glabellar furrows ------
    bu, bv = uf(0.55).abs(), vf(0.55)  # mirror: both brows at once
    brow_v = -0.30 - 0.025 * p("brow_height")
    inner_u = 0.11 + 0.018 * p("brow_gap") - 0.05 * a(4)
    outer_u = torch.full_like(inner_u, 0.41) + 0.02 * p("face_width")
    inner_v = brow_v - 0.11 * a(1) + 0.075 * a(4)
    outer_v = brow_v - 0.11 * a(2) + 0.045 * a(4) - 0.03 * a(1)
    t = ((bu - inner_u) / (outer_u - inner_u)).clamp(0, 1)
    arch = 0.035 + 0.010 * p("brow_arch") + 0.02 * a(2) - 0.02 * a(4)
    centre_v = inner_v + (outer_v - inner_v) * t - 4 * arch * t * (1 - t)
    thick = 0.026 * (1 + 0.22 * p("brow_thickness")) * (1 + 0.25 * a(4)) * (1 - 0.45 * t)
    brow = _between(bv, centre_v - thick, centre_v + thick, aa) * _span(bu, inner_u, outer_u, aa)
    brow_color = hair_color * 0.8
    glabella = _bump((bv + 0.22 - 0.02 * a(4)) / 0.11) * _ridges(bu - 0.045, 0.09)
    dark = dark + 0.6 * a(4) * glabella * (bu < 0.1).float()

    # ---- eyes: AU7 tightens the lids, AU6 raises the lower lid from the cheek ---------------
    eu, ev = uf(0.6), vf(0.6)
    spacing = 0.245 * (1 + 0.05 * p("eye_spacing"))
    ex = eu.abs() - spacing  # signed horizontal offset from the eye centre (mirrored)
    eye_v = -0.11
    ew = 0.105 * (1 + 0.07 * p("eye_size"))
    open_up = 0.055 * (1 + 0.14 * p("eye_size")) * (1 - 0.35 * a(7) - 0.10 * a(6))
    open_lo = 0.040 * (1 + 0.14 * p("eye_size")) * (1 - 0.80 * a(7) - 0.45 * a(6))
    prof = (1 - (ex / ew) ** 2).clamp(min=0).sqrt()  # lid profile, 1 at the centre, 0 at corners
    lid_top = eye_v - open_up * prof
    lid_bot = eye_v + open_lo * prof
    eye = _between(ev, lid_top, lid_bot, aa) * _span(ex, -ew, ew, aa)
    iris = _ellipse(ex, ev, torch.zeros_like(ew), torch.full_like(ew, eye_v), 0.45 * ew, 0.45 * ew, aa) * eye
    upper_lid_line = _between(ev, lid_top - 0.012, lid_top + 0.004, aa) * _span(ex, -ew * 1.05, ew * 1.05, aa)
    lower_lid_line = _between(ev, lid_bot - 0.002, lid_bot + 0.006 + 0.018 * a(7), aa) * _span(ex, -ew, ew, aa)
    dark = dark + 0.45 * lower_lid_line * (0.3 + a(7))

    # ---- cheeks (AU6): raised cheek highlight, infraorbital bulge, crow's feet -------------
    cu_, cv_ = uf(0.5).abs(), vf(0.5)
    light = 0.12 * a(6) * _blob(cu_, cv_, 0.27, 0.10 - 0.06 * a(6), 0.20, 0.15)
    bulge_v = eye_v + 0.085 - 0.03 * a(6)
    dark = dark + 0.35 * a(6) * _bump((cv_ - bulge_v) / 0.022) * _bump((cu_ - spacing) / 0.12)
    ang = torch.atan2(cv_ - eye_v, cu_ - (spacing + ew + 0.03))
    feet_r = torch.sqrt((cu_ - (spacing + ew + 0.03)) ** 2 + (cv_ - eye_v) ** 2)
    crows = _ridges(ang, 0.45) * _bump((feet_r - 0.06) / 0.06) * (cu_ > spacing + ew).float()
    dark = dark + 0.5 * a(6) * crows

    # ---- nose: AU9 wrinkles the root and lifts/flares the nostrils ---------------------------
    nu_, nv_ = uf(1.0), vf(1.0)
    tip_v = 0.14 + 0.02 * p("nose_length")
    nose_w = 0.055 * (1 + 0.12 * p("nose_width")) * (1 + 0.25 * a(9))
    nostril_v = tip_v + 0.015 - 0.035 * a(9)
    nostrils = _ellipse(nu_.abs(), nv_, nose_w, nostril_v, 0.022 * (1 + 0.3 * a(9)), 0.012 + 0.004 * a(9), aa)
    dark = dark + 0.55 * nostrils
    wing = _bump((nu_.abs() - nose_w - 0.025) / 0.022) * _span(nv_, nostril_v - 0.05, nostril_v + 0.01, aa * 3)
    dark = dark + 0.18 * wing
    light = light + 0.12 * _blob(nu_, nv_, 0.0, tip_v - 0.02, 0.06, 0.05)
    light = light + 0.06 * _blob(nu_, nv_, 0.0, -0.02, 0.035, 0.2)
    root = _span(nv_, -0.10, 0.06, aa * 3) * _bump(nu_ / 0.1)
    dark = dark + 0.55 * a(9) * root * _ridges(nv_ + 0.02, 0.055)

    # ---- nasolabial folds: deepened by AU10 (upper part) and AU12 (pulled outwards) ---------
    mu_, mv_ = uf(0.7), vf(0.7)
    mouth_v = 0.43
    mw0 = 0.19 * (1 + 0.07 * p("mouth_width"))  # the identity's resting mouth half-width
    mw = mw0 * (1 + 0.24 * a(12) - 0.30 * a(23) - 0.14 * a(24) - 0.12 * a(14))
    fold_t = ((mv_ - (tip_v + 0.01)) / (mouth_v + 0.06 - tip_v)).clamp(0, 1)
    fold_u = 0.11 + (mw0 + 0.07 - 0.11) * fold_t + 0.07 * a(12) * fold_t
    fold = _bump((mu_.abs() - fold_u) / 0.03) * _span(mv_, tip_v + 0.01, mouth_v + 0.08, aa * 3)
    dark = dark + fold * (0.10 + 0.15 * age + 0.45 * a(10) * (1 - fold_t) + 0.40 * a(12) * fold_t)

    # ---- mouth: AU10/12/14/15/17/23/24/25/26 ------------------------------------------------
    lift = 0.022 * p("mouth_curve") + 0.085 * a(12) - 0.10 * a(15) + 0.012 * a(14)
    lift = lift * (1 - 0.5 * a(24))
    ut = mu_ / mw
    prof = (1 - ut**2).clamp(min=0)  # (B, 1, S, S) lip profile along the mouth
    line = mouth_v - lift * ut**2 - 0.05 * a(17) * prof  # closed-lip line (corners up = lower v)
    raise_up = 0.06 * a(10) * prof.sqrt()
    gap = (0.06 * a(25) + 0.9 * jaw_drop + 0.012 * a(10)) * prof.sqrt()
    thick = (1 + 0.18 * p("lip_thickness")) * (1 - 0.50 * a(23)) * (1 - 0.65 * a(24))
    up_edge = line - raise_up - 0.25 * gap  # lower edge of the upper lip
    lo_edge = line - raise_up * 0.3 + 0.75 * gap  # upper edge of the lower lip
    up_top = up_edge - 0.032 * thick * prof.sqrt() - 0.006
    lo_bot = lo_edge + 0.042 * thick * prof.sqrt() + 0.006
    across = _span(mu_, -mw, mw, aa)
    lip_color = torch.cat([tone * 1.12 + 0.10, tone * 0.62, tone * 0.62], 1) * (1 - 0.25 * a(23) - 0.2 * a(24))
    lips = (_between(mv_, up_top, up_edge, aa) + _between(mv_, lo_edge, lo_bot, aa)) * across
    cavity = _between(mv_, up_edge, lo_edge, aa) * across
    teeth = _between(mv_, up_edge, up_edge + 0.03, aa) * _span(mu_, -0.7 * mw, 0.7 * mw, aa) * cavity
    seam = _bump((mv_ - 0.5 * (up_edge + lo_edge)) / 0.014) * across * (1 - cavity)
    dark = dark + 0.5 * seam
    # AU24 presses the lips: skin bulges above and below; AU15 folds the skin under the corners.
    bulges = _bump((mv_ - up_top + 0.02) / 0.018) + _bump((mv_ - lo_bot - 0.02) / 0.018)
    dark = dark + 0.65 * a(24) * bulges * _span(mu_, -0.8 * mw, 0.8 * mw, aa)
    corner_v = mouth_v - lift
    dark = dark + 0.60 * a(15) * _blob(mu_.abs(), mv_, mw + 0.01, corner_v + 0.07, 0.06, 0.10)
    # AU14: dimples just outside the tightened corners.
    dark = dark + 0.9 * a(14) * _blob(mu_.abs(), mv_, mw + 0.04, corner_v, 0.04, 0.06)

    # ---- chin (AU17 boss up and wrinkled; AU26 moves it down with the jaw) ------------------
    cv2 = vf(0.6) - jaw_drop + 0.03 * a(17)
    chin_u = uf(0.6)
    chin = _blob(chin_u, cv2, 0.0, 0.66, 0.22, 0.12)
    pebble = (torch.cos(chin_u * 55) * torch.cos(cv2 * 55) * 0.5 + 0.5) ** 2  # "orange peel" skin
    dark = dark + 0.55 * a(17) * chin * pebble
    light = light + (0.06 + 0.18 * a(17)) * chin
    sulcus = _bump((cv2 - (mouth_v + 0.13 + 0.01 * a(17))) / 0.028) * _bump(chin_u / 0.17)  # mentolabial furrow
    dark = dark + (0.15 + 0.35 * a(17)) * sulcus

    # ---- composite features on the skin, then lighting, blur and sensor noise --------------
    skin_img = img * (1 - dark.clamp(0, 0.85)) + light
    img = img + face * (skin_img - img)
    img = _paint(img, brow * face, brow_color)
    img = _paint(img, lips * face, lip_color)
    img = _paint(img, cavity * face, torch.tensor([0.18, 0.05, 0.06]).view(1, 3, 1, 1))
    img = _paint(img, teeth * face, torch.tensor([0.88, 0.86, 0.80]).view(1, 3, 1, 1))
    sclera = torch.tensor([0.90, 0.88, 0.86]).view(1, 3, 1, 1)
    img = _paint(img, eye * face, sclera * tone.clamp(max=0.8) / 0.8 + 0.15)
    img = _paint(img, iris * face, torch.tensor([0.22, 0.14, 0.08]).view(1, 3, 1, 1))
    img = _paint(img, upper_lid_line * face, skin * 0.35)
    hairline = -0.64 + 0.05 * p("fringe").clamp(min=0)
    fringe = _cover(v - (hairline + 0.04 * torch.cos(u * 9)), aa) * _cover(r - 1.0, aa * 4)
    img = _paint(img, fringe * (v < -0.4).float(), hair_color)
    img = img * (1 + face * (shade - 1))  # lighting falls on the face only

    blur = n("blur")
    if S >= 3:  # 3x3 binomial blur, mixed in by the per-face blur amount
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        padded = torch.nn.functional.pad(img, (1, 1, 1, 1), mode="replicate")
        h = padded[..., :, :-2] * k[0] + padded[..., :, 1:-1] * k[1] + padded[..., :, 2:] * k[2]
        blurred = h[..., :-2, :] * k[0] + h[..., 1:-1, :] * k[1] + h[..., 2:, :] * k[2]
        img = img + blur * (blurred - img)
    return (img + n("noise") * _sensor_noise(seeds, S)).clamp(0, 1)


# --------------------------------------------------------------------------------------------
# Convenience: one face from readable arguments
# --------------------------------------------------------------------------------------------
def neutral_identity() -> np.ndarray:
    """The average identity: every morphology z-score 0. (len(IDENTITY_PARAMS),)"""
    return np.zeros(len(IDENTITY_PARAMS), np.float32)


def make_identity(**params: float) -> np.ndarray:
    """An identity vector from named z-scores, e.g. ``make_identity(brow_height=-2)``."""
    unknown = set(params) - set(IDENTITY_PARAMS)
    if unknown:
        raise ValueError(f"unknown identity parameter(s) {sorted(unknown)}; known: {IDENTITY_PARAMS}")
    ident = neutral_identity()
    for name, value in params.items():
        ident[_ID[name]] = value
    return ident


def au_vector(intensities: dict[int, float] | None = None) -> np.ndarray:
    """AU intensities (15,) in ``ALL_AUS`` order from ``{12: 3.0, 6: 2.0}``."""
    vec = np.zeros(len(ALL_AUS), np.float32)
    for au, value in (intensities or {}).items():
        if au not in _AU:
            raise ValueError(f"AU{au} is not rendered by SynthFACS; renderable AUs: {list(ALL_AUS)}")
        if not 0 <= value <= 5:
            raise ValueError(f"AU{au} intensity {value} is outside the FACS range 0-5")
        vec[_AU[au]] = value
    return vec


def make_nuisance(
    roll: float = 0.0, yaw: float = 0.0, pitch: float = 0.0, scale: float = 1.0, tx: float = 0.0,
    ty: float = 0.0, light=(-0.3, -0.4, 0.6), noise: float = 0.0, blur: float = 0.0,
    background=((0.55, 0.60, 0.68), (0.30, 0.33, 0.40)),
) -> np.ndarray:
    """A nuisance vector (len(NUISANCE_PARAMS),); defaults are a frontal, clean studio shot."""
    values = [roll, yaw, pitch, scale, tx, ty, *light, noise, blur, *background[0], *background[1]]
    return np.asarray(values, np.float32)


def render_face(identity=None, aus=None, pose=(0.0, 0.0, 0.0), lighting=(-0.3, -0.4, 0.6), seed: int = 0,
                size: int = 64, **nuisance) -> np.ndarray:
    """Render one face: (size, size, 3) uint8.

    identity: (len(IDENTITY_PARAMS),) or None for the average face; aus: dict {AU: 0-5} or (15,);
    pose: (roll degrees, yaw, pitch); lighting: (x, y, strength); ``nuisance`` may add
    scale/tx/ty/noise/blur/background (see ``make_nuisance``).
    """
    identity = neutral_identity() if identity is None else np.asarray(identity, np.float32)
    aus = au_vector(aus) if aus is None or isinstance(aus, dict) else np.asarray(aus, np.float32)
    roll, yaw, pitch = pose
    nu = make_nuisance(roll=roll, yaw=yaw, pitch=pitch, light=lighting, **nuisance)
    return render_faces(identity[None], aus[None], nu[None], np.array([seed]), size)[0]


# --------------------------------------------------------------------------------------------
# Samplers: identities, expressions in onset-apex-offset sequences, nuisances
# --------------------------------------------------------------------------------------------
def sample_identities(n: int, rng: np.random.Generator, lookalike_rate: float = 0.3):
    """``n`` identities (n, P) and the name of each one's AU look-alike quirk ('' if none)."""
    ids = np.clip(rng.normal(size=(n, len(IDENTITY_PARAMS))), -2.5, 2.5).astype(np.float32)
    names = list(LOOKALIKES)
    quirks = []
    for i in range(n):
        quirk = names[rng.integers(len(names))] if rng.random() < lookalike_rate else ""
        for param, value in LOOKALIKES.get(quirk, {}).items():
            ids[i, _ID[param]] = value
        quirks.append(quirk)
    return ids, quirks


def sample_expression(rng: np.random.Generator) -> tuple[str, dict[int, float]]:
    """One expression: prototype name and apex intensity per active AU (1.5-5)."""
    weights = np.array([w for _, w, *_ in PROTOTYPES])
    name, _, core, optional, one_of = PROTOTYPES[rng.choice(len(PROTOTYPES), p=weights / weights.sum())]
    active = set(core)
    active |= {au for au, prob in optional.items() if rng.random() < prob}
    for group in one_of:
        active.add(group[rng.integers(len(group))])
        if rng.random() < 0.25:  # sometimes both members (e.g. surprise with 25 and 26)
            active |= set(group)
    if name == "single":
        active = {ALL_AUS[rng.integers(len(ALL_AUS))]}
    return name, {au: float(rng.uniform(1.5, 5.0)) for au in sorted(active)}


def _envelope(t, rng):
    """Onset-apex-offset curve in [0, 1] over normalised time t (F,)."""
    t0 = rng.uniform(-0.1, 0.3)
    t1 = t0 + rng.uniform(0.08, 0.25)
    t2 = t1 + rng.uniform(0.15, 0.6)
    t3 = t2 + rng.uniform(0.08, 0.25)
    up = np.clip((t - t0) / (t1 - t0), 0, 1)
    down = np.clip((t3 - t) / (t3 - t2), 0, 1)
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731  (smoothstep)
    return smooth(np.minimum(up, down))


def sample_sequence(frames: int, rng: np.random.Generator):
    """One task: (prototype names, AU intensities (frames, 15)) with onset-apex-offset curves.

    A task holds one expression, sometimes a second one at another time (spontaneous behaviour
    is rarely a single clean prototype); each active AU gets its own timing and per-frame
    intensity noise; and every AU also flickers on weakly on its own with probability
    ``SPONTANEOUS_RATE`` (blinks, speech, tension).
    """
    names, apexes = [], []
    for _ in range(1 if rng.random() < 0.6 else 2):
        name, apex = sample_expression(rng)
        names.append(name)
        apexes.append(apex)
    apexes.append({au: float(rng.uniform(0.8, 3.0)) for au in ALL_AUS if rng.random() < SPONTANEOUS_RATE})
    t = np.linspace(0, 1, frames)
    out = np.zeros((frames, len(ALL_AUS)), np.float32)
    for apex in apexes:
        for au, peak in apex.items():
            curve = peak * _envelope(t, rng) + rng.normal(0, 0.15, frames)
            out[:, _AU[au]] = np.maximum(out[:, _AU[au]], np.clip(curve, 0, 5))
    return "+".join(names), out


def sample_session(rng: np.random.Generator) -> np.ndarray:
    """One subject's recording session (len(NUISANCE_PARAMS),): camera framing, lighting,
    sensor and background, fixed for all of the subject's tasks, as in BP4D/DISFA where each
    subject is filmed in one sitting in one room. (Drawing them per *task* instead lets a model
    recognise the task from its background and lighting and read the task's expression off that:
    a shortcut that works on training subjects and fails on new ones. Pose is per frame.)"""
    out = np.zeros(len(NUISANCE_PARAMS), np.float32)
    out[_NU["scale"]] = rng.uniform(0.93, 1.07)
    out[_NU["tx"]], out[_NU["ty"]] = rng.normal(0, 0.02, 2)
    angle, elev = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.6)
    out[_NU["light_x"]], out[_NU["light_y"]] = elev * math.cos(angle), elev * math.sin(angle)
    out[_NU["light_strength"]] = rng.uniform(0.2, 1.0)
    out[_NU["noise"]] = rng.uniform(0.0, 0.03)
    out[_NU["blur"]] = rng.uniform(0.0, 0.9)
    out[_NU["bg_r"]:] = rng.uniform(0.1, 0.9, size=6)
    return out


def sample_nuisances(frames: int, rng: np.random.Generator, base_pose: np.ndarray,
                     session: np.ndarray) -> np.ndarray:
    """Per-frame nuisances (frames, Q) for one task: smooth head motion around the subject's
    habitual pose, the subject's ``session`` (:func:`sample_session`) with small per-frame
    jitter of framing and lighting."""
    t = np.linspace(0, 2 * math.pi, frames)
    out = np.repeat(session[None].astype(np.float32), frames, axis=0)
    drift = lambda amp: amp * np.sin(t * rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * math.pi))  # noqa: E731
    out[:, _NU["roll"]] = base_pose[0] + drift(2.5) + rng.normal(0, 0.7, frames)
    out[:, _NU["yaw"]] = np.clip(base_pose[1] + drift(0.25) + rng.normal(0, 0.03, frames), -1, 1)
    out[:, _NU["pitch"]] = np.clip(base_pose[2] + drift(0.2) + rng.normal(0, 0.03, frames), -1, 1)
    out[:, _NU["scale"]] += rng.normal(0, 0.01, frames)
    out[:, _NU["tx"]] += rng.normal(0, 0.01, frames)
    out[:, _NU["ty"]] += rng.normal(0, 0.01, frames)
    out[:, _NU["light_x"]] += rng.normal(0, 0.03, frames)
    out[:, _NU["light_y"]] += rng.normal(0, 0.03, frames)
    return out


# --------------------------------------------------------------------------------------------
# Datasets: subjects x tasks x frames, cached under data/ by config hash
# --------------------------------------------------------------------------------------------
@dataclass
class World:
    """Everything a SynthFACS dataset is made of, as flat per-image arrays (N = images)."""

    images: np.ndarray  # (N, S, S, 3) uint8
    intensities: np.ndarray  # (N, 15) float32, ALL_AUS order
    identities: np.ndarray  # (n_subjects, P) float32
    quirks: list  # (n_subjects,) look-alike quirk names
    subject: np.ndarray  # (N,) int subject index
    task: np.ndarray  # (N,) int task index
    frame: np.ndarray  # (N,) int frame index in its task
    prototype: list  # (N,) expression prototype names
    nuisances: np.ndarray  # (N, Q) float32
    seeds: np.ndarray  # (N,) int64


def render_batch_size(size: int) -> int:
    """Faces per ``render_faces`` call that keep the working set in CPU cache (~0.5 Mpixel):
    measured by benchmarks/bench_render.py, 128 at 64 px, 32 at 128 px, 10 at 224 px."""
    return int(np.clip((1 << 19) // (size * size), 4, 256))


def generate_world(cfg: DataConfig, progress: bool = True) -> World:
    """Sample and render a whole SynthFACS world from its config (deterministic in ``cfg.seed``)."""
    rng = np.random.default_rng(cfg.seed)
    identities, quirks = sample_identities(cfg.n_subjects, rng)
    intens, nuis, subj, task, frame, proto = [], [], [], [], [], []
    for s in range(cfg.n_subjects):
        base_pose = np.array([rng.normal(0, 2.0), rng.normal(0, 0.12), rng.normal(0, 0.1)])
        session = sample_session(rng)
        for k in range(cfg.n_tasks):
            name, seq = sample_sequence(cfg.frames_per_task, rng)
            intens.append(seq)
            nuis.append(sample_nuisances(cfg.frames_per_task, rng, base_pose, session))
            subj += [s] * cfg.frames_per_task
            task += [k] * cfg.frames_per_task
            frame += list(range(cfg.frames_per_task))
            proto += [name] * cfg.frames_per_task
    intensities, nuisances = np.concatenate(intens), np.concatenate(nuis)
    subject = np.asarray(subj)
    seeds = cfg.seed * 1_000_003 + np.arange(len(subject), dtype=np.int64)
    images = np.empty((len(subject), cfg.img_size, cfg.img_size, 3), np.uint8)
    batch = render_batch_size(cfg.img_size)
    for i in tqdm(range(0, len(subject), batch), desc="rendering SynthFACS", disable=not progress):
        j = slice(i, i + batch)
        images[j] = render_faces(identities[subject[j]], intensities[j], nuisances[j], seeds[j], cfg.img_size)
    return World(images, intensities, identities, quirks, subject, np.asarray(task), np.asarray(frame), proto,
                 nuisances, seeds)


def subject_ids(n: int) -> list[str]:
    """Subject names S001, S002, ... (strings, like BP4D's F001/M001)."""
    return [f"S{i + 1:03d}" for i in range(n)]


def _save_world(world: World, config: dict, path):
    with path.open("wb") as f:
        np.savez(
            f, config=np.array(repr(config)), images=world.images, intensities=world.intensities,
            identities=world.identities, quirks=np.array(world.quirks), subject=world.subject, task=world.task,
            frame=world.frame, prototype=np.array(world.prototype), nuisances=world.nuisances, seeds=world.seeds,
        )  # fmt: skip


def _load_world(path) -> tuple[World, dict]:
    import ast

    with np.load(path, allow_pickle=False) as z:
        config = ast.literal_eval(str(z["config"]))
        world = World(z["images"], z["intensities"], z["identities"], z["quirks"].tolist(), z["subject"], z["task"],
                      z["frame"], z["prototype"].tolist(), z["nuisances"], z["seeds"])
    return world, config


def world_key(cfg: DataConfig) -> dict:
    """What identifies a world in the cache keys of everything computed from it (models, features)."""
    return {"synthfacs": asdict(cfg), "renderer": RENDERER_VERSION}


def load_world(cfg: DataConfig | None = None, progress: bool = True) -> World:
    """The world for ``cfg`` (default: the current profile's), from the cache or freshly rendered."""
    cfg = cfg or get_profile().data
    key = {"renderer": RENDERER_VERSION, **vars(cfg)}
    path = data_root() / "synthfacs" / f"synthfacs-{config_hash(key)}.npz"
    return load_or_build(path, key, lambda: generate_world(cfg, progress=progress), _save_world, _load_world)


def occurrence(intensities: np.ndarray) -> np.ndarray:
    """AU occurrence labels (int8, 1/0) from intensities: present from intensity 1 (FACS A)."""
    return (intensities >= PRESENCE_THRESHOLD).astype(np.int8)


def build_dataset(profile: Profile | str | None = None, aus="all", cfg: DataConfig | None = None,
                  progress: bool = True):
    """SynthFACS as an ``AUDataset`` (same interface as BP4D/DISFA), labels for ``aus``.

    ``meta`` carries the intensities (ALL_AUS order), nuisances, task/frame indices and
    prototype names of every image, for the notebooks.
    """
    if cfg is None:
        cfg = (profile if isinstance(profile, Profile) else get_profile(profile)).data
    aus = au_set(aus)
    world = load_world(cfg, progress=progress)
    names = np.array(subject_ids(cfg.n_subjects))
    cols = [_AU[a] for a in aus]
    meta = {"intensities": world.intensities, "nuisances": world.nuisances, "task": world.task,
            "frame": world.frame, "prototype": np.array(world.prototype), "seeds": world.seeds}
    return ArrayDataset(world.images, occurrence(world.intensities[:, cols]), names[world.subject], aus,
                        name="synthfacs", meta=meta)


# --------------------------------------------------------------------------------------------
# Ground truth: where each AU changes pixels
# --------------------------------------------------------------------------------------------
def au_region_maps(size: int = 64, n_identities: int = 16, seed: int = 0) -> dict[int, np.ndarray]:
    """Per AU, the mean absolute pixel change (size, size) in [0, 1] between a neutral face and the
    same face with that AU at intensity 5, over ``n_identities`` random frontal identities.

    This is measured from the renderer, not drawn by hand: it is exactly where the AU shows.
    Later notebooks compare occlusion sensitivity maps with these.
    """
    rng = np.random.default_rng(seed)
    ids, _ = sample_identities(n_identities, rng, lookalike_rate=0.0)
    nu = np.repeat(make_nuisance()[None], n_identities, 0)
    seeds = np.arange(n_identities)
    neutral = render_faces(ids, np.zeros((n_identities, len(ALL_AUS))), nu, seeds, size).astype(np.float32)
    maps = {}
    for au in ALL_AUS:
        aus = np.zeros((n_identities, len(ALL_AUS)), np.float32)
        aus[:, _AU[au]] = 5.0
        diff = np.abs(render_faces(ids, aus, nu, seeds, size).astype(np.float32) - neutral)
        maps[au] = diff.mean(axis=(0, 3)) / 255.0
    return maps


def au_box_mask(au: int, size: int = 64, margin_px: int = 1) -> np.ndarray:
    """Boolean (size, size) mask of ``AU_BOXES[au]`` for a frontal, unscaled face (+ margin)."""
    u0, u1, v0, v1 = AU_BOXES[au]
    pix = lambda c: (c + 1) / 2 * size  # noqa: E731  canonical -> pixel coordinate
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    m = margin_px
    return (xs >= pix(u0) - m) & (xs <= pix(u1) + m) & (ys >= pix(v0) - m) & (ys <= pix(v1) + m)
