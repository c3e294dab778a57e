"""Tests for occfau_lib.probe (linear probes, the fold protocol, hiding, UMAP) and its viz figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from occfau_lib import cache, latent_space, mae, probe, viz  # noqa: E402
from occfau_lib.config import MAEConfig  # noqa: E402
from occfau_lib.data import ArrayDataset  # noqa: E402
from occfau_lib.metrics import f1_per_au  # noqa: E402

AUS = (1, 2, 12)


def separable(n: int = 600, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (<= n, d) on mixed scales and labels (<= n, 3): each AU is a different half-space
    (positive rates about 50%, 20% and 10%), with a margin around every boundary."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(2 * n, d))
    w = rng.normal(size=(d, 3)) / np.sqrt(d)
    scores = z @ w - np.quantile(z @ w, [0.5, 0.8, 0.9], axis=0).diagonal()  # (2n, 3)
    keep = np.flatnonzero((np.abs(scores) > 0.15).all(1))[:n]
    x = z[keep] * rng.uniform(0.1, 20, d)  # features on very different scales: batch norm's job
    return x.astype(np.float32), (scores[keep] > 0).astype(np.int8)


def toy_dataset(n_subjects: int = 6, per_subject: int = 20, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    labels = rng.integers(0, 2, (n, len(AUS))).astype(np.int8)
    subjects = [f"s{i // per_subject}" for i in range(n)]
    images = np.zeros((n, 4, 4, 3), np.uint8)
    return ArrayDataset(images, labels, subjects, AUS, "toy")


# ----- the probe -----


def test_linear_probe_is_batchnorm_without_affine_then_linear():
    p = probe.LinearProbe(7, 3)
    assert isinstance(p.norm, torch.nn.BatchNorm1d) and not p.norm.affine
    assert p.norm.weight is None and p.norm.bias is None
    assert [name for name, _ in p.named_parameters()] == ["linear.weight", "linear.bias"]
    assert p(torch.randn(5, 7)).shape == (5, 3)


def test_probe_learns_a_linearly_separable_problem():
    x, y = separable()
    model = probe.fit_probe(x, y, epochs=100, batch_size=64, lr=1e-2, balance=False)
    probs = probe.probe_probs(model, x)
    assert probs.shape == y.shape and probs.min() >= 0 and probs.max() <= 1
    assert f1_per_au(y, probs).min() > 0.95


def test_probe_masks_unknown_labels():
    """Most frames showing the AU are unlabelled (-1): masked, the few labelled ones teach the rule;
    read as "absent", they teach the probe that the AU is almost never there."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    x = x[np.abs(x[:, 0]) > 0.3]  # a margin around the boundary x0 = 0
    truth = (x[:, :1] > 0).astype(np.int8)  # (N, 1)
    labels = truth.copy()
    labels[(truth[:, 0] == 1) & (rng.random(len(x)) < 0.95)] = -1
    masked = probe.fit_probe(x, labels, epochs=40, batch_size=100, lr=1e-2)
    as_absent = probe.fit_probe(x, np.maximum(labels, 0), epochs=40, batch_size=100, lr=1e-2)
    assert f1_per_au(truth, probe.probe_probs(masked, x))[0] > 0.7
    assert f1_per_au(truth, probe.probe_probs(as_absent, x))[0] < 0.2


def test_positive_weights_balance_classes_over_known_labels():
    labels = np.array([[1, 0, 0, -1], [0, 0, 1, 1], [0, 0, 1, 0], [0, -1, 1, 0], [-1, 0, 1, 0]])
    np.testing.assert_allclose(probe.positive_weights(labels, max_weight=10), [3.0, 1.0, 0.25, 3.0])
    np.testing.assert_allclose(probe.positive_weights(labels, max_weight=2), [2.0, 1.0, 0.5, 2.0])


def test_fit_probe_is_deterministic_and_leaves_the_global_rng_alone():
    x, y = separable(n=200)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = probe.fit_probe(x, y, epochs=3, batch_size=32, seed=4)
    assert torch.equal(torch.rand(3), expected_next)
    b = probe.fit_probe(x, y, epochs=3, batch_size=32, seed=4)
    c = probe.fit_probe(x, y, epochs=3, batch_size=32, seed=5)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.linear.weight, c.linear.weight)


