"""The SynthFACS renderer: one painter per face part (:data:`PAINTERS`), analytic and batched in torch.

Taught in notebook 00 (the AU gallery and the face explorer); :mod:`occfau_lib.synthfacs` samples what
it draws. Painters work in the face frame (u right, v down, face centre at 0, 0.56 wide to each side);
the image is an aligned crop of it (``patches.ALIGNED_CROP``) after the small residual roll, scale and
shift an aligner leaves. AUs are mostly **movements of the face's parts** with creases on top, as in
FACS, scaled by intensity 0-5, each only inside its region (``synthfacs.AU_BOXES``) and sized so that
at intensity 5 it changes its region more than changing the person does (``synthfacs.au_visibility``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .aus import ALL_AUS
from .face_params import (AU_INDEX, ID_INDEX, IDENTITY_PARAMS, NU_INDEX, NUISANCE_PARAMS, au_vector, make_nuisance,
                          neutral_identity)
from .patches import crop_to_face, ALIGNED_CROP, to_uint8


#: Camera exposure: a video camera exposes for the face, so the frame is scaled by
#: ``(EXPOSURE_TARGET / tone) ** EXPOSURE_METERING`` (1: every face to the same mean, 0: none).
#: Without it skin albedo is the largest difference between subjects (docs/decisions.md).
EXPOSURE_TARGET, EXPOSURE_METERING = 0.58, 0.8


# --- Soft 2-D shapes: tensors (B, 1, H, W), per-face scalars (B, 1, 1, 1) -------------------------
# ``aa`` is the pixel size in face-frame units (one-pixel anti-aliasing).
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


# --- The renderer ---------------------------------------------------------------------------------
def render_faces(identities, aus, nuisances, seeds, size: int = 64) -> np.ndarray:
    """uint8 faces (B, size, size, 3) from identities (B, P), AU intensities 0-5 (B, 15), nuisances
    (B, Q) and sensor-noise seeds (B,); the same inputs give the same pixels in any batch."""
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
        face = _Face(ids, au, nu, int(size))
        for paint in PAINTERS:
            paint(face)
        return to_uint8(_camera(face, seeds))  # from (B, 3, S, S) in [0, 1]


# --- The painters, in drawing order ---------------------------------------------------------------
class _Face:
    """What the painters share while drawing one batch: each pixel's face-frame coordinates
    (``u``, ``v``, after the inverse head pose), the faces' parameters, the image so far and the
    shading cues the skin collects (``dark``, ``light``). Each painter adds its part to it."""

    def __init__(self, ids, au, nu, S):
        self.B, self.S, self.ids, self.au, self.nu = ids.shape[0], S, ids, au, nu
        # Pixel centres in image coordinates, then the inverse head pose into the face frame.
        xs = (torch.arange(S, dtype=torch.float32) + 0.5) / S * 2 - 1
        self.X, self.Y = xs.view(1, 1, 1, S), xs.view(1, 1, S, 1)
        roll = self.n("roll") * (math.pi / 180)
        scale = self.n("scale")
        dx, dy = self.X - self.n("tx"), self.Y - self.n("ty")
        # The aligned crop's residual misalignment (roll, scale, shift), then the crop template.
        self.u, self.v = crop_to_face((torch.cos(roll) * dx + torch.sin(roll) * dy) / scale,  # (B, 1, S, S)
                                      (-torch.sin(roll) * dx + torch.cos(roll) * dy) / scale)
        self.aa = (2.0 / S) * ALIGNED_CROP[0] / scale  # one pixel in face-frame units
        self.yaw, self.pitch = self.n("yaw"), self.n("pitch")

    def p(self, name):  # identity z-score, (B, 1, 1, 1)
        return self.ids[:, ID_INDEX[name]].view(self.B, 1, 1, 1)

    def n(self, name):  # nuisance value, (B, 1, 1, 1)
        return self.nu[:, NU_INDEX[name]].view(self.B, 1, 1, 1)

    def a(self, number):  # AU intensity / 5, (B, 1, 1, 1)
        return self.au[:, AU_INDEX[number]].view(self.B, 1, 1, 1)

    def uf(self, depth):  # horizontal coordinate of a feature at this depth (yaw turns it sideways)
        return self.u - 0.22 * depth * self.yaw

    def vf(self, depth):  # vertical coordinate of a feature at this depth (pitch tilts it)
        return self.v - 0.16 * depth * self.pitch


def _background_and_hair(f: _Face) -> None:
    """The studio backdrop as the session lit it (top to bottom gradient), then the hair mass."""
    p, a, B, S, aa = f.p, f.a, f.B, f.S, f.aa
    bg1 = f.nu[:, NU_INDEX["bg_r"] : NU_INDEX["bg_b"] + 1].view(B, 3, 1, 1)
    bg2 = f.nu[:, NU_INDEX["bg2_r"] : NU_INDEX["bg2_b"] + 1].view(B, 3, 1, 1)
    img = bg1 + (bg2 - bg1) * (f.Y + 1) / 2
    img = img.expand(B, 3, S, S)
    hair_tone = 0.08 + 0.10 * (p("hair_color") + 2.5)  # dark brown .. blond
    f.hair_color = torch.cat([hair_tone * 1.05, hair_tone * 0.85, hair_tone * 0.6], 1)
    f.face_w = 0.56 * (1 + 0.05 * p("face_width")) * (1 - 0.12 * f.yaw.abs())
    f.face_top = 0.80 * (1 + 0.04 * p("face_length"))
    f.jaw_drop = 0.24 * a(26)
    f.face_bot = 0.78 * (1 + 0.04 * p("face_length"))
    hu = f.uf(0.2)
    hair_w = f.face_w * (1.12 + 0.05 * p("hair_volume"))
    f.img = _paint(img, _ellipse(hu, f.v, 0.0, -0.15, hair_w, 0.85 + 0.04 * p("hair_volume"), aa), f.hair_color)


def _skin(f: _Face) -> None:
    """The face ellipsoid (AU26 stretches it below the mouth) in the identity's skin colour, and
    its Lambertian shading (applied at the end, on the face only)."""
    p, n, aa = f.p, f.n, f.aa
    fu = f.uf(0.3)
    vj = f.v - f.jaw_drop * ((f.v - 0.3) / 0.4).clamp(0, 1)  # AU26 stretches the face below the mouth
    vb = torch.where(vj < 0, f.face_top, f.face_bot)
    jaw_taper = 1 - (0.20 - 0.05 * p("jaw_width")) * (vj.clamp(min=0) / f.face_bot) ** 2
    wu = f.face_w * jaw_taper
    f.r = torch.sqrt((fu / wu) ** 2 + (vj / vb) ** 2)
    f.face = _cover((f.r - 1) * wu, aa)
    f.tone = 0.30 + 0.11 * (p("skin_tone") + 2.5)  # dark .. light skin
    f.exposure = (EXPOSURE_TARGET / f.tone) ** EXPOSURE_METERING  # the camera meters on the face
    warm = 0.025 * p("skin_warmth")
    f.skin = torch.cat([f.tone * 1.12 + warm, f.tone * 0.92, f.tone * 0.80 - warm], 1)  # (B, 3, 1, 1)
    nx, ny = (fu / wu).clamp(-1, 1), (vj / vb).clamp(-1, 1)
    nz = (1 - nx**2 - ny**2).clamp(min=0).sqrt()
    lx, ly = n("light_x"), n("light_y")
    lz = (1 - lx**2 - ly**2).clamp(min=0.05).sqrt()
    lambert = (nx * lx + ny * ly + nz * lz).clamp(min=0)
    f.shade = 0.80 + n("light_strength") * (0.55 * lambert - 0.30)  # (B, 1, S, S)
    f.img = _paint(f.img, f.face, f.skin)
    # Everything below is drawn on the skin; ``dark``/``light`` accumulate shading cues.
    f.dark = torch.zeros_like(f.u)
    f.light = torch.zeros_like(f.u)
    f.age = p("age").clamp(min=0) / 2.5  # 0 (young) .. 1


def _forehead(f: _Face) -> None:
    """AU1 central lines, AU2 lateral lines, the identity's age lines."""
    a, aa = f.a, f.aa
    fu0, fv0 = f.uf(0.5), f.vf(0.5)
    forehead = _span(fv0, -0.62, -0.42, aa * 4) * f.face
    central = _bump(fu0 / 0.26)
    lateral = _bump((fu0.abs() - 0.30) / 0.20)
    lines = _ridges(fv0 + 0.52, 0.075) ** 0.6  # furrows about a pixel wide at 64 px
    f.dark = f.dark + forehead * lines * (2.4 * a(1) * central + 2.5 * a(2) * lateral
                                          + 0.22 * f.age * (central + lateral))


