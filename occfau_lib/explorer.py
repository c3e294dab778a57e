"""The latent explorer's data: the same test faces in several feature spaces, ready to browse.

Faces under occlusion conditions (:func:`faces_under`), their features in a few spaces
(:func:`mae_space` ...), then :func:`explore`: each space projected to 2-D, every face's nearest
neighbours found in the full space (a 2-D picture distorts distances), the colourings. The result
draws itself as the page of :func:`occfau_lib.viz.latent_explorer.page`; :func:`export_projector`
writes the spaces for the TensorBoard Embedding Projector.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import occlusion
from .aus import ALL_AUS, au_labels

PROJECTIONS = ("umap", "pca", "tsne")


@dataclass
class Faces:
    """Rows to explore: each is one test face under one condition."""

    clean: np.ndarray  # (M, S, S, 3) uint8, the face itself
    seen: np.ndarray  # (M, S, S, 3) uint8, as a detector sees it (occluder painted in)
    visible: np.ndarray  # (M, L) bool, the patches an MAE encodes
    condition: np.ndarray  # (M,) str, the condition's label
    face: np.ndarray  # (M,) int, index of the face in the images given to faces_under

    def __len__(self) -> int:
        return len(self.clean)


def pick_rows(n: int, count: int) -> np.ndarray:
    """``count`` indices spread evenly over ``range(n)`` (all of them when ``count >= n``)."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(int))


def faces_under(images: np.ndarray, conditions: dict[str, str], patch_size: int,
                seed: int = occlusion.TEST_SEED) -> Faces:
    """``images`` (N, S, S, 3) under every condition ``{label: occlusion spec}``: N rows each, in order."""
    parts = [occlusion.apply(images, spec, patch_size, seed=seed) for spec in conditions.values()]
    n = len(images)
    return Faces(clean=np.concatenate([images] * len(parts)), seen=np.concatenate([p.images for p in parts]),
                 visible=np.concatenate([p.visible for p in parts]),
                 condition=np.repeat(np.array(list(conditions), dtype=str), n), face=np.tile(np.arange(n), len(parts)))


def mae_space(model, faces: Faces, block: int | None = None) -> np.ndarray:
    """(M, D) mean of the visible patch tokens after ``block`` (None: the last); hidden ones are not encoded."""
    from .mae import extract_features

    return extract_features(model, faces.seen, faces.visible, depth=block)["mean"][-1]


def student_space(student, faces: Faces) -> tuple[np.ndarray, np.ndarray]:
    """The student's node features (M, N*C) on the visible patches, and its AU probabilities (M, N)."""
    from .student import predict

    out = predict(student, faces.seen, faces.visible)
    return out["node"].reshape(len(faces), -1), out["probs"]


def teacher_space(teacher, faces: Faces) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's node features (M, N*C) on what it sees, occluder included, and its AU probabilities."""
    from .teacher import predict

    out = predict(teacher, faces.seen)
    return out["node"].reshape(len(faces), -1), out["probs"]


def pixel_space(faces: Faces) -> np.ndarray:
    """(M, S*S*3) the pixels as seen, in [0, 1]."""
    return faces.seen.reshape(len(faces), -1).astype(np.float32) / 255


