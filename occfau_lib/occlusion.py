"""Occlusion: which pixels an occluder hides and which MAE patches that leaves visible.

Taught in notebooks 01-03. An occluder is a **pixel mask** (True = hidden) painted on the image and a
**patch visibility** mask over the MAE's grid (True = visible; a patch is hidden when more than
``threshold`` of its pixels are). The paper's two families at this project's levels
(docs/method-notes.md): **random small patches** (:data:`PATCH_RATIOS` of the grid) and **large
blocks** (:data:`BLOCK_SIDES_224`, centred inside the face, plus the two halves), filled with the MAE's
mean colour and fixed by seed at test time. A **spec** names any occluder for :func:`apply`:
``"clean"``, ``"patches:0.5"``, ``"block:96"``, a region (``"mouth"``), a realistic occluder
(``"sunglasses"``), or several joined by ``"+"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .patches import MEAN_FILL, box_mask, crop_to_face, patch_pixels, patch_visibility, pixel_centres, random_patches

#: Random small patches: fraction of the MAE's grid patches hidden [ours].
PATCH_RATIOS = (0.25, 0.5, 0.75)
#: Large blocks: side in pixels at 224 px (about 29, 43, 50, 57% of the side), scaled to the image [ours].
BLOCK_SIDES_224 = (64, 96, 112, 128)
#: The half-face masks of the large-block family.
HALVES = ("upper_half", "lower_half")
#: Where a large block's centre may fall: the bounding box of the SynthFACS face in the aligned crop.
FACE_BOX = (-0.76, 0.76, -1.0, 0.92)
#: Region-targeted blocks for teaching (a subset of REGION_BOXES, one per facial feature).
REGION_BLOCKS = ("brows", "eyes", "nose", "mouth", "chin")
#: Default coverage above which a patch counts as hidden.
PATCH_THRESHOLD = 0.5
#: Seed of the fixed test occlusions (every evaluation sees the same masks).
TEST_SEED = 1234

#: Face regions as boxes (u0, u1, v0, v1) in the aligned crop (the image spans [-1, 1]).
REGION_BOXES = {
    "brows": (-0.84, 0.84, -0.84, -0.41),
    "eyes": (-0.74, 0.74, -0.46, -0.11),
    "nose": (-0.30, 0.30, -0.30, 0.22),
    "cheeks": (-0.84, 0.84, -0.16, 0.27),
    "mouth": (-0.61, 0.61, 0.19, 0.78),
    "chin": (-0.54, 0.54, 0.65, 1.0),
    "upper_half": (-1.0, 1.0, -1.0, 0.0),
    "lower_half": (-1.0, 1.0, 0.0, 1.0),
}


def region_mask(region: str, size: int) -> np.ndarray:
    """Pixel mask (size, size) hiding one face region of a frontal, aligned face."""
    try:
        return box_mask(REGION_BOXES[region], size)
    except KeyError:
        raise ValueError(f"unknown region {region!r}; choose one of {sorted(REGION_BOXES)}") from None


def occlude(images: np.ndarray, hidden: np.ndarray, fill=MEAN_FILL) -> np.ndarray:
    """Paint the ``hidden`` pixels ((S, S) or (N, S, S)) of uint8 images (N, S, S, 3) with ``fill``."""
    out = images.copy()
    mask = np.broadcast_to(np.asarray(hidden, bool), images.shape[:3])
    out[mask] = np.asarray(fill, np.uint8)
    return out


# --- The two protocol families --------------------------------------------------------------------
def block_side(side_224: int, size: int) -> int:
    """Side in pixels at image ``size`` of a block that is ``side_224`` pixels wide at 224 px."""
    return max(1, int(round(side_224 * size / 224)))


def random_blocks(n: int, size: int, side_224: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel masks (n, S, S) of one square block per face, its centre uniform inside
    :data:`FACE_BOX` and the block inside the image."""
    side = block_side(side_224, size)
    if side > size:
        raise ValueError(f"a {side_224}-px block (at 224 px) does not fit a {size}-px image")
    u0, u1, v0, v1 = (np.asarray(FACE_BOX, np.float64) + 1) / 2 * size  # in pixels
    half = side / 2
    cx = rng.uniform(max(u0, half), min(u1, size - half), n)  # (n,) block centres, pixels
    cy = rng.uniform(max(v0, half), min(v1, size - half), n)
    x0 = np.clip(np.round(cx - half).astype(int), 0, size - side)
    y0 = np.clip(np.round(cy - half).astype(int), 0, size - side)
    grid = np.arange(size)
    cols = (grid[None] >= x0[:, None]) & (grid[None] < x0[:, None] + side)  # (n, S)
    rows = (grid[None] >= y0[:, None]) & (grid[None] < y0[:, None] + side)
    return rows[:, :, None] & cols[:, None, :]