def _brows(f: _Face) -> None:
    """AU1 raises the inner ends, AU2 the outer ends, AU4 lowers them together + glabellar furrows."""
    p, a, aa = f.p, f.a, f.aa
    bu, bv = f.uf(0.55).abs(), f.vf(0.55)  # mirror: both brows at once
    brow_v = -0.30 - 0.025 * p("brow_height")
    inner_u = 0.11 + 0.018 * p("brow_gap") - 0.07 * a(4)
    outer_u = torch.full_like(inner_u, 0.41) + 0.02 * p("face_width")
    inner_v = brow_v - 0.21 * a(1) + 0.14 * a(4)
    outer_v = brow_v - 0.22 * a(2) + 0.06 * a(4)
    t = ((bu - inner_u) / (outer_u - inner_u)).clamp(0, 1)
    arch = 0.035 + 0.010 * p("brow_arch") + 0.045 * a(2) - 0.02 * a(4)
    centre_v = inner_v + (outer_v - inner_v) * t - 4 * arch * t * (1 - t)
    thick = 0.032 * (1 + 0.22 * p("brow_thickness")) * (1 + 0.25 * a(4)) * (1 - 0.45 * t)
    f.brow = _between(bv, centre_v - thick, centre_v + thick, aa) * _span(bu, inner_u, outer_u, aa)
    f.brow_color = f.hair_color * 0.55  # brows are darker than the skin for nearly everyone
    # The eye cover fold between brow and lid: stretched and lit when the brow rises (AU1 inner,
    # AU2 outer), pushed down into shadow when it lowers (AU4).
    fold_v = brow_v + 0.07
    cover_fold = _bump((bv - fold_v) / 0.035)
    f.light = f.light + cover_fold * (0.45 * a(1) * _bump((bu - 0.14) / 0.13) + 0.6 * a(2) * _bump((bu - 0.36) / 0.15))
    f.dark = f.dark + 0.6 * a(4) * cover_fold * _bump((bu - 0.16) / 0.14)
    glabella = _bump((bv + 0.22 - 0.02 * a(4)) / 0.11) * _ridges(bu - 0.045, 0.09)
    f.dark = f.dark + 1.8 * a(4) * glabella * (bu < 0.1).float()


