"""Images, patches and masks: the conventions every stage shares (used from notebook 01 on).

Faces travel as uint8 arrays ``(N, S, S, 3)`` and enter models as float tensors ``(N, 3, S, S)`` in
[0, 1], then ImageNet-normalised as official MAE weights expect; an occluder's fill (:data:`MEAN_FILL`)
is zero for the encoder. A face is a row-major grid of ``patch_size`` squares, the MAE's tokens: which
patches a model may read is a **visibility** mask ``(..., L)`` (True = visible), which pixels an
occluder covers a **hidden-pixel** mask ``(..., S, S)`` (True = hidden). Face regions are boxes in the
frame of an aligned crop (u right, v down, the image spanning [-1, 1]; :data:`ALIGNED_CROP`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: ImageNet colour statistics: the normalisation official MAE weights (and timm CNNs) expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The normalisation mean as a uint8 colour, (124, 116, 104): a pixel of it is zero for the encoder.
MEAN_FILL = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)


# --- Pixels: uint8 <-> float, normalisation -------------------------------------------------------
def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` (or one ``(S, S, 3)``) -> float ``(N, 3, S, S)`` in [0, 1], on the
    device of a tensor input. Read-only arrays (memory-mapped caches, PIL buffers) are copied."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images) if images.flags.writeable else images.copy())
    return images.movedim(-1, -3).float().div(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``(N, 3, S, S)`` in [0, 1] -> uint8 ``(N, S, S, 3)`` (rounded, clipped)."""
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB ``(B, 3, S, S)`` -> ImageNet-normalised."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`, clipped to [0, 1] for display."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)


# --- Patches: visibility <-> pixels, random masks -------------------------------------------------
def patch_visibility(hidden: np.ndarray, patch_size: int, threshold: float = 0.5) -> np.ndarray:
    """Hidden-pixel masks ``(..., S, S)`` -> patch visibility ``(..., L)``: a patch is hidden when
    more than ``threshold`` of its pixels are hidden (row-major grid, as the MAE orders patches)."""
    hidden = np.asarray(hidden, bool)
    *lead, S, _ = hidden.shape
    g = S // patch_size
    if g * patch_size != S:
        raise ValueError(f"image size {S} is not a multiple of the patch size {patch_size}")
    frac = hidden.reshape(*lead, g, patch_size, g, patch_size).mean(axis=(-3, -1))  # (..., g, g)
    return (frac <= threshold).reshape(*lead, g * g)


def patch_pixels(visible: np.ndarray | torch.Tensor, patch_size: int) -> np.ndarray | torch.Tensor:
    """Patch visibility ``(..., L)`` -> hidden-pixel mask ``(..., S, S)`` (tensor or array, as given)."""
    *lead, L = visible.shape
    g = math.isqrt(L)
    if torch.is_tensor(visible):
        grid = visible.bool().reshape(*lead, g, 1, g, 1).expand(*lead, g, patch_size, g, patch_size)
    else:
        grid = np.broadcast_to(np.asarray(visible, bool).reshape(*lead, g, 1, g, 1), (*lead, g, patch_size, g, patch_size))
    return ~grid.reshape(*lead, g * patch_size, g * patch_size)


def _first_k(n: int, num_patches: int, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """Bool ``(n, L)`` with ``k`` True per row at uniformly random places (the first ``k`` of a random order)."""
    order = torch.rand(n, num_patches, generator=generator).argsort(dim=1)
    chosen = torch.zeros(n, num_patches, dtype=torch.bool)
    return chosen.scatter_(1, order[:, :k], True)


def random_visible(batch: int, num_patches: int, mask_ratio: float, generator: torch.Generator | None = None):
    """MAE's random masking as a visibility mask ``(B, L)``: ``round(L * (1 - ratio))`` patches kept."""
    return _first_k(batch, num_patches, int(round(num_patches * (1 - mask_ratio))), generator)


def random_patches(n: int, num_patches: int, ratio: float, seed: int = 0) -> np.ndarray:
    """Visibility ``(n, L)`` with ``round(ratio * L)`` random patches hidden per face, fixed by ``seed``."""
    if not 0 <= ratio < 1:
        raise ValueError(f"hidden ratio must be in [0, 1), got {ratio}")
    hide = int(round(ratio * num_patches))
    return (~_first_k(n, num_patches, hide, torch.Generator().manual_seed(seed))).numpy()


# --- The canonical face frame ---------------------------------------------------------------------
def pixel_centres(size: int) -> np.ndarray:
    """Canonical coordinate of each pixel centre along one axis, ``(size,)`` in (-1, 1)."""
    return (np.arange(size) + 0.5) / size * 2 - 1


#: The alignment template: an aligned crop shows the face frame's u in [-h, h] and v in [c - h, c + h],
#: ``(h, c) = ALIGNED_CROP``: upper forehead to below the chin, cheek to cheek, as BP4D/DISFA crops
#: aligned on eye and mouth landmarks are (ME-GraphAU's 256 -> 224 crops).
ALIGNED_CROP = (0.74, 0.10)


def crop_to_face(u, v):
    """Crop coordinates (image spanning [-1, 1]) -> face-frame coordinates (arrays or tensors)."""
    h, c = ALIGNED_CROP
    return u * h, v * h + c


def box_mask(box: tuple[float, float, float, float], size: int, margin_px: float = 0) -> np.ndarray:
    """Pixels ``(size, size)`` whose centres fall inside a canonical box ``(u0, u1, v0, v1)``,
    grown by ``margin_px`` pixels on every side: True = inside."""
    u0, u1, v0, v1 = box
    c, m = pixel_centres(size), margin_px * 2 / size
    return ((c[None, :] >= u0 - m) & (c[None, :] <= u1 + m)) & ((c[:, None] >= v0 - m) & (c[:, None] <= v1 + m))