def protocol_conditions() -> dict[str, str]:
    """The protocol's test conditions ``{label: spec}`` in reporting order."""
    out = {"clean": "clean"}
    out.update({f"patches {round(100 * r)}%": f"patches:{r}" for r in PATCH_RATIOS})
    out.update({f"block {round(100 * s / 224)}%": f"block:{s}" for s in BLOCK_SIDES_224})
    out.update({h.replace("_", " "): h for h in HALVES})
    return out


def training_specs(n: int, rng: np.random.Generator, clean_rate: float = 0.0) -> list[str]:
    """The training mixture [ours]: each face draws one occluded protocol condition uniformly, or
    stays clean with probability ``clean_rate``."""
    pool = [spec for spec in protocol_conditions().values() if spec != "clean"]
    picks = [pool[i] for i in rng.integers(len(pool), size=n)]
    return ["clean" if rng.random() < clean_rate else spec for spec in picks]


# --- Realistic occluders for teaching, drawn in the renderer's face frame -------------------------
def _jittered_grid(n: int, size: int, rng: np.random.Generator):
    """Face-frame coordinates (n, S, S) of every pixel, shifted and scaled a little per face."""
    c = pixel_centres(size)
    shift = rng.uniform(-0.04, 0.04, (n, 2))
    scale = rng.uniform(0.92, 1.08, n)
    u = (c[None, None, :] - shift[:, 0, None, None]) / scale[:, None, None]
    v = (c[None, :, None] - shift[:, 1, None, None]) / scale[:, None, None]
    u, v = crop_to_face(u, v)
    return np.broadcast_to(u, (n, size, size)), np.broadcast_to(v, (n, size, size))


def _pick(palette, n: int, rng: np.random.Generator) -> np.ndarray:
    """One colour (n, 1, 1, 3) per face from a palette of RGB triples."""
    return np.asarray(palette, np.float64)[rng.integers(len(palette), size=n)][:, None, None, :]


def _sunglasses(u, v, rng):
    lenses = ((np.abs(u) - 0.25) / 0.21) ** 2 + ((v + 0.13) / 0.16) ** 2 <= 1
    bridge = (np.abs(u) <= 0.08) & (np.abs(v + 0.19) <= 0.03)
    temples = (np.abs(u) >= 0.42) & (np.abs(u) <= 0.72) & (np.abs(v + 0.19) <= 0.025)
    tint = _pick([(25, 25, 30), (45, 32, 22), (20, 32, 45)], len(u), rng)
    glare = 1.5 - 0.6 * np.clip((v + 0.29) / 0.32, 0, 1)  # lighter towards the top of the lens
    return lenses | bridge | temples, tint * glare[..., None]


def _medical_mask(u, v, rng):
    body = ((u / 0.60) ** 2 + ((v - 0.42) / 0.46) ** 2 <= 1) & (v >= 0.02)
    straps = ((np.abs(v - 0.12) <= 0.02) | (np.abs(v - 0.70) <= 0.02)) & (np.abs(u) >= 0.5) & (np.abs(u) <= 0.95)
    color = _pick([(160, 200, 225), (232, 234, 236), (45, 45, 50)], len(u), rng)
    pleats = 1 - 0.15 * (np.cos(2 * np.pi * (v - 0.02) / 0.14) > 0.85)  # folds of the fabric
    return body | straps, color * pleats[..., None]