def _eyes(f: _Face) -> None:
    """Lids, sclera and iris: AU7 tightens the lids, AU6 raises the lower lid from the cheek."""
    p, a, aa = f.p, f.a, f.aa
    eu, ev = f.uf(0.6), f.vf(0.6)
    f.spacing = 0.245 * (1 + 0.05 * p("eye_spacing"))
    ex = eu.abs() - f.spacing  # signed horizontal offset from the eye centre (mirrored)
    f.eye_v = eye_v = -0.11
    f.ew = ew = 0.105 * (1 + 0.07 * p("eye_size"))
    open_up = 0.055 * (1 + 0.14 * p("eye_size")) * (1 - 0.45 * a(7) - 0.15 * a(6))
    open_lo = 0.040 * (1 + 0.14 * p("eye_size")) * (1 - 0.90 * a(7) - 0.60 * a(6)).clamp(min=0)
    prof = (1 - (ex / ew) ** 2).clamp(min=0).sqrt()  # lid profile, 1 at the centre, 0 at corners
    lid_top = eye_v - open_up * prof
    lid_bot = eye_v + open_lo * prof
    f.eye = _between(ev, lid_top, lid_bot, aa) * _span(ex, -ew, ew, aa)
    f.iris = _ellipse(ex, ev, torch.zeros_like(ew), torch.full_like(ew, eye_v), 0.45 * ew, 0.45 * ew, aa) * f.eye
    f.upper_lid_line = _between(ev, lid_top - 0.012, lid_top + 0.004, aa) * _span(ex, -ew * 1.05, ew * 1.05, aa)
    lower_lid_line = _between(ev, lid_bot - 0.002, lid_bot + 0.006 + 0.030 * a(7), aa) * _span(ex, -ew, ew, aa)
    f.dark = f.dark + 0.45 * lower_lid_line * (0.3 + 2.0 * a(7))
    # AU7 bunches the lower lid into a bulge under the eye.
    f.dark = f.dark + 0.9 * a(7) * _bump((ev - lid_bot - 0.035) / 0.02) * _bump(ex / (1.05 * ew))