def test_fit_probe_validates_shapes():
    with pytest.raises(ValueError, match="features must be"):
        probe.fit_probe(np.zeros((4, 2, 2)), np.zeros((4, 1)), epochs=1)
    with pytest.raises(ValueError, match="labels must be"):
        probe.fit_probe(np.zeros((4, 2)), np.zeros((3, 1)), epochs=1)


# ----- folds -----


def test_fold_rows_are_the_rows_of_ds_fold():
    ds = toy_dataset()
    for k in (1, 2, 3):
        train_idx, test_idx = ds.fold_rows(k)
        train, test = ds.fold(k)
        np.testing.assert_array_equal(ds.subjects[train_idx], train.subjects)
        np.testing.assert_array_equal(ds.labels[test_idx], test.labels)
        assert not set(ds.subjects[train_idx]) & set(ds.subjects[test_idx])


def test_frame_subset_keeps_every_nth_frame_the_folds_and_names_the_selection():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)  # 6 subjects x one 10-frame video, all different
    ds = ArrayDataset(images, rng.integers(0, 2, (60, len(AUS))).astype(np.int8), [f"s{i // 10}" for i in range(60)],
                      AUS, "toy", meta={"frame": np.tile(np.arange(10), 6)})
    key = {"world": 1}
    assert probe.frame_subset(ds, key, 1) == (ds, key)  # every frame: nothing changes, not even the key
    sub, sub_key = probe.frame_subset(ds, key, 2)
    assert len(sub) == 30 and (sub.meta["frame"] % 2 == 0).all()  # frames 0, 2, ..., 8 of every video
    np.testing.assert_array_equal(sub.labels, ds.labels[::2])
    np.testing.assert_array_equal(sub.images, ds.images[::2])
    assert sub_key != key and key == {"world": 1}  # cached features of the subset get their own key
    for k in (1, 2, 3):  # the same people on each side of every fold
        assert set(sub.subjects[sub.fold_rows(k)[1]]) == set(ds.subjects[ds.fold_rows(k)[1]])
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="stride must be a whole number >= 1"):
            probe.frame_subset(ds, key, bad)


def test_probe_folds_is_subject_exclusive(monkeypatch):
    ds = toy_dataset()
    features = np.c_[np.arange(len(ds)), np.random.default_rng(0).normal(size=(len(ds), 3))].astype(np.float32)
    seen = {"train": [], "test": []}
    fit, probs = probe.fit_probe, probe.probe_probs

    def spy_fit(x, y, epochs, **kw):
        seen["train"].append(set(ds.subjects[x[:, 0].astype(int)]))
        return fit(x, y, epochs, **kw)

    def spy_probs(model, x, *args, **kw):
        seen["test"].append(set(ds.subjects[x[:, 0].astype(int)]))
        return probs(model, x, *args, **kw)

    monkeypatch.setattr(probe, "fit_probe", spy_fit)
    monkeypatch.setattr(probe, "probe_probs", spy_probs)
    result = probe.probe_folds(features, ds, epochs=1)
    assert len(seen["train"]) == len(seen["test"]) == 3 == result["n_folds"]
    for train_subjects, test_subjects, part in zip(seen["train"], seen["test"], (2, 1, 0)):
        assert test_subjects == set(ds.parts[part])
        assert not train_subjects & test_subjects
        assert train_subjects | test_subjects == set(ds.subjects)
    assert set(result) >= {"avg_f1", "f1", "auc", "folds"} and set(result["f1"]) == set(AUS)