def _hand(u, v, rng):
    palm = ((u - 0.05) / 0.40) ** 2 + ((v - 0.48) / 0.24) ** 2 <= 1
    fingers = np.zeros(u.shape, bool)
    edges = np.zeros(u.shape, bool)
    for k, vk in enumerate((0.30, 0.41, 0.52, 0.63)):  # four fingers across the cheek
        dv = np.abs(v - vk)
        finger = (dv <= 0.052) & (u >= -0.70 + 0.06 * abs(k - 1.5)) & (u <= 0.2)
        fingers |= finger
        edges |= finger & (dv >= 0.04)
    tone = rng.uniform(0.35, 0.85, len(u))[:, None, None, None]
    skin = np.concatenate([tone * 1.12, tone * 0.92, tone * 0.80], -1) * 255  # (n, 1, 1, 3)
    shade = np.where(edges & ~palm, 0.75, 1.0) * (1.05 - 0.2 * np.clip(v - 0.3, 0, 1))
    return palm | fingers, skin * shade[..., None]


def _fringe(u, v, rng):
    n = len(u)
    level = rng.uniform(-0.36, -0.22, n)[:, None, None]  # where the fringe ends, around the brows
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    edge = level + 0.05 * np.sin(14 * u + phase) + 0.03 * np.sin(31 * u + 2 * phase)
    head = (u / 0.66) ** 2 + ((v + 0.15) / 0.88) ** 2 <= 1  # the fringe stays on the head
    hair = (v <= edge) & head
    color = _pick([(60, 40, 25), (25, 22, 20), (170, 140, 80), (120, 60, 30)], n, rng)
    strands = 0.85 + 0.15 * np.cos(40 * u + 3 * v)
    return hair, color * strands[..., None]


def _scarf(u, v, rng):
    n = len(u)
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    top = 0.50 + 0.05 * np.sin(6 * u + phase)
    cloth = (v >= top) & (np.abs(u) <= 0.95)
    a = _pick([(150, 30, 40), (30, 70, 130), (40, 110, 60), (200, 160, 40)], n, rng)
    b = _pick([(230, 225, 210), (30, 30, 35)], n, rng)
    stripes = (np.floor((u + v) / 0.12) % 2 == 0)[..., None]
    return cloth, np.where(stripes, a, b)


#: Realistic occluders: name -> drawing function (u, v, rng) -> (covered (n, S, S), colour (n, S, S, 3)).
REALISTIC = {"sunglasses": _sunglasses, "medical_mask": _medical_mask, "hand": _hand, "fringe": _fringe,
             "scarf": _scarf}


# --- One API for every occluder: spec -> occluded batch -------------------------------------------
@dataclass(frozen=True)
class Occluded:
    """A batch of occluded faces: what the detector sees and what the MAE may encode."""

    images: np.ndarray  # (N, S, S, 3) uint8, occluder pixels painted in
    hidden: np.ndarray  # (N, S, S) bool, True where an occluder covers the pixel
    visible: np.ndarray  # (N, L) bool patch visibility, True = the MAE encodes the patch
    spec: str  # what was applied