def _cheeks(f: _Face) -> None:
    """AU6: the raised cheek's highlight, the infraorbital bulge, crow's feet."""
    a, spacing, ew, eye_v = f.a, f.spacing, f.ew, f.eye_v
    cu_, cv_ = f.uf(0.5).abs(), f.vf(0.5)
    f.light = f.light + 0.45 * a(6) * _blob(cu_, cv_, 0.27, 0.10 - 0.08 * a(6), 0.20, 0.14)
    bulge_v = eye_v + 0.085 - 0.04 * a(6)
    f.dark = f.dark + 0.75 * a(6) * _bump((cv_ - bulge_v) / 0.025) * _bump((cu_ - spacing) / 0.12)
    ang = torch.atan2(cv_ - eye_v, cu_ - (spacing + ew + 0.03))
    feet_r = torch.sqrt((cu_ - (spacing + ew + 0.03)) ** 2 + (cv_ - eye_v) ** 2)
    crows = _ridges(ang, 0.45) * _bump((feet_r - 0.06) / 0.06) * (cu_ > spacing + ew).float()
    f.dark = f.dark + 0.9 * a(6) * crows


def _nose(f: _Face) -> None:
    """Nostrils, wings and highlights; AU9 wrinkles the root and lifts and flares the nostrils."""
    p, a, aa = f.p, f.a, f.aa
    nu_, nv_ = f.uf(1.0), f.vf(1.0)
    f.tip_v = tip_v = 0.14 + 0.02 * p("nose_length")
    nose_w = 0.055 * (1 + 0.12 * p("nose_width")) * (1 + 0.35 * a(9))
    nostril_v = tip_v + 0.015 - 0.05 * a(9)
    nostrils = _ellipse(nu_.abs(), nv_, nose_w, nostril_v, 0.022 * (1 + 0.4 * a(9)), 0.012 + 0.008 * a(9), aa)
    f.dark = f.dark + 0.55 * nostrils
    wing = _bump((nu_.abs() - nose_w - 0.025) / 0.022) * _span(nv_, nostril_v - 0.05, nostril_v + 0.01, aa * 3)
    f.dark = f.dark + (0.18 + 0.55 * a(9)) * wing
    f.light = f.light + 0.12 * _blob(nu_, nv_, 0.0, tip_v - 0.02, 0.06, 0.05)
    f.light = f.light + 0.06 * _blob(nu_, nv_, 0.0, -0.02, 0.035, 0.2)
    root = _span(nv_, -0.10, 0.06, aa * 3) * _bump(nu_ / 0.1)
    f.dark = f.dark + 1.4 * a(9) * root * _ridges(nv_ + 0.02, 0.055)


def _nasolabial_folds(f: _Face) -> None:
    """The folds from nose to mouth corners, deepened by AU10 (upper part) and AU12 (pulled out)."""
    p, a, aa, tip_v = f.p, f.a, f.aa, f.tip_v
    f.mu_, f.mv_ = mu_, mv_ = f.uf(0.7), f.vf(0.7)
    f.mouth_v = mouth_v = 0.43
    mw0 = 0.19 * (1 + 0.07 * p("mouth_width"))  # the identity's resting mouth half-width
    f.mw = mw0 * (1 + 0.34 * a(12) + 0.08 * a(15) - 0.35 * a(23) - 0.14 * a(24) - 0.20 * a(14))
    fold_t = ((mv_ - (tip_v + 0.01)) / (mouth_v + 0.06 - tip_v)).clamp(0, 1)
    fold_u = 0.11 + (mw0 + 0.07 - 0.11) * fold_t + 0.07 * a(12) * fold_t
    fold = _bump((mu_.abs() - fold_u) / 0.03) * _span(mv_, tip_v + 0.01, mouth_v + 0.08, aa * 3)
    f.dark = f.dark + fold * (0.10 + 0.15 * f.age + 0.70 * a(10) * (1 - fold_t) + 1.0 * a(12) * fold_t)
    # AU12 (and AU10, less) raise the infraorbital triangle: the cheek above the fold bulges into the light.
    triangle = _blob(mu_.abs(), mv_, fold_u + 0.08, tip_v + 0.03 - 0.04 * a(12), 0.11, 0.10)
    f.light = f.light + (0.40 * a(12) + 0.12 * a(10)) * triangle