def test_probe_folds_scores_the_test_features():
    """Train on clean features, test on others: the score follows the test features."""
    ds = toy_dataset(per_subject=30)
    rng = np.random.default_rng(0)
    clean = (ds.labels * 2.0 - 1 + 0.3 * rng.normal(size=ds.labels.shape)).astype(np.float32)  # AU j <-> column j
    hidden = clean.copy()
    hidden[:, 2] = rng.normal(size=len(ds))  # the AU12 column is "occluded": pure noise
    kw = dict(epochs=100, batch_size=32, lr=1e-2)
    same = probe.probe_folds(clean, ds, **kw)
    probes = probe.fit_folds(clean, ds, **kw)
    assert sorted(probes) == [1, 2, 3]
    scored = {name: probe.score_folds(probes, ds, f) for name, f in {"clean": clean, "hidden": hidden}.items()}
    assert same["f1"] == scored["clean"]["f1"]
    assert min(same["f1"].values()) > 0.95
    assert scored["hidden"]["f1"][1] == scored["clean"]["f1"][1]  # AU1 untouched
    assert scored["hidden"]["f1"][12] < 0.8
    assert probe.probe_folds(clean, ds, **kw, test_features=hidden)["f1"] == scored["hidden"]["f1"]
    # test_rows: a condition encoded on a subsample is scored on those rows only
    rows = np.arange(0, len(ds), 3)
    sub = probe.score_folds(probes, ds, clean[rows], test_rows=rows)
    assert sum(r["n"] for r in sub["folds"]) == len(rows)
    with pytest.raises(ValueError, match="test_rows lists"):
        probe.score_folds(probes, ds, clean[rows])


def test_missing_entries_are_mean_imputed():
    """A missing entry is replaced by the probe's training mean: it adds nothing to any logit."""
    x, y = separable(n=200)
    model = probe.fit_probe(x, y, epochs=2)
    missing = np.zeros_like(x, dtype=bool)
    missing[:, :3] = True
    filled = x.copy()
    filled[:, :3] = model.norm.running_mean[:3].numpy()
    means = np.tile(model.norm.running_mean.numpy(), (len(x), 1))  # every input at its training mean
    all_missing = probe.probe_probs(model, np.full_like(x, 1e6), missing=np.ones_like(missing))
    np.testing.assert_allclose(all_missing, probe.probe_probs(model, means), atol=1e-6)
    np.testing.assert_allclose(all_missing, np.tile(torch.sigmoid(model.linear.bias).detach().numpy(), (len(x), 1)),
                               atol=1e-6)  # only the bias speaks
    np.testing.assert_allclose(probe.probe_probs(model, x, missing=missing), probe.probe_probs(model, filled),
                               atol=1e-6)


def test_missing_masks_follow_the_patch_grid():
    visible = np.ones((2, 4), bool)  # a 2x2 grid of 2 px patches on a 4 px image
    visible[0, 1] = False  # top-right patch of the first image
    tokens = probe.missing_tokens(visible, dim=3)
    assert tokens.shape == (2, 12) and tokens[0].tolist() == [False] * 3 + [True] * 3 + [False] * 6
    assert not tokens[1].any()
    pixels = probe.missing_pixels(visible, img_size=4, patch_size=2).reshape(2, 4, 4, 3)
    expected = np.zeros((4, 4), bool)
    expected[:2, 2:] = True
    assert (pixels[0] == expected[..., None]).all() and not pixels[1].any()


def test_chance_folds_is_always_present():
    ds = toy_dataset()
    chance = probe.chance_folds(ds)
    for k, fold in zip((1, 2, 3), chance["folds"]):
        _, test = ds.fold_rows(k)
        p = ds.labels[test].mean(0)
        np.testing.assert_allclose(list(fold["f1"].values()), 2 * p / (1 + p))


def test_layer_sweep_probes_every_layer_and_pooling():
    ds = toy_dataset()
    feats = {"cls": np.random.default_rng(0).normal(size=(3, len(ds), 4)), "mean": np.zeros((3, len(ds), 4))}
    out = probe.layer_sweep(feats, ds, epochs=1, poolings=("cls", "mean"))
    assert set(out) == {"cls", "mean"} and [len(v) for v in out.values()] == [3, 3]
    assert all("avg_f1" in r for r in out["cls"])


