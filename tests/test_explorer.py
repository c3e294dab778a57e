"""The latent explorer: its data (occfau_lib.explorer), its page (viz.latent_explorer), the projector export."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from occfau_lib import explorer
from occfau_lib.viz import latent_explorer

AUS = (1, 6, 12)


@pytest.fixture(scope="module")
def tiny():
    """12 faces (8 px, 2 px patches) clean and with the lower half hidden: 24 rows."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    faces = explorer.faces_under(images, {"clean": "clean", "lower half": "lower_half"}, patch_size=2)
    labels = rng.integers(-1, 2, (12, len(AUS)))
    probs = rng.random((24, len(AUS)))
    return faces, labels, probs


def test_faces_under_stacks_conditions(tiny):
    faces, _, _ = tiny
    assert len(faces) == 24 and faces.seen.shape == (24, 8, 8, 3) and faces.visible.shape == (24, 16)
    assert list(faces.condition[:12]) == ["clean"] * 12 and list(faces.face[12:]) == list(range(12))
    np.testing.assert_array_equal(faces.seen[:12], faces.clean[:12])
    assert faces.visible[:12].all() and not faces.visible[12:, -4:].any()  # the bottom row of patches hidden
    assert (faces.seen[12:, 4:] != faces.clean[12:, 4:]).any()


def test_nearest_is_in_the_full_space_and_skips_itself():
    x = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 3], [10, 0, 0]], np.float32)
    nn = explorer.nearest(x, k=2)
    assert nn.tolist() == [[1, 2], [0, 2], [1, 0], [0, 1]]
    assert explorer.nearest(x, k=9).shape == (4, 3)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projections_give_one_point_per_row(method):
    x = np.random.default_rng(1).normal(size=(30, 5))
    xy = explorer.project(x, method)
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    with pytest.raises(ValueError, match="unknown projection"):
        explorer.project(x, "mds")


def test_colourings_per_row(tiny):
    faces, labels, probs = tiny
    intensities = np.zeros((12, 15))
    c = explorer.colourings(faces, labels, AUS, subjects=np.arange(12) % 3, prototypes=["smile"] * 12,
                            intensities=intensities, probs=probs)
    assert {"AU6 present", "AU6 prediction", "AU6 intensity", "subject", "expression", "occlusion"} <= set(c)
    assert all(len(v) == 24 for v in c.values())
    y = labels[faces.face, 1]
    assert (c["AU6 present"] == np.where(y == 1, "present", np.where(y == 0, "absent", "unknown"))).all()
    hit = probs[:, 1] >= 0.5
    assert (c["AU6 prediction"][(y == 1) & ~hit] == "wrong: missed").all()
    assert (c["AU6 prediction"][y == -1] == "unknown").all()
    assert c["AU6 intensity"].dtype.kind == "f" and set(c["occlusion"]) == {"clean", "lower half"}


def test_separating_colours_keep_neighbours_apart():
    palette = ("a", "b")
    values = np.array(["s0", "s1", "s2", "s3"])
    xy = np.array([[0, 0], [0.1, 0], [10, 0], [10.1, 0]])  # two pairs of neighbouring groups
    given = latent_explorer.separating_colours(values, xy, palette)
    assert given["s0"] != given["s1"] and given["s2"] != given["s3"]


def test_page_is_self_contained(tiny):
    faces, labels, probs = tiny
    spaces = {"pixels": explorer.pixel_space(faces), "noise": np.random.default_rng(2).normal(size=(24, 4))}
    ex = explorer.explore(spaces, faces, labels, AUS, projection="pca", probs=probs, k=3,
                          subjects=np.arange(12) % 3, title="tiny")
    assert ex.neighbours["pixels"].shape == (24, 3) and ex.dims == {"pixels": 192, "noise": 4}
    doc = ex.page()
    assert not re.findall(r'<(?:script|link)[^>]+(?:src|href)="https?:', doc)  # BokehJS inline, no CDN
    assert "data:image/jpeg;base64," in doc and "explorer-neighbours" in doc
    assert ex._repr_html_().startswith('<iframe class="occfau-explorer" srcdoc="')
    assert repr(ex) == "Exploration(24 rows, spaces ['pixels', 'noise'], pca, 9 colourings)"
    with pytest.raises(ValueError, match="rows"):
        explorer.explore({"short": np.zeros((3, 2))}, faces, labels, AUS, projection="pca")


def test_export_projector(tmp_path, tiny):
    faces, _, _ = tiny
    x = np.arange(24 * 3, dtype=np.float32).reshape(24, 3)
    folder = explorer.export_projector(tmp_path / "proj", x, {"subject": faces.face % 3, "occlusion": faces.condition},
                                       faces.seen)
    vectors = np.loadtxt(folder / "vectors.tsv", delimiter="\t")
    np.testing.assert_allclose(vectors, x)
    lines = (folder / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "subject\tocclusion" and lines[13] == "0\tlower half" and len(lines) == 25
    sprite = Image.open(folder / "sprite.png")
    assert sprite.size == (5 * 8, 5 * 8)  # 24 thumbnails on a 5 x 5 grid
    config = (folder / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "vectors.tsv"' in config and "single_image_dim: 8" in config
    with pytest.raises(ValueError, match="metadata"):
        explorer.export_projector(tmp_path / "bad", x, {"subject": [1, 2]})