def _mouth(f: _Face) -> None:
    """Lips, opening, teeth and the skin around them: AU10/12/14/15/17/23/24/25/26."""
    p, a, aa = f.p, f.a, f.aa
    mu_, mv_, mw, mouth_v, tone = f.mu_, f.mv_, f.mw, f.mouth_v, f.tone
    lift = 0.022 * p("mouth_curve") + 0.15 * a(12) - 0.20 * a(15) + 0.04 * a(14)
    lift = lift * (1 - 0.5 * a(24))
    ut = mu_ / mw
    prof = (1 - ut**2).clamp(min=0)  # (B, 1, S, S) lip profile along the mouth
    line = mouth_v - lift * ut**2 - 0.12 * a(17) * prof  # closed-lip line (corners up = lower v)
    raise_up = 0.09 * a(10) * prof.sqrt()
    gap = (0.09 * a(25) + 0.9 * f.jaw_drop + 0.02 * a(10)) * prof.sqrt()
    thick = (1 + 0.18 * p("lip_thickness")) * (1 - 0.85 * a(23)) * (1 - 0.75 * a(24))
    up_edge = line - raise_up - 0.25 * gap  # lower edge of the upper lip
    lo_edge = line - raise_up * 0.3 + 0.75 * gap  # upper edge of the lower lip
    up_top = up_edge - 0.032 * thick * prof.sqrt() - 0.006
    lo_bot = lo_edge + (0.042 * thick + 0.03 * a(15)) * prof.sqrt() + 0.006  # AU15 stretches the lower lip down
    across = _span(mu_, -mw, mw, aa)
    f.lip_color = torch.cat([tone * 1.12 + 0.10, tone * 0.62, tone * 0.62], 1) * (1 - 0.25 * a(23) - 0.2 * a(24))
    f.lips = (_between(mv_, up_top, up_edge, aa) + _between(mv_, lo_edge, lo_bot, aa)) * across
    f.cavity = cavity = _between(mv_, up_edge, lo_edge, aa) * across
    f.teeth = _between(mv_, up_edge, up_edge + 0.03, aa) * _span(mu_, -0.7 * mw, 0.7 * mw, aa) * cavity
    seam = _bump((mv_ - 0.5 * (up_edge + lo_edge)) / 0.014) * across * (1 - cavity)
    f.dark = f.dark + (0.5 + 0.6 * a(23) + 0.3 * a(24)) * seam
    # AU24 presses the lips: skin bulges above and below; AU15 folds the skin under the corners.
    bulges = _bump((mv_ - up_top + 0.02) / 0.018) + _bump((mv_ - lo_bot - 0.02) / 0.018)
    f.dark = f.dark + (0.9 * a(24) + 1.1 * a(23)) * bulges * _span(mu_, -0.8 * mw, 0.8 * mw, aa)
    corner_v = mouth_v - lift
    f.dark = f.dark + 1.4 * a(15) * _blob(mu_.abs(), mv_, mw, corner_v + 0.05, 0.08, 0.08)
    # AU14: dimples just outside the tightened corners.
    f.dark = f.dark + 1.1 * a(14) * _blob(mu_.abs(), mv_, mw + 0.04, corner_v, 0.07, 0.09)


def _chin(f: _Face) -> None:
    """AU17 pushes the chin boss up and wrinkles it; AU26 moves it down with the jaw."""
    a = f.a
    cv2 = f.vf(0.6) - f.jaw_drop + 0.06 * a(17)
    chin_u = f.uf(0.6)
    chin = _blob(chin_u, cv2, 0.0, 0.66, 0.22, 0.12)
    pebble = (torch.cos(chin_u * 38 + torch.cos(cv2 * 23)) * torch.cos(cv2 * 38) * 0.5 + 0.5) ** 2  # "orange peel" skin
    f.dark = f.dark + 1.4 * a(17) * chin * pebble
    f.light = f.light + (0.06 + 0.55 * a(17) + 0.50 * a(15)) * chin  # AU15 bulges the chin boss too
    sulcus = _bump((cv2 - (f.mouth_v + 0.13 + 0.01 * a(17))) / 0.028) * _bump(chin_u / 0.17)  # mentolabial furrow
    f.dark = f.dark + (0.15 + 0.35 * a(17) + 0.45 * a(15)) * sulcus