def _layer(part: str, n: int, size: int, patch_size: int, rng: np.random.Generator, fill):
    """One component of a spec -> (hidden (n, S, S) bool, paint (n, S, S, 3) float)."""
    flat = np.broadcast_to(np.asarray(fill, np.float64), (n, size, size, 3))
    kind, _, arg = part.partition(":")
    if kind == "clean":
        return np.zeros((n, size, size), bool), flat
    if kind == "patches":
        vis = random_patches(n, (size // patch_size) ** 2, float(arg), seed=int(rng.integers(2**31)))
        return patch_pixels(vis, patch_size), flat
    if kind == "block":
        return random_blocks(n, size, int(arg), rng), flat
    if kind in REGION_BOXES:
        return np.broadcast_to(region_mask(kind, size), (n, size, size)), flat
    if kind in REALISTIC:
        u, v = _jittered_grid(n, size, rng)
        hidden, paint = REALISTIC[kind](u, v, rng)
        return hidden, np.broadcast_to(paint, (n, size, size, 3))
    raise ValueError(f"unknown occluder {part!r}: use 'clean', 'patches:<ratio>', 'block:<px at 224>', "
                     f"a region {sorted(REGION_BOXES)} or one of {sorted(REALISTIC)}, joined by '+'")


def apply(images: np.ndarray, spec: str, patch_size: int, seed: int = 0, threshold: float = PATCH_THRESHOLD,
          fill=MEAN_FILL) -> Occluded:
    """Occlude uint8 faces (N, S, S, 3) with ``spec``, each face its own draw, deterministic in
    ``seed``. The parts of a ``"+"`` spec are painted in order; the pixel mask is their union.
    Protocol blocks and patches are painted with ``fill``, realistic occluders in their own colours."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, S, S, 3); got {images.dtype} {images.shape}")
    n, size = len(images), images.shape[1]
    if size % patch_size:
        raise ValueError(f"image size {size} is not a multiple of the patch size {patch_size}")
    rng = np.random.default_rng(seed)
    out = images.astype(np.float64)
    hidden = np.zeros((n, size, size), bool)
    for part in spec.split("+"):
        h, paint = _layer(part.strip(), n, size, patch_size, rng, fill)
        out = np.where(h[..., None], paint, out)
        hidden |= h
    return Occluded(np.clip(np.round(out), 0, 255).astype(np.uint8), hidden,
                    patch_visibility(hidden, patch_size, threshold), spec)


def training_occlusion(images: np.ndarray, patch_size: int, rng: np.random.Generator,
                       clean_rate: float = 0.0) -> Occluded:
    """A training batch occluded by the training mixture, all draws from ``rng``."""
    specs = training_specs(len(images), rng, clean_rate)
    return apply_each(images, specs, patch_size, seed=int(rng.integers(2**31)))


def apply_each(images: np.ndarray, specs, patch_size: int, seed: int = 0, **kwargs) -> Occluded:
    """:func:`apply` with face ``i`` under ``specs[i]``; faces sharing a spec are occluded together."""
    images = np.asarray(images)
    specs = list(specs)
    if len(specs) != len(images):
        raise ValueError(f"{len(specs)} specs for {len(images)} images")
    L = (images.shape[1] // patch_size) ** 2
    out = np.empty_like(images)
    hidden = np.zeros(images.shape[:3], bool)
    visible = np.zeros((len(images), L), bool)
    for k, spec in enumerate(sorted(set(specs))):
        rows = np.flatnonzero(np.array(specs) == spec)
        occ = apply(images[rows], spec, patch_size, seed=seed * 1000 + k, **kwargs)
        out[rows], hidden[rows], visible[rows] = occ.images, occ.hidden, occ.visible
    return Occluded(out, hidden, visible, "mixture")


def region_overlap(maps: dict[int, np.ndarray], regions) -> np.ndarray:
    """Ground truth for the sensitivity map (n_au, n_regions): the share of each AU's pixel change
    (:func:`synthfacs.au_region_maps`) inside each region. Hiding a large share should hurt the AU."""
    aus = list(maps)
    size = maps[aus[0]].shape[0]
    masks = [region_mask(r, size) for r in regions]
    out = np.zeros((len(aus), len(masks)))
    for i, au in enumerate(aus):
        total = maps[au].sum()
        for j, m in enumerate(masks):
            out[i, j] = maps[au][m].sum() / total if total > 0 else np.nan
    return out
