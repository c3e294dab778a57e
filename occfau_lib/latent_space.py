"""What the MAE's latent holds and shows: hiding conditions, reconstructions, tokens, feature spaces.

The measurements notebooks 01-04 make on a frozen encoder, beside the method itself:

- :func:`hiding_conditions`, :func:`encode_conditions` (:func:`cached_visible_features`): fixed
  random and face-region hiding patterns and the (cached) latents of the faces encoded from their
  visible patches only (notebook 02, "AU information under hiding");
- :func:`region_errors`: where on the face hidden pixels are hard to reconstruct (notebook 01);
- :func:`token_drift`: how much an occluder disturbs the tokens of the patches it leaves visible
  (notebook 03);
- the geometry of feature spaces (notebooks 02, 04): :func:`feature_views` (the MAE latent, the
  student's and the teacher's node features of the same faces), :func:`umap_embedding` (a cached
  2-D picture) and :func:`neighbour_agreement` (which label organises the space, measured in the
  full dimensions).
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


# --------------------------------------------------------------------------------------------
# Hiding patches: fixed conditions, encoded once (notebook 02)
# --------------------------------------------------------------------------------------------
def hiding_conditions(n: int, img_size: int, patch_size: int, ratios: Sequence[float] = (0.25, 0.5, 0.75),
                      regions: Sequence[str] = (), seed: int = 0, clean: bool = True) -> dict[str, np.ndarray]:
    """Patch-visibility masks (n, L), True = visible, for fixed test conditions:

    - ``"clean"`` (if ``clean``): every patch visible, the reference;
    - ``"25% random"`` ...: ``round(ratio * L)`` patches hidden uniformly at random per face
      (:func:`patches.random_patches`, seed ``seed + i`` for the i-th ratio: the same masks on
      every run);
    - one per face region (``"mouth"``, ``"upper_half"``, ...): the patches that the region's box
      covers by more than half (:func:`occlusion.region_mask` -> :func:`patches.patch_visibility`),
      the same for every face.
    """

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
    """:func:`mae.extract_features` of ``images`` encoded from their ``visible`` patches only,
    cached in ``data/cache/visible-<hash>.npz``: ``cls`` and ``mean`` (each (n_layers + 1, N, D),
    every layer) and, with ``keep_patch``, the last layer's ``patch`` tokens (N, L, D) stored as
    float16 (half the disk and memory; ample precision for a probe).

    The key holds ``model_key``, ``data_key`` (which images: include any row selection), the
    number of images and a content hash of the ``visible`` mask, so a different hiding pattern can
    never be served from the cache.
    """
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
    """Encode ``images[rows]`` once per hiding condition (``{name: visible (M, L)}``, e.g. from
    :func:`hiding_conditions`): ``{name: features}`` as in :func:`cached_visible_features`, cached."""
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, np.int64)
    subset, key = images[rows], {**data_key, "rows": array_fingerprint(rows)}
    return {name: cached_visible_features(model, model_key, subset, key, visible, keep_patch, progress)
            for name, visible in conditions.items()}


# --------------------------------------------------------------------------------------------
# What reconstructions and tokens show (notebooks 01, 03)
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def region_errors(model: ViTMAEForPreTraining, images: np.ndarray, ratios, region_masks: dict[str, np.ndarray],
                  seed: int = 0) -> np.ndarray:
    """Mean squared reconstruction error (pixels in [0, 1]) of *hidden* pixels inside each face
    region, for random masking at each ratio: (n_ratios, n_regions). Where is the face hard to
    invent, and how fast does that grow with the mask ratio?"""

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
    """How much an occluder disturbs the latent of the patches it does **not** cover.

    For uint8 faces ``clean`` and ``occluded`` (N, S, S, 3) and the occluder's patch
    visibility (N, L), the cosine similarity of each face's *visible* patch tokens to the same
    tokens of the clean face encoded whole, averaged over those patches, two ways (N,) each:

    - ``"dropped"``: the hidden patches are dropped before the encoder (the method's way);
    - ``"fed"``: the occluded image goes in whole, occluder pixels included (a plain encoder).
    Attention mixes every token with every other, so feeding the occluder in changes the tokens
    of visible patches too; dropping removes the occluder's influence but also the context the
    hidden patches gave. Notebook 03.
    """
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


# --------------------------------------------------------------------------------------------
# The geometry of feature spaces (notebooks 02, 04)
# --------------------------------------------------------------------------------------------
def feature_views(student: Student, teacher, images: np.ndarray, occluded) -> dict[str, np.ndarray]:
    """The three spaces of notebook 04's UMAP views, for ``images`` (M, S, S, 3) clean and as
    ``occluded`` (an :class:`occlusion.Occluded` of the same faces): rows 0..M-1 clean, M..2M-1
    occluded. ``"MAE latent"``: (2M, D) mean of the visible tokens after the student's block;
    ``"student node"`` and ``"teacher node"``: (2M, N, C) (the teacher reads the occluder's pixels,
    the student drops the hidden patches)."""
    every = np.ones_like(occluded.visible)
    both = np.concatenate([images, occluded.images])
    visible = np.concatenate([every, occluded.visible])
    latent = mae.extract_features(student.mae, both, visible, depth=student.depth)["mean"][-1]  # (2M, D)
    return {"MAE latent": latent, "student node": student_predict(student, both, visible)["node"],
            "teacher node": teacher_predict(teacher, both)["node"]}


def umap_embedding(features: np.ndarray, key: dict, n_neighbors: int = 15, min_dist: float = 0.1,
                   random_state: int = 0, max_points: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D UMAP (McInnes et al., 2018) of ``features`` (N, D): ``(idx (M,), emb (M, 2))`` where
    ``idx`` are the rows embedded (all of them, or ``max_points`` drawn without replacement with
    ``random_state``, sorted) and ``emb[i]`` is the position of row ``idx[i]``.

    UMAP is run with a fixed ``random_state`` (which also makes it single-threaded and so
    deterministic) and ``n_neighbors`` capped below the number of points. The result is cached
    in ``data/cache/umap-<hash>.npz``, keyed by ``key`` (what the features are), the parameters
    and a content hash of the embedded features: the first call compiles UMAP's numba code and
    takes tens of seconds, a re-run is instant.
    """
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
    """How strongly a label organises a feature space: ``(agreement, chance)``.

    ``agreement`` is the fraction of each row's ``k`` nearest neighbours (Euclidean, in the
    original D dimensions, not in a 2-D picture) that share its value of ``values`` (subject id,
    AU presence, ...), averaged over rows. Rows whose value is -1 (an unknown label) are ignored.
    ``exclude`` (M,) optional group ids (e.g. the recording sequence): neighbours from the row's
    own group are skipped, so near-duplicate frames of one sequence cannot make the agreement.
    ``chance`` is what randomly drawn (allowed) neighbours would give.
    """
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