def _composite(f: _Face) -> None:
    """The shading cues onto the skin, the coloured features on top, the fringe, then the light."""
    img, face, tone = f.img, f.face, f.tone
    skin_img = img * (1 - f.dark.clamp(0, 0.85)) + f.light
    img = img + face * (skin_img - img)
    img = _paint(img, f.brow * face, f.brow_color)
    img = _paint(img, f.lips * face, f.lip_color)
    img = _paint(img, f.cavity * face, torch.tensor([0.18, 0.05, 0.06]).view(1, 3, 1, 1))
    img = _paint(img, f.teeth * face, torch.tensor([0.88, 0.86, 0.80]).view(1, 3, 1, 1))
    sclera = torch.tensor([0.90, 0.88, 0.86]).view(1, 3, 1, 1)
    img = _paint(img, f.eye * face, sclera * tone.clamp(max=0.8) / 0.8 + 0.15)
    img = _paint(img, f.iris * face, torch.tensor([0.22, 0.14, 0.08]).view(1, 3, 1, 1))
    img = _paint(img, f.upper_lid_line * face, f.skin * 0.35)
    hairline = -0.64 + 0.05 * f.p("fringe").clamp(min=0)
    fringe = _cover(f.v - (hairline + 0.04 * torch.cos(f.u * 9)), f.aa) * _cover(f.r - 1.0, f.aa * 4)
    img = _paint(img, fringe * (f.v < -0.4).float(), f.hair_color)
    f.img = img * (1 + face * (f.shade - 1)) * f.exposure  # lighting falls on the face only


def _camera(f: _Face, seeds) -> torch.Tensor:
    """A per-face mix of 3x3 binomial blur, then sensor noise: (B, 3, S, S) in [0, 1]."""
    img, S, blur = f.img, f.S, f.n("blur")
    if S >= 3:
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        padded = torch.nn.functional.pad(img, (1, 1, 1, 1), mode="replicate")
        h = padded[..., :, :-2] * k[0] + padded[..., :, 1:-1] * k[1] + padded[..., :, 2:] * k[2]
        blurred = h[..., :-2, :] * k[0] + h[..., 1:-1, :] * k[1] + h[..., 2:, :] * k[2]
        img = img + blur * (blurred - img)
    # unit Gaussian noise (B, 3, S, S), one generator per face seed: independent of batching
    noise = np.stack([np.random.default_rng(int(s)).standard_normal((3, S, S), np.float32) for s in seeds])
    return (img + f.n("noise") * torch.from_numpy(noise)).clamp(0, 1)


#: The painters in drawing order (each face part over the ones before it); the camera comes last.
PAINTERS = (_background_and_hair, _skin, _forehead, _brows, _eyes, _cheeks, _nose, _nasolabial_folds, _mouth,
            _chin, _composite)


# --- One face from readable arguments -------------------------------------------------------------
def render_face(identity=None, aus=None, pose=(0.0, 0.0, 0.0), lighting=(-0.3, -0.4, 0.6), seed: int = 0,
                size: int = 64, **nuisance) -> np.ndarray:
    """One uint8 face (size, size, 3): ``identity`` None is the average face; ``aus`` {AU: 0-5} or
    (15,); pose (roll degrees, yaw, pitch); lighting (x, y, strength); ``nuisance``: see ``make_nuisance``."""
    identity = neutral_identity() if identity is None else np.asarray(identity, np.float32)
    aus = au_vector(aus) if aus is None or isinstance(aus, dict) else np.asarray(aus, np.float32)
    roll, yaw, pitch = pose
    nu = make_nuisance(roll=roll, yaw=yaw, pitch=pitch, light=lighting, **nuisance)
    return render_faces(identity[None], aus[None], nu[None], np.array([seed]), size)[0]
