"""Occlusion: which pixels an occluder hides and which MAE patches that leaves visible.

Taught in notebooks 01-03. Every occluder here is expressed twice: as a **pixel mask**
(True = hidden) to paint on the image, and as a **patch visibility** mask over the MAE's patch
grid (True = visible), where a patch counts as hidden when more than ``threshold`` of its pixels
are covered. Masks are deterministic given their seed.

Face regions are boxes in SynthFACS's canonical face frame (u right, v down, the face centred, the
image spanning [-1, 1]); on aligned real crops they land on the same parts of the face.
"""
from __future__ import annotations

import numpy as np
import torch

#: Face regions as canonical boxes (u0, u1, v0, v1) for region-targeted blocks.
REGION_BOXES = {
    "brows": (-0.62, 0.62, -0.52, -0.20),
    "eyes": (-0.55, 0.55, -0.24, 0.02),
    "nose": (-0.22, 0.22, -0.12, 0.26),
    "cheeks": (-0.62, 0.62, -0.02, 0.30),
    "mouth": (-0.45, 0.45, 0.24, 0.68),
    "chin": (-0.40, 0.40, 0.58, 0.95),
    "upper_half": (-1.0, 1.0, -1.0, 0.0),
    "lower_half": (-1.0, 1.0, 0.0, 1.0),
}


def box_mask(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Pixels (size, size) whose centres fall inside a canonical box: True = hidden."""
    u0, u1, v0, v1 = box
    c = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    return ((c[None, :] >= u0) & (c[None, :] <= u1)) & ((c[:, None] >= v0) & (c[:, None] <= v1))


def region_mask(region: str, size: int) -> np.ndarray:
    """Pixel mask (size, size) hiding one face region of a frontal, aligned face."""
    try:
        return box_mask(REGION_BOXES[region], size)
    except KeyError:
        raise ValueError(f"unknown region {region!r}; choose one of {sorted(REGION_BOXES)}") from None


def patch_visibility(hidden: np.ndarray, patch_size: int, threshold: float = 0.5) -> np.ndarray:
    """Pixel masks (..., S, S) -> patch visibility (..., L): a patch is hidden when more than
    ``threshold`` of its pixels are hidden (row-major grid, as the MAE orders patches)."""
    hidden = np.asarray(hidden, bool)
    *lead, S, _ = hidden.shape
    g = S // patch_size
    if g * patch_size != S:
        raise ValueError(f"image size {S} is not a multiple of the patch size {patch_size}")
    frac = hidden.reshape(*lead, g, patch_size, g, patch_size).mean(axis=(-3, -1))  # (..., g, g)
    return (frac <= threshold).reshape(*lead, g * g)


def random_patches(n: int, num_patches: int, ratio: float, seed: int = 0) -> np.ndarray:
    """Visibility (n, L) with exactly ``round(ratio * L)`` patches hidden uniformly at random per
    sample; the same seed always gives the same masks (fixed test occlusions)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"hidden ratio must be in [0, 1), got {ratio}")
    hide = int(round(ratio * num_patches))
    gen = torch.Generator().manual_seed(seed)
    order = torch.rand(n, num_patches, generator=gen).argsort(1)[:, :hide].numpy()
    visible = np.ones((n, num_patches), bool)
    np.put_along_axis(visible, order, False, axis=1)
    return visible


def occlude(images: np.ndarray, hidden: np.ndarray, fill=(124, 116, 104)) -> np.ndarray:
    """Paint hidden pixels of uint8 images (N, S, S, 3) with ``fill`` (default: the ImageNet mean
    colour, i.e. zero after the MAE's normalisation). ``hidden``: (S, S) or (N, S, S)."""
    out = images.copy()
    mask = np.broadcast_to(np.asarray(hidden, bool), images.shape[:3])
    out[mask] = np.asarray(fill, np.uint8)
    return out


def patch_pixels(visible: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch visibility (..., L) -> hidden-pixel mask (..., S, S): the inverse view of
    :func:`patch_visibility` (True where a hidden patch covers the pixel)."""
    visible = np.asarray(visible, bool)
    *lead, L = visible.shape
    g = int(round(L**0.5))
    grid = visible.reshape(*lead, g, 1, g, 1)
    full = np.broadcast_to(grid, (*lead, g, patch_size, g, patch_size))
    return ~full.reshape(*lead, g * patch_size, g * patch_size)