def test_fit_probes_equals_one_fit_probe_per_feature_set():
    """The layer sweep trains the K probes of one pooling side by side: each must be the probe
    fit_probe trains alone (same initialisation, batches and loss), up to float rounding."""
    rng = np.random.default_rng(3)
    y = (rng.random((150, 3)) < 0.3).astype(np.float32)
    y[rng.random(y.shape) < 0.1] = -1  # unknown labels are masked in both
    layers = rng.normal(size=(4, 150, 6)).astype(np.float32) + y[None, :, :1]  # (K, N, D)
    layers[2] *= 100  # a layer on another scale: its own batch-norm statistics
    stacked = probe.fit_probes(layers, y, epochs=4, batch_size=32, seed=2)
    assert len(stacked) == 4
    for x, together in zip(layers, stacked):
        alone = probe.fit_probe(x, y, epochs=4, batch_size=32, seed=2)
        for key, value in alone.state_dict().items():
            torch.testing.assert_close(together.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
        np.testing.assert_allclose(probe.probe_probs(together, x), probe.probe_probs(alone, x), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(K, N, D\)"):
        probe.fit_probes(layers[0], y, epochs=1)


def test_pixel_features_and_retained():
    images = np.full((2, 4, 4, 3), 255, np.uint8)
    px = probe.pixel_features(images)
    assert px.shape == (2, 48) and px.dtype == np.float32 and px.max() == 1.0
    ref = {"f1": {1: 0.8, 2: 0.0}}
    results = {"a": {"f1": {1: 0.4, 2: 0.3}}, "b": {"f1": {1: 0.8, 2: 0.0}}}
    np.testing.assert_allclose(probe.retained(results, (1, 2)), [[0.4, 0.3], [0.8, 0.0]])
    np.testing.assert_allclose(probe.retained(results, (1, 2), ref), [[0.5, np.nan], [1.0, np.nan]])


# ----- hiding -----


def test_hiding_conditions_random_and_regions():
    conds = latent_space.hiding_conditions(5, img_size=64, patch_size=8, ratios=(0.25, 0.75), regions=("mouth", "upper_half"))
    assert list(conds) == ["clean", "25% random", "75% random", "mouth", "upper_half"]
    assert conds["clean"].all()
    assert all(v.shape == (5, 64) and v.dtype == bool for v in conds.values())
    assert (conds["25% random"].sum(1) == 48).all() and (conds["75% random"].sum(1) == 16).all()
    assert (conds["upper_half"] == np.r_[np.zeros(32, bool), np.ones(32, bool)]).all()
    assert (conds["mouth"] == conds["mouth"][0]).all() and 0 < conds["mouth"][0].sum() < 64
    again = latent_space.hiding_conditions(5, 64, 8, ratios=(0.25, 0.75), clean=False)
    assert "clean" not in again
    np.testing.assert_array_equal(again["75% random"], conds["75% random"])


def test_encode_conditions_matches_extract_features_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = mae.build_mae(MAEConfig(16, 8, 16, 1, 2, 16, 1, 2)).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    rows = np.array([0, 2, 5])
    conds = latent_space.hiding_conditions(3, 16, 8, ratios=(0.5,), regions=("lower_half",), clean=False)
    out = latent_space.encode_conditions(model, {"m": 1}, images, {"d": 1}, conds, rows, keep_patch=True)
    for name, visible in conds.items():
        ref = mae.extract_features(model, images[rows], visible)
        assert set(out[name]) == {"cls", "mean", "patch"} and out[name]["patch"].dtype == np.float16
        np.testing.assert_allclose(out[name]["mean"], ref["mean"], atol=1e-6)
        np.testing.assert_allclose(out[name]["patch"], ref["patch"], atol=1e-2, rtol=1e-2)
    assert not np.allclose(out["50% random"]["mean"], out["lower_half"]["mean"])
    assert len(list((tmp_path / "cache").glob("visible-*.npz"))) == 2
    monkeypatch.setattr(mae, "extract_features", lambda *a, **k: pytest.fail("should load from the cache"))
    again = latent_space.encode_conditions(model, {"m": 1}, images, {"d": 1}, conds, rows, keep_patch=True)
    np.testing.assert_array_equal(again["lower_half"]["cls"], out["lower_half"]["cls"])
    with pytest.raises(BaseException, match="should load from the cache"):  # another mask: a new key
        latent_space.encode_conditions(model, {"m": 1}, images, {"d": 1}, {"x": ~conds["lower_half"]}, rows)


# ----- latent geometry -----


def test_neighbour_agreement_sees_clusters():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 25)
    clustered = rng.normal(size=(100, 3)) + 10 * groups[:, None]
    agreement, chance = latent_space.neighbour_agreement(clustered, groups, k=5)
    assert agreement == 1.0 and chance == pytest.approx(24 / 99)  # a random other row
    shuffled, _ = latent_space.neighbour_agreement(rng.normal(size=(100, 3)), groups, k=5)
    assert shuffled < 0.5
    labels = np.where(groups == 0, -1, groups % 2)  # -1 rows are ignored
    assert latent_space.neighbour_agreement(clustered, labels, k=5)[0] == 1.0


def test_neighbour_agreement_can_skip_the_own_group():
    """Tight pairs of near-duplicates (one "sequence" each) share a subject only within the pair:
    counting all neighbours finds the pair; skipping the own pair finds nothing above chance."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 4)) * 10
    features = np.repeat(centres, 2, axis=0) + 0.01 * rng.normal(size=(80, 4))
    sequence = np.repeat(np.arange(40), 2)
    subject = rng.integers(0, 4, 40).repeat(2)
    with_pairs, _ = latent_space.neighbour_agreement(features, subject, k=1)
    assert with_pairs == 1.0
    skipped, chance = latent_space.neighbour_agreement(features, subject, k=1, exclude=sequence)
    assert skipped < 0.6
    counts = np.bincount(subject)
    expected = np.mean([(counts[s] - 2) / 78 for s in subject])
    assert chance == pytest.approx(expected)


def test_umap_embedding_is_deterministic_subsampled_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    idx, emb = latent_space.umap_embedding(x, {"test": 1}, n_neighbors=100, max_points=40)
    assert idx.shape == (40,) and emb.shape == (40, 2) and np.isfinite(emb).all()
    assert (np.diff(idx) > 0).all() and idx.max() < 60
    files = list((tmp_path / "cache").glob("umap-*.npz"))
    assert len(files) == 1
    files[0].unlink()
    idx2, emb2 = latent_space.umap_embedding(x, {"test": 1}, n_neighbors=100, max_points=40)  # recomputed
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_allclose(emb, emb2)
    import umap

    monkeypatch.setattr(umap, "UMAP", lambda *a, **k: pytest.fail("should load from the cache"))
    idx3, emb3 = latent_space.umap_embedding(x, {"test": 1}, n_neighbors=100, max_points=40)
    np.testing.assert_array_equal(emb3, emb)


# ----- viz -----


@pytest.fixture
def no_pyplot_figures_left():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def test_probe_by_layer_lines_and_references(no_pyplot_figures_left):
    fig = viz.probe_by_layer({"trained · mean": [0.2, 0.4, 0.5], "random · mean": [0.2, 0.25, 0.3]},
                             references={"raw pixels": 0.41})
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [20, 40, 50])
    assert ax.lines[1].get_linestyle() == "--"  # random encoders are dashed
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [41, 41])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["trained · mean", "random · mean", "raw pixels"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["emb", "1", "2"]
    with pytest.raises(ValueError):
        viz.probe_by_layer({})


def test_per_au_bars_groups(no_pyplot_figures_left):
    rows = {"a": {1: 0.5, 2: 0.25, 12: np.nan}, "b": {"1": 1.0, "2": 0.0, "12": 0.75}}
    fig = viz.per_au_bars(rows, AUS)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [50, 25, 0, 100, 0, 75]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AU1", "AU2", "AU12"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_survival_heatmap_cells_and_annotations(no_pyplot_figures_left):
    matrix = np.array([[1.0, 0.5, np.nan], [0.2, 1.3, 0.0]])
    fig = viz.survival_heatmap(matrix, ["mouth", "eyes"], AUS)
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown.filled(np.nan), matrix)
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.50", "–", "0.20", "1.30", "0.00"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mouth", "eyes"]
    assert len(fig.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="expected"):
        viz.survival_heatmap(matrix, ["mouth"], AUS)


def test_umap_scatter_categorical_and_continuous(no_pyplot_figures_left):
    emb = np.random.default_rng(0).normal(size=(30, 2))
    subjects = np.array(["s1", "s2", "s3"] * 10)
    fig = viz.umap_scatter(emb, subjects, "subjects")
    ax = fig.axes[0]
    assert len(ax.collections) == 3 and len(fig.axes) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["s1", "s2", "s3"]
    au = np.array([1, 0, -1] * 10, np.int8)
    labels = [t.get_text() for t in viz.umap_scatter(emb, au).axes[0].get_legend().get_texts()]
    assert labels == ["unknown", "0", "1"]
    many = viz.umap_scatter(emb, np.arange(30), "ids")
    assert many.axes[0].get_legend() is None and "30 categories" in many.axes[0].get_title()
    yaw = np.linspace(-1, 1, 30)
    cont = viz.umap_scatter(emb, yaw, "yaw")
    assert len(cont.axes) == 2 and len(cont.axes[0].collections) == 1  # one scatter + a colour bar
    np.testing.assert_allclose(cont.axes[0].collections[0].get_array(), yaw)


def test_umap_view_picks_a_colouring(no_pyplot_figures_left):
    emb = np.random.default_rng(0).normal(size=(12, 2))
    colourings = {"subject": np.array(["a", "b"] * 6), "yaw": np.linspace(0, 1, 12)}
    fig = viz.umap_view(emb, colourings, "yaw")
    assert fig.axes[0].get_title() == "coloured by yaw" and len(fig.axes) == 2
    with pytest.raises(ValueError, match="choose one of"):
        viz.umap_view(emb, colourings, "pitch")


def test_hiding_curves_lines(no_pyplot_figures_left):
    fig = viz.hiding_curves({"patch tokens": [0.5, 0.4, 0.3, 0.2], "pixels": [0.6, 0.4, 0.2, 0.1]},
                            [0, 0.25, 0.5, 0.75], references={"chance": 0.25})
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 25, 50, 75])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [60, 40, 20, 10])
    with pytest.raises(ValueError, match="3 values for 4"):
        viz.hiding_curves({"a": [0.1, 0.2, 0.3]}, [0, 0.25, 0.5, 0.75])


def test_model_fingerprint_tracks_the_weights():
    cfg = MAEConfig(16, 8, 16, 1, 2, 16, 1, 2)
    torch.manual_seed(0)
    a = mae.build_mae(cfg)
    torch.manual_seed(0)
    b = mae.build_mae(cfg)
    assert cache.model_fingerprint(a) == cache.model_fingerprint(b)
    with torch.no_grad():
        b.vit.embeddings.cls_token += 1e-3
    assert cache.model_fingerprint(a) != cache.model_fingerprint(b)


def test_subject_centred_removes_each_persons_mean_and_helps_a_probe():
    rng = np.random.default_rng(0)
    ds = toy_dataset(n_subjects=6, per_subject=40)
    # identity offsets 10x larger than the AU signal: a probe has to see past them
    identity = rng.normal(0, 10, (6, 8)).astype(np.float32)
    person = np.array([int(s[1:]) for s in ds.subjects])
    x = identity[person] + rng.normal(0, 1, (len(ds), 8)).astype(np.float32)
    x[:, : len(AUS)] += 2.0 * ds.labels
    centred = probe.subject_centred(x, ds.subjects)
    assert centred.shape == x.shape and centred.dtype == np.float32
    for s in np.unique(ds.subjects):
        assert np.allclose(centred[ds.subjects == s].mean(0), 0, atol=1e-4)
    raw = probe.probe_folds(x, ds, epochs=20)["avg_f1"]
    assert probe.probe_folds(centred, ds, epochs=20)["avg_f1"] > raw + 0.05
    with pytest.raises(ValueError, match="subject ids"):
        probe.subject_centred(x, ds.subjects[:-1])


def test_an_mlp_probe_fits_what_a_linear_probe_cannot():
    """XOR of two features: no linear probe separates it, one hidden layer does."""
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(400, 2)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.int8)[:, None]  # (N, 1)
    linear = probe.fit_probe(x, y, epochs=40, lr=3e-2)
    mlp = probe.fit_probe(x, y, epochs=40, lr=3e-2, hidden=16)
    assert mlp.hidden is not None and linear.hidden is None
    accuracy = lambda p: ((probe.probe_probs(p, x) > 0.5) == y).mean()  # noqa: E731
    assert accuracy(mlp) > 0.95 and accuracy(linear) < 0.8
