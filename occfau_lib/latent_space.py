"""What the MAE's latent holds and shows, measured on a frozen encoder (notebooks 01-04): hiding
conditions and their cached latents, reconstruction error by face region, how an occluder moves
the tokens of the patches it leaves visible, and the geometry of feature spaces.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from transformers import ViTMAEForPreTraining

from . import mae
from .cache import array_fingerprint, config_hash, data_root, load_npz, load_or_build, save_npz
from .config import INFERENCE_BATCH
from .mae import encode
from .occlusion import region_mask
from .patches import patch_pixels, patch_visibility, random_patches, to_tensor
from .student import Student
from .student import predict as student_predict
from .teacher import predict as teacher_predict


def hiding_conditions(n: int, img_size: int, patch_size: int, ratios: Sequence[float] = (0.25, 0.5, 0.75),
                      regions: Sequence[str] = (), seed: int = 0, clean: bool = True) -> dict[str, np.ndarray]:
    """Patch-visibility masks (n, L), True = visible: ``"clean"``, ``"25% random"`` ... (seed
    ``seed + i`` for the i-th ratio) and one per face region (the patches its box covers by more
    than half)."""
    num_patches = (img_size // patch_size) ** 2
    out = {"clean": np.ones((n, num_patches), bool)} if clean else {}
    for i, r in enumerate(ratios):
        out[f"{round(100 * r)}% random"] = random_patches(n, num_patches, r, seed=seed + i)
    for region in regions:
        visible = patch_visibility(region_mask(region, img_size), patch_size)  # (L,)
        out[region] = np.repeat(visible[None], n, axis=0)
    return out


def cached_visible_features(model, model_key: dict, images: np.ndarray, data_key: dict,
                            visible: np.ndarray | None = None, keep_patch: bool = False,
                            progress: bool = False) -> dict[str, np.ndarray]:
    """:func:`mae.extract_features` of ``images`` from their ``visible`` patches, cached (keyed by the
    model, the data and the mask's content): ``cls`` and ``mean`` (n_layers + 1, N, D) and, with
    ``keep_patch``, the last layer's ``patch`` tokens (N, L, D) in float16."""
    key = {"model": model_key, "data": data_key, "n": int(len(images)), "keep_patch": bool(keep_patch),
           "visible": "all" if visible is None else array_fingerprint(np.asarray(visible, bool))}
    path = data_root() / "cache" / f"visible-{config_hash(key)}.npz"

    def build():
        feats = mae.extract_features(model, images, visible, progress=progress)
        out = {"cls": feats["cls"], "mean": feats["mean"]}
        if keep_patch:
            out["patch"] = feats["patch"].astype(np.float16)
        return out

    return load_or_build(path, key, build, save_npz, load_npz)


def encode_conditions(model, model_key: dict, images: np.ndarray, data_key: dict,
                      conditions: dict[str, np.ndarray], rows: np.ndarray | None = None,
                      keep_patch: bool = False, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """``{name: features}`` of ``images[rows]`` under each condition ``{name: visible (M, L)}``, cached."""
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, np.int64)
    subset, key = images[rows], {**data_key, "rows": array_fingerprint(rows)}
    return {name: cached_visible_features(model, model_key, subset, key, visible, keep_patch, progress)
            for name, visible in conditions.items()}


@torch.no_grad()
def region_errors(model: ViTMAEForPreTraining, images: np.ndarray, ratios, region_masks: dict[str, np.ndarray],
                  seed: int = 0) -> np.ndarray:
    """(n_ratios, n_regions) mean squared reconstruction error of the hidden pixels in each region."""
    L = model.vit.embeddings.patch_embeddings.num_patches
    x = to_tensor(images)
    out = np.zeros((len(ratios), len(region_masks)))
    for r, ratio in enumerate(ratios):
        vis = random_patches(len(images), L, ratio, seed)
        rec = mae.reconstruct_images(model, images, vis, paste=False)
        err = ((to_tensor(rec) - x) ** 2).mean(1).numpy()  # (N, S, S)
        hidden = patch_pixels(vis, model.config.patch_size)  # (N, S, S)
        for g, mask in enumerate(region_masks.values()):
            sel = hidden & mask[None]
            out[r, g] = err[sel].mean() if sel.any() else np.nan
    return out


@torch.no_grad()
def token_drift(model: ViTMAEForPreTraining, clean: np.ndarray, occluded: np.ndarray,
                visible: np.ndarray, batch_size: int = INFERENCE_BATCH) -> dict[str, np.ndarray]:
    """How much an occluder moves the tokens of the patches it does not cover: per face (N,), the
    mean cosine similarity of the visible tokens to the clean face's, with the hidden patches
    ``"dropped"`` before the encoder (the method) or ``"fed"`` in with the occluder's pixels."""
    L = model.vit.embeddings.patch_embeddings.num_patches
    out = {"dropped": [], "fed": []}
    for i in range(0, len(clean), batch_size):
        vis = torch.as_tensor(np.asarray(visible[i: i + batch_size], bool))
        ref = encode(model, to_tensor(clean[i: i + batch_size])).on_grid(L)  # (B, L, D)
        occ = to_tensor(occluded[i: i + batch_size])
        for name, v in (("dropped", vis), ("fed", None)):
            tokens = encode(model, occ, v).on_grid(L)  # (B, L, D)
            cos = torch.nn.functional.cosine_similarity(tokens, ref, dim=-1)  # (B, L)
            out[name].append(((cos * vis).sum(1) / vis.sum(1).clamp(min=1)).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def feature_views(student: Student, teacher, images: np.ndarray, occluded) -> dict[str, np.ndarray]:
    """Notebook 04's three spaces for ``images`` clean (rows 0..M-1) and ``occluded`` (M..2M-1):
    ``"MAE latent"`` (2M, D) at the student's block, ``"student node"`` and ``"teacher node"`` (2M, N, C)."""
    every = np.ones_like(occluded.visible)
    both = np.concatenate([images, occluded.images])
    visible = np.concatenate([every, occluded.visible])
    latent = mae.extract_features(student.mae, both, visible, depth=student.depth)["mean"][-1]  # (2M, D)
    return {"MAE latent": latent, "student node": student_predict(student, both, visible)["node"],
            "teacher node": teacher_predict(teacher, both)["node"]}


def umap_embedding(features: np.ndarray, key: dict, n_neighbors: int = 15, min_dist: float = 0.1,
                   random_state: int = 0, max_points: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D UMAP of ``features`` (N, D): ``(idx (M,), emb (M, 2))``, the rows embedded (at most
    ``max_points``, drawn with ``random_state``) and their positions. Deterministic (a fixed
    ``random_state``) and cached by ``key``, the parameters and the features' content."""
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or len(features) < 3:
        raise ValueError(f"umap_embedding needs features (N >= 3, D); got shape {features.shape}")
    n = len(features)
    if n > max_points:
        idx = np.sort(np.random.default_rng(random_state).choice(n, max_points, replace=False))
    else:
        idx = np.arange(n)
    x = features[idx]
    n_neighbors = int(min(n_neighbors, len(idx) - 1))
    params = {"n_neighbors": n_neighbors, "min_dist": float(min_dist), "random_state": int(random_state),
              "max_points": int(max_points)}
    config = {"key": key, "params": params, "features": array_fingerprint(x), "n": n}
    path = data_root() / "cache" / f"umap-{config_hash(config)}.npz"

    def build():
        import umap  # imported here: loading umap (numba) takes seconds

        with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": intended
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state)
            emb = reducer.fit_transform(x).astype(np.float32)
        return {"idx": idx, "emb": emb}

    out = load_or_build(path, config, build, save_npz, load_npz)
    return out["idx"], out["emb"]


def neighbour_agreement(features: np.ndarray, values: np.ndarray, k: int = 10,
                        exclude: np.ndarray | None = None) -> tuple[float, float]:
    """How strongly a label organises a feature space: ``(agreement, chance)``, the share of each
    row's ``k`` nearest neighbours (in the full space) with its value, and what random neighbours
    give. Rows valued -1 are ignored; neighbours in the row's own ``exclude`` group (e.g. its
    video) are skipped, so near-duplicate frames cannot make the agreement."""
    features, values = np.asarray(features, np.float32), np.asarray(values)
    groups = np.arange(len(values)) if exclude is None else np.asarray(exclude)
    keep = ~(values.astype(str) == "-1")
    features, values, groups = features[keep], values[keep], groups[keep]
    _, group_idx, group_size = np.unique(groups, return_inverse=True, return_counts=True)
    n_allowed = len(values) - group_size[group_idx]  # (M,) rows outside each row's group
    k = int(min(k, n_allowed.min()))
    if k < 1:
        raise ValueError("neighbour_agreement needs at least 2 rows (groups) with a known value")
    n_query = min(len(values), k + int(group_size.max()))  # enough to skip a whole own group
    _, nn_idx = NearestNeighbors(n_neighbors=n_query).fit(features).kneighbors(features)
    allowed = group_idx[nn_idx] != group_idx[:, None]  # (M, n_query), the row itself included
    first_k = np.cumsum(allowed, axis=1) <= k
    chosen = allowed & first_k  # exactly k allowed neighbours per row, nearest first
    agreement = float((values[nn_idx] == values[:, None])[chosen].sum() / chosen.sum())
    # chance: a random row outside the own group shares the value
    _, value_idx = np.unique(values, return_inverse=True)
    same_value = np.bincount(value_idx)[value_idx]  # (M,) rows with the row's value
    pairs = np.unique(np.c_[group_idx, value_idx], axis=0, return_inverse=True)[1].ravel()
    same_value_same_group = np.bincount(pairs)[pairs]  # (M,) of those, in the row's own group
    chance = float(((same_value - same_value_same_group) / n_allowed).mean())
    return agreement, chance