def project(features: np.ndarray, method: str = "umap", seed: int = 0, key: dict | None = None) -> np.ndarray:
    """(M, 2) picture of ``features`` (M, D) by ``"umap"`` (cached), ``"pca"`` or ``"tsne"``; UMAP and
    t-SNE read the 50 main axes of features wider than 64."""
    x = np.asarray(features, np.float32)
    if method in ("umap", "tsne") and x.shape[1] > 64 and len(x) > 64:
        from sklearn.decomposition import PCA  # the usual first step: 50 main axes, seconds instead of minutes

        x = PCA(50, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "umap":
        from .latent_space import umap_embedding

        return umap_embedding(x, key or {"explorer": "features"}, random_state=seed, max_points=len(x))[1]
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(
            x).astype(np.float32)
    raise ValueError(f"unknown projection {method!r}; choose one of {PROJECTIONS}")


def nearest(features: np.ndarray, k: int = 8) -> np.ndarray:
    """(M, k) each row's ``k`` nearest other rows, Euclidean in the full D dimensions, nearest first."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(features, np.float32)
    k = min(k, len(x) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    out = np.empty((len(x), k), np.int64)
    for i, row in enumerate(idx):  # drop the row itself (a duplicate may come first)
        out[i] = row[row != i][:k]
    return out


def colourings(faces: Faces, labels: np.ndarray, aus, subjects=None, prototypes=None, intensities=None,
               probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{name: (M,) values}`` to colour the points by: per AU its presence, intensity (``intensities``
    (N, 15) in ALL_AUS order) and whether ``probs`` (M, n_au) got it right; then subject,
    expression and occlusion. Per-face arrays are indexed by ``faces.face``."""
    aus, face = tuple(aus), faces.face
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(au_labels(aus)):
        y = np.asarray(labels)[face, j]
        out[f"{name} present"] = np.where(y == 1, "present", np.where(y == 0, "absent", "unknown"))
        if probs is not None:
            hit = probs[:, j] >= 0.5
            out[f"{name} prediction"] = np.select(
                [y < 0, hit & (y == 1), ~hit & (y == 0), ~hit & (y == 1)],
                ["unknown", "correct: present", "correct: absent", "wrong: missed"], "wrong: false alarm")
        if intensities is not None:
            out[f"{name} intensity"] = np.asarray(intensities, np.float32)[face, ALL_AUS.index(aus[j])]
    if probs is not None:
        known = np.asarray(labels)[face] >= 0
        wrong = ((probs >= 0.5) != (np.asarray(labels)[face] == 1)) & known
        out["AUs wrong (count)"] = wrong.sum(1).astype(np.float32)
    for name, values in (("subject", subjects), ("expression", prototypes)):
        if values is not None:
            out[name] = np.asarray(values).astype(str)[face]
    out["occlusion"] = faces.condition.astype(str)
    return out


def au_summary(labels: np.ndarray, aus, probs: np.ndarray | None = None) -> tuple[list[str], list[str]]:
    """Per row, the AUs labelled and (with ``probs``) predicted present, as the hover panel prints them."""
    names = au_labels(tuple(aus))
    truth = [" ".join(n for n, y in zip(names, row) if y == 1) or "none" for row in labels]
    if probs is None:
        return truth, [""] * len(truth)
    pred = [" ".join(f"{n} {p:.2f}" for n, p in zip(names, row) if p >= 0.5) or "none" for row in probs]
    return truth, pred


@dataclass(repr=False)
class Exploration:
    """What the explorer page shows (:func:`explore` makes it; ``page()`` draws it)."""

    faces: Faces
    coords: dict[str, np.ndarray]  # space -> (M, 2)
    neighbours: dict[str, np.ndarray]  # space -> (M, k), nearest in the full space
    dims: dict[str, int]  # space -> its number of dimensions
    colourings: dict[str, np.ndarray]
    truth: list[str]
    predicted: list[str]
    labels: np.ndarray  # (M, n_au) per row
    aus: tuple
    projection: str
    title: str = ""
    default_colour: str = ""

    def page(self) -> str:
        """The explorer as one self-contained HTML document (every script and image inline)."""
        from .viz.latent_explorer import page

        return page(self)

    def __repr__(self) -> str:
        return (f"Exploration({len(self.faces)} rows, spaces {list(self.coords)}, {self.projection}, "
                f"{len(self.colourings)} colourings)")

    def _repr_html_(self) -> str:  # a notebook cell ending with the exploration shows it
        from .viz.latent_explorer import iframe

        return iframe(self.page())


def explore(spaces: dict[str, np.ndarray], faces: Faces, labels: np.ndarray, aus, projection: str = "umap",
            probs: np.ndarray | None = None, k: int = 8, colour_by: str = "", title: str = "",
            **per_face) -> Exploration:
    """Project each space ``{name: (M, D)}`` of ``faces`` and find its neighbours. ``labels`` (N, n_au)
    per face, ``probs`` (M, n_au) predictions, ``per_face`` more arrays for :func:`colourings`,
    ``colour_by`` the colouring shown first."""
    if not spaces:
        raise ValueError("explore: give at least one feature space")
    for name, x in spaces.items():
        if len(x) != len(faces):
            raise ValueError(f"explore: space {name!r} has {len(x)} rows for {len(faces)} faces")
    rows = np.asarray(labels)[faces.face]
    colours = colourings(faces, labels, aus, probs=probs, **per_face)
    truth, predicted = au_summary(rows, aus, probs)
    return Exploration(
        faces=faces, coords={n: project(x, projection, key={"explorer": n}) for n, x in spaces.items()},
        neighbours={n: nearest(x, k) for n, x in spaces.items()},
        dims={n: int(np.prod(np.shape(x)[1:])) for n, x in spaces.items()}, colourings=colours,
        truth=truth, predicted=predicted, labels=rows, aus=tuple(aus), projection=projection, title=title,
        default_colour=colour_by or next(iter(colours)))


def sprite(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """uint8 images (M, S, S, 3) tiled row by row on a square-ish grid (white where none is left)."""
    images = np.asarray(images, np.uint8)
    m, s = len(images), images.shape[1]
    cols = cols or int(np.ceil(np.sqrt(m)))
    rows = int(np.ceil(m / cols))
    grid = np.full((rows * cols, s, s, 3), 255, np.uint8)
    grid[:m] = images
    return grid.reshape(rows, cols, s, s, 3).transpose(0, 2, 1, 3, 4).reshape(rows * s, cols * s, 3)


def export_projector(folder, features: np.ndarray, metadata: dict[str, np.ndarray], images: np.ndarray | None = None,
                     name: str = "occfau") -> Path:
    """``features`` (M, D) for the TensorBoard Embedding Projector: ``vectors.tsv``, ``metadata.tsv``,
    with ``images`` a ``sprite.png`` (at most 8192 px), and ``projector_config.pbtxt``. Returns the folder."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.asarray(features, np.float32).reshape(len(features), -1)
    np.savetxt(folder / "vectors.tsv", x, delimiter="\t", fmt="%.5g")
    columns = {k: np.asarray(v).astype(str) for k, v in metadata.items()}
    for key, values in columns.items():
        if len(values) != len(x):
            raise ValueError(f"export_projector: metadata {key!r} has {len(values)} rows for {len(x)} vectors")
    clean = {k: [v.replace("\t", " ").replace("\n", " ") for v in vs] for k, vs in columns.items()}
    lines = ["\t".join(clean)] + ["\t".join(vs[i] for vs in clean.values()) for i in range(len(x))]
    (folder / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = [f'embeddings {{\n  tensor_name: "{name}"\n  tensor_path: "vectors.tsv"\n  metadata_path: "metadata.tsv"']
    if images is not None:
        images = np.asarray(images, np.uint8)
        side = images.shape[1]
        cols = int(np.ceil(np.sqrt(len(images))))
        if cols * side > 8192:  # the projector's limit: shrink the thumbnails
            side = 8192 // cols
            images = np.stack([np.asarray(Image.fromarray(im).resize((side, side))) for im in images])
        Image.fromarray(sprite(images, cols)).save(folder / "sprite.png")
        config.append(f'  sprite {{\n    image_path: "sprite.png"\n    single_image_dim: {side}\n'
                      f"    single_image_dim: {side}\n  }}")
    (folder / "projector_config.pbtxt").write_text("\n".join(config) + "\n}\n", encoding="utf-8")
    return folder
