"""Tests for occfau_lib.viz: every plotting function draws what its data says, purely."""
from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from occfau_lib import metrics, synthfacs, viz  # noqa: E402
from occfau_lib.aus import ALL_AUS  # noqa: E402
from occfau_lib.data import ArrayDataset  # noqa: E402

S = 32  # render size of every face in these tests


@pytest.fixture(autouse=True)
def no_pyplot_figures_left():
    """viz functions keep no global state: pyplot tracks none of the figures they create."""
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def image_data(ax, k: int = 0) -> np.ndarray:
    return np.asarray(ax.images[k].get_array())


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def toy_dataset(labels: np.ndarray, aus=(1, 2, 12)) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(labels), 8, 8, 3), dtype=np.uint8)
    subjects = [f"s{i % 3}" for i in range(len(labels))]
    return ArrayDataset(images, labels, subjects, aus, "toy")


# ----- show_faces -----


def test_show_faces_grid_captions_and_pixels():
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    fig = viz.show_faces(images, titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 5  # 2 rows of 3, the unused panel removed
    assert [ax.get_xlabel() for ax in fig.axes] == list("abcde")
    for ax, image in zip(fig.axes, images):
        np.testing.assert_array_equal(image_data(ax), image)
    plt.close(fig)


def test_show_faces_accepts_channel_first_tensors():
    image = torch.rand(3, 8, 8)
    fig = viz.show_faces([image])
    np.testing.assert_allclose(image_data(fig.axes[0]), image.permute(1, 2, 0).numpy())
    plt.close(fig)


def test_show_faces_rejects_bad_input():
    with pytest.raises(ValueError, match="no images"):
        viz.show_faces(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        viz.show_faces(np.zeros((3, 8, 8, 3), np.uint8), titles=["a", "b"])


# ----- au_gallery -----


def test_au_gallery_layout_labels_and_cells():
    identity = synthfacs.make_identity(brow_height=1.0, mouth_width=-1.0)
    fig = viz.au_gallery(identity, aus=(1, 12, 26), size=S)
    axes = np.reshape(fig.axes, (3, 6))
    assert [ax.get_title() for ax in axes[0]] == ["neutral", "1", "2", "3", "4", "5"]
    assert [row[0].get_ylabel() for row in axes] == ["AU1 Inner brow raiser", "AU12 Lip corner puller", "AU26 Jaw drop"]
    np.testing.assert_array_equal(image_data(axes[1, 0]), synthfacs.render_face(identity, size=S))
    np.testing.assert_array_equal(image_data(axes[1, 3]), synthfacs.render_face(identity, {12: 3}, size=S))
    np.testing.assert_array_equal(image_data(axes[2, 5]), synthfacs.render_face(identity, {26: 5}, size=S))
    plt.close(fig)


def test_au_gallery_difference_column():
    fig = viz.au_gallery(aus=(4, 12), intensities=(2, 4), size=S, show_difference=True)
    axes = np.reshape(fig.axes, (2, 4))
    assert axes[0, -1].get_title() == "|4 - neutral|"
    neutral = synthfacs.render_face(size=S).astype(np.float32)
    apex = synthfacs.render_face(aus={12: 4}, size=S).astype(np.float32)
    np.testing.assert_allclose(image_data(axes[1, -1]), np.abs(apex - neutral).mean(-1) / 255, atol=1e-6)
    plt.close(fig)


def test_au_gallery_validates_aus_and_intensities():
    with pytest.raises(ValueError, match="unknown AU"):
        viz.au_gallery(aus=(3,), size=S)
    with pytest.raises(ValueError, match="outside the FACS range"):
        viz.au_gallery(aus=(12,), intensities=(6,), size=S)


# ----- face_explorer -----


def test_face_explorer_has_one_slider_per_au():
    params = inspect.signature(viz.face_explorer).parameters
    assert [name for name in params if name.startswith("au")] == [f"au{au}" for au in ALL_AUS]


def test_face_explorer_default_frame_and_bars():
    fig = viz.face_explorer(au12=3.0, au6=0.5, size=48)
    ax_face, ax_bars = fig.axes
    np.testing.assert_array_equal(image_data(ax_face), synthfacs.render_face(aus={12: 3.0, 6: 0.5}, size=48))
    assert ax_face.get_title() == "average identity"
    heights = [bar.get_width() for bar in ax_bars.patches]
    assert heights == [3.0 if au == 12 else 0.5 if au == 6 else 0.0 for au in ALL_AUS]
    assert [t.get_text() for t in ax_bars.get_yticklabels()] == [f"AU{au}" for au in ALL_AUS]
    fig.canvas.draw()  # the static frame a headless notebook shows
    plt.close(fig)


def test_face_explorer_sliders_change_pixels():
    frames = {
        "neutral": viz.face_explorer(size=48),
        "au12": viz.face_explorer(au12=4.0, size=48),
        "yaw": viz.face_explorer(yaw=0.5, size=48),
        "identity": viz.face_explorer(identity_seed=3, size=48),
    }
    pixels = {key: image_data(fig.axes[0]).astype(int) for key, fig in frames.items()}
    for key in ("au12", "yaw", "identity"):
        assert np.abs(pixels[key] - pixels["neutral"]).sum() > 0, key
    again = viz.face_explorer(identity_seed=3, size=48)
    np.testing.assert_array_equal(image_data(again.axes[0]), pixels["identity"])  # deterministic
    for fig in [*frames.values(), again]:
        plt.close(fig)


def test_face_explorer_names_the_identity_quirk():
    seed = next(k for k in range(1, 100) if synthfacs.sample_identities(1, np.random.default_rng(k))[1][0])
    quirk = synthfacs.sample_identities(1, np.random.default_rng(seed))[1][0]
    fig = viz.face_explorer(identity_seed=seed, size=16)
    assert fig.axes[0].get_title() == f"identity {seed} (looks like {viz.LOOKS_LIKE[quirk]})"
    plt.close(fig)


# ----- identity_gallery -----


def test_looks_like_covers_every_quirk():
    assert set(viz.LOOKS_LIKE) == set(synthfacs.LOOKALIKES)


def test_identity_gallery_faces_and_quirk_captions():
    ids, quirks = synthfacs.sample_identities(12, np.random.default_rng(5))
    assert any(quirks)  # the seed gives at least one look-alike to caption
    fig = viz.identity_gallery(n=12, seed=5, size=S)
    assert len(fig.axes) == 12
    for ax, identity, quirk in zip(fig.axes, ids, quirks):
        np.testing.assert_array_equal(image_data(ax), synthfacs.render_face(identity, size=S))
        assert ax.get_xlabel() == (f"looks like {viz.LOOKS_LIKE[quirk]}" if quirk else "")
    plt.close(fig)
    hidden = viz.identity_gallery(n=12, seed=5, size=S, show_quirks=False)
    assert all(ax.get_xlabel() == "" for ax in hidden.axes)
    plt.close(hidden)


# ----- cooccurrence -----

HAND_LABELS = np.array([
    [1, 1, 0],
    [1, 0, 0],
    [0, 1, -1],
    [1, -1, 1],
    [0, 0, 1],
])  # fmt: skip


def test_cooccurrence_conditional_masks_unknown_pairwise():
    expected = np.array([
        [1.0, 1 / 2, 1 / 3],  # AU0 present in rows 0, 1, 3; AU1 unknown in row 3
        [1 / 2, 1.0, 0.0],  # AU1 present in rows 0, 2; AU2 unknown in row 2
        [1 / 2, 0.0, 1.0],  # AU2 present in rows 3, 4; AU1 unknown in row 3
    ])  # fmt: skip
    np.testing.assert_allclose(metrics.cooccurrence(HAND_LABELS, "conditional"), expected)


def test_cooccurrence_correlation_is_phi_over_pairwise_known_rows():
    phi = metrics.cooccurrence(HAND_LABELS, "correlation")
    assert phi[0, 1] == pytest.approx(0.0)  # rows 0, 1, 2, 4: x = 1100, y = 1010
    assert phi[0, 2] == pytest.approx(-1 / np.sqrt(3))  # rows 0, 1, 3, 4: x = 1110, y = 0011
    for i in range(3):
        for j in range(3):
            rows = (HAND_LABELS[:, i] >= 0) & (HAND_LABELS[:, j] >= 0)
            ref = np.corrcoef(HAND_LABELS[rows, i], HAND_LABELS[rows, j])[0, 1]
            assert phi[i, j] == pytest.approx(ref)


def test_cooccurrence_nan_for_undefined_entries_and_bad_kind():
    labels = np.array([[1, 0], [1, 0], [0, 0]])
    cond = metrics.cooccurrence(labels, "conditional")
    assert cond[0, 1] == 0.0 and np.isnan(cond[1]).all()  # AU 1 is never present
    assert np.isnan(metrics.cooccurrence(labels, "correlation")[0, 1])  # AU 1 is constant
    with pytest.raises(ValueError, match="kind must be"):
        metrics.cooccurrence(labels, "lift")


def test_cooccurrence_heatmap_cells_ticks_and_colorbar():
    fig = viz.cooccurrence_heatmap(HAND_LABELS, (1, 2, 12))
    ax, cbar = fig.axes
    np.testing.assert_allclose(image_data(ax), metrics.cooccurrence(HAND_LABELS))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AU1", "AU2", "AU12"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["AU1", "AU2", "AU12"]
    assert "0.33" in texts(fig) and len(ax.texts) == 9
    assert cbar.get_ylim() == (0.0, 1.0)
    plt.close(fig)


def test_cooccurrence_heatmap_on_given_axes_correlation():
    fig, (left, right) = plt.subplots(1, 2)
    assert viz.cooccurrence_heatmap(HAND_LABELS, (1, 2, 12), ax=right, kind="correlation") is fig
    assert right.images[0].get_clim() == (-1.0, 1.0) and not left.images
    plt.close(fig)


def test_cooccurrence_heatmap_checks_au_count():
    with pytest.raises(ValueError, match="3 AU columns"):
        viz.cooccurrence_heatmap(HAND_LABELS, (1, 2))


# ----- region_maps -----


def test_region_maps_boxes_in_map_pixels():
    rng = np.random.default_rng(0)
    maps = {6: rng.random((S, S)), 12: rng.random((S, S))}
    fig = viz.region_maps(maps)
    assert [ax.get_title() for ax in fig.axes] == ["AU6 (cheeks)", "AU12 (mouth)"]
    for ax, au in zip(fig.axes, maps):
        np.testing.assert_allclose(image_data(ax), maps[au])
        (box,) = ax.patches
        assert isinstance(box, Rectangle)
        u0, u1, v0, v1 = synthfacs.AU_BOXES[au]
        assert box.get_xy() == pytest.approx(((u0 + 1) / 2 * S, (v0 + 1) / 2 * S))
        assert box.get_width() == pytest.approx((u1 - u0) / 2 * S)
        assert box.get_height() == pytest.approx((v1 - v0) / 2 * S)
    plt.close(fig)


def test_region_maps_overlay_on_face_and_no_boxes():
    maps = synthfacs.au_region_maps(size=S, n_identities=2)
    face = synthfacs.render_face(size=2 * S)  # another resolution than the maps
    fig = viz.region_maps(maps, face=face, boxes=False)
    assert len(fig.axes) == len(ALL_AUS)
    for ax, au in zip(fig.axes, ALL_AUS):
        assert len(ax.images) == 2 and not ax.patches
        np.testing.assert_array_equal(image_data(ax, 0), face)
        np.testing.assert_allclose(image_data(ax, 1), maps[au])
        assert ax.images[0].get_extent() == ax.images[1].get_extent() == [0, S, S, 0]
    fig.canvas.draw()
    plt.close(fig)


# ----- label_stats -----


def test_label_stats_bars_and_unknown_counts():
    labels = np.array([[1, 0, -1], [1, 1, -1], [0, -1, 1], [0, 0, 0]], np.int8)
    ds = toy_dataset(labels)
    fig = viz.label_stats(ds)
    (ax,) = fig.axes
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], [0.5, 1 / 3, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AU1", "AU2", "AU12"]
    assert texts(fig) == ["1?", "2?"]  # AU2 has 1 unknown label, AU12 has 2
    assert "4 images, 3 subjects" in ax.get_title() and "3 unknown" in ax.get_title()
    plt.close(fig)


def test_label_stats_without_unknowns():
    fig = viz.label_stats(toy_dataset(np.array([[1, 0, 0], [0, 0, 1]], np.int8)))
    assert texts(fig) == [] and "no unknown labels" in fig.axes[0].get_title()
    plt.close(fig)


# ----- sequence_plot -----


def test_sequence_plot_draws_active_aus_only():
    t = np.linspace(0, 1, 20)
    intensities = np.zeros((20, len(ALL_AUS)), np.float32)
    intensities[:, ALL_AUS.index(6)] = 3 * np.sin(np.pi * t)
    intensities[:, ALL_AUS.index(12)] = 4 * np.sin(np.pi * t) ** 2
    fig = viz.sequence_plot(intensities, frames=np.arange(100, 120))
    (ax,) = fig.axes
    curves = ax.lines[:-1]  # the last line is the presence threshold
    assert len(curves) == 2
    np.testing.assert_array_equal(curves[1].get_xdata(), np.arange(100, 120))
    np.testing.assert_allclose(curves[1].get_ydata(), intensities[:, ALL_AUS.index(12)])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["AU6 Cheek raiser", "AU12 Lip corner puller"]
    plt.close(fig)


def test_sequence_plot_subset_of_aus_on_given_axes():
    fig, ax = plt.subplots()
    intensities = np.array([[0.0, 1.0], [0.0, 2.0]])
    assert viz.sequence_plot(intensities, aus=(1, 25), ax=ax) is fig
    assert len(ax.lines) == 2 and ax.get_legend().get_texts()[0].get_text() == "AU25 Lips part"
    with pytest.raises(ValueError, match=r"\(frames, 3\)"):
        viz.sequence_plot(intensities, aus=(1, 2, 25), ax=ax)
    plt.close(fig)


# ----- notebook 03: occlusion effects -----


def test_occlusion_gallery_panels_follow_the_occluded_images():
    from occfau_lib import occlusion

    faces = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    occ = {"clean": occlusion.apply(faces, "clean", 8), "mouth": occlusion.apply(faces, "lower_half", 8)}
    fig = viz.occlusion_gallery(occ, n_faces=2, patch_size=8)
    assert len(fig.axes) == 3 * 2  # 2 faces + the "MAE sees" row, 2 conditions
    assert [fig.axes[c].get_title() for c in range(2)] == ["clean", "mouth"]
    np.testing.assert_array_equal(image_data(fig.axes[3]), occ["mouth"].images[1])
    np.testing.assert_array_equal(image_data(fig.axes[5]),
                                  viz.masked_view(occ["mouth"].images[0], occ["mouth"].visible[0], 8))


def _result(avg: float, per_au: dict) -> dict:
    return {"avg_f1": avg, "f1": per_au}


def test_level_curves_plot_average_and_each_au():
    results = {"clean": _result(0.6, {1: 0.8, 2: 0.4}), "p50": _result(0.4, {1: 0.5, 2: 0.3}),
               "b": _result(0.5, {1: 0.6, 2: 0.4})}
    fig = viz.level_curves(results, {"patches": {"p50": 0.5}, "blocks": {"b": 0.2}}, (1, 2))
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["average"].get_ydata(), [60, 40])
    np.testing.assert_allclose(lines["AU1"].get_xdata(), [0.0, 0.5])
    np.testing.assert_allclose(lines["AU2"].get_ydata(), [40, 30])
    assert [a.get_title() for a in fig.axes] == ["patches", "blocks"]


def test_sensitivity_maps_show_both_matrices():
    drop = np.array([[20.0, 1.0], [np.nan, 30.0]])
    truth = np.array([[0.9, 0.0], [0.1, 0.8]])
    fig = viz.sensitivity_maps(drop, truth, (1, 12), ["brows", "mouth"])
    left, right = fig.axes[0], fig.axes[1]  # then the two colourbars
    np.testing.assert_allclose(image_data(left).data, truth)
    np.testing.assert_allclose(np.ma.filled(right.images[0].get_array(), -1), [[20, 1], [-1, 30]])  # nan masked
    assert "20" in texts(fig) and "0.90" in texts(fig)


def test_occluder_explorer_feeds_clean_and_occluded_faces_to_the_detector():
    seen = []

    def predict(x):
        seen.append(x.copy())
        return np.array([[0.9, 0.2], [0.1, 0.6]])

    face = np.full((16, 16, 3), 200, np.uint8)
    fig = viz.occluder_explorer(predict, face, [1, 0], (6, 12), "block", cx=0.0, cy=0.0, side=0.25)
    clean, occluded = seen[0]
    np.testing.assert_array_equal(clean, face)
    assert (occluded[6:10, 6:10] == np.array([124, 116, 104])).all() and (occluded[0] == 200).all()
    bars = [p.get_height() for p in fig.axes[1].patches]
    np.testing.assert_allclose(bars, [0.9, 0.2, 0.1, 0.6])
    fig2 = viz.occluder_explorer(predict, face, [1, 0], (6, 12), "sunglasses")
    assert fig2.axes[0].get_xlabel() == "sunglasses"


def test_drift_bars_heights_are_mean_token_changes():
    drift = {"hand": {"dropped": np.array([0.9, 0.7]), "fed": np.array([0.5, 0.3])}}
    fig = viz.drift_bars(drift)
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].patches], [0.2, 0.6])


def test_gain_heatmap_is_signed_and_symmetric():
    gain = np.array([[12.0, -4.0], [np.nan, 3.0]])
    fig = viz.gain_heatmap(gain, ["mouth block", "upper half"], (12, 1))
    im = fig.axes[0].images[0]
    assert im.norm.vmin == -12 and im.norm.vmax == 12
    assert "12" in texts(fig) and "-4" in texts(fig) and "–" in texts(fig)
    with pytest.raises(ValueError, match="expected"):
        viz.gain_heatmap(gain, ["one"], (12, 1))


def test_method_dots_one_row_per_condition_the_method_its_controls_and_the_best_baseline():
    values = {"chance: always present": 0.25, "pixels + logistic regression": 0.35, "teacher": 0.6,
              "reconstruct-then-detect": 0.5, "student, no KD": 0.3, "student, node + edge KD": 0.45}
    results = {m: {c: {"avg_f1": v + k / 10} for k, c in enumerate(["clean", "block 50%"])} for m, v in values.items()}
    fig = viz.method_dots(results, errors={m: {"clean": 0.01, "block 50%": 0.02} for m in results})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["clean", "block 50%"]
    assert list(ax.get_yticks()) == [1, 0]  # the first condition on top
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "the method: student, node + edge KD" in labels and "control: no KD" in labels
    handles = {label: handle for handle, label in zip(*ax.get_legend_handles_labels())}
    np.testing.assert_allclose(np.asarray(handles["the method: student, node + edge KD"].lines[0].get_xdata(), float),
                               [45, 55])
    best = handles["strongest baseline (named right)"].lines[0]
    np.testing.assert_allclose(np.asarray(best.get_xdata(), float), [60, 70])  # the teacher, not reconstruct-then-detect
    assert [t.get_text() for t in ax.texts] == ["teacher", "teacher"]
    np.testing.assert_allclose([p.get_width() for p in ax.patches], [35, 45])  # the floors' band


def test_feature_spaces_marks_clean_and_occluded_rows():
    emb = np.arange(8.0).reshape(4, 2)
    fig = viz.feature_spaces({"latent": emb, "student": emb + 1}, [1, 0, 1, -1], [False, False, True, True])
    assert [a.get_title() for a in fig.axes] == ["latent", "student"]
    offsets = sorted(tuple(p) for c in fig.axes[0].collections for p in c.get_offsets())
    assert offsets == [tuple(p) for p in emb]  # every face drawn once
    labels = {t.get_text() for t in fig.axes[1].get_legend().get_texts()}
    assert labels == {"present, clean", "absent, clean", "present, occluded", "unknown, occluded"}
    with pytest.raises(ValueError, match="expected"):
        viz.feature_spaces({"latent": emb[:3]}, [1, 0, 1, -1], [False] * 4)


def test_pair_heatmaps_and_student_flow():
    m = np.eye(3) * 0.5
    fig = viz.pair_heatmaps({"empirical": m, "teacher": m.T * 0.4}, (1, 2, 4))
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), m)
    assert fig.axes[1].get_title() == "teacher"
    assert all(ax.images[0].get_clim() == (0, 0.5) for ax in fig.axes[:2])  # one scale, up to the largest value
    assert viz.pair_heatmaps({"a": m}, (1, 2, 4), vmax=1).axes[0].images[0].get_clim() == (0, 1)
    with pytest.raises(ValueError, match="expected"):
        viz.pair_heatmaps({"bad": np.eye(2)}, (1, 2, 4))
    assert any("node KD + edge KD" in t for t in texts(viz.student_flow()))


def test_run_curves_one_panel_per_model_kind():
    records = [{"stage": "pretrain-mae", "model": "mae", "history": {"step": [1, 2], "loss": [0.5, 0.4]}},
               {"stage": "train-teacher", "model": "teacher", "fold": 1, "history": {"step": [1, 2], "loss": [3, 2]}},
               {"stage": "train-teacher", "model": "teacher", "fold": 2, "history": {"step": [1, 2], "loss": [4, 1]}},
               {"stage": "distill", "model": "student", "fold": 1},  # loaded from the cache: no history
               {"stage": "evaluate", "method": "teacher", "condition": "clean"}]
    fig = viz.run_curves(records)
    assert [ax.get_title() for ax in fig.axes] == ["mae", "teacher"]
    assert [line.get_label() for line in fig.axes[1].lines] == ["fold 1", "fold 2"]
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), [4, 1])
    with pytest.raises(ValueError, match="no record with a loss history"):
        viz.run_curves(records[3:])


def test_loss_curve_titles():
    fig = viz.loss_curve({"step": [1, 2], "loss": [1.0, 0.5], "lr": [0.1, 0.05]}, title="teacher", ylabel="loss")
    assert fig.axes[0].get_title() == "teacher" and fig.axes[0].get_ylabel() == "loss"
    assert fig.axes[0].get_yscale() == "log"


def test_loss_spikes_are_found_marked_and_split_into_parts():
    loss = [2.0, 1.8, 1.7, 1.6, 1.6, 1.5, 40.0, 6.0, 3.0]
    history = {"step": list(range(20, 200, 20)), "loss": loss, "lr": [0.1] * 9,
               "node": [x / 2 for x in loss], "edge": [0.5] * 9}
    spikes = viz.loss_spikes(history)
    assert [s["step"] for s in spikes] == [140] and spikes[0]["before"] == 1.6
    assert spikes[0]["parts"]["node"] == (0.8, 20.0) and spikes[0]["parts"]["edge"] == (0.5, 0.5)
    fig = viz.loss_curve(history)
    assert [t.get_text() for t in fig.axes[0].texts] == ["step 140: x25"]


def test_reference_lines_differ_in_colour_and_dashes_and_are_named():
    fig = viz.probe_by_layer({"trained": [0.2, 0.4]}, references={"pixels": 0.3, "patches": 0.31, "chance": 0.25})
    refs = fig.axes[0].lines[1:]
    assert len({line.get_color() for line in refs}) == 3 and len({str(line._unscaled_dash_pattern) for line in refs}) == 3
    assert [t.get_text() for t in fig.axes[0].texts] == ["pixels", "patches", "chance"]


def test_survival_difference_is_one_diverging_map():
    fig = viz.survival_difference([[1.0, 0.5]], [[0.5, 0.75]], ["mouth"], (1, 2))
    im = fig.axes[0].images[0]
    np.testing.assert_allclose(im.get_array().filled(np.nan), [[0.5, -0.25]])
    assert im.norm.vmin == -0.5 and im.norm.vmax == 0.5 and im.cmap.name.startswith("RdBu")


def test_regime_curves_draw_gains_over_the_random_encoder():
    regime = {"runs": [{"corpus": 64, "steps": 2, "linear": 50.0, "mlp": 60.0},
                       {"corpus": 128, "steps": 2, "linear": 53.0, "mlp": 58.0}],
              "random": {"linear": 51.0, "mlp": 62.0}}
    ax = viz.regime_curves(regime, chance=25.0).axes[0]
    gains = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert gains["linear probe, 2 steps"] == [-1.0, 2.0] and gains["mlp probe, 2 steps"] == [-2.0, -4.0]
    assert gains["random encoder (zero)"] == [0, 0] and gains["always present, vs linear on random"] == [-26.0, -26.0]



def test_budget_curve_draws_each_snapshots_gain_from_zero_steps():
    def run(steps, gain):
        return {"steps": steps, **{f"{f}_gain": gain + i for i, f in enumerate(("blocks", "clean", "probe"))},
                **{f"{f}_gain_std": 0.5 for f in ("blocks", "clean", "probe")}}

    record = {"recipes": {"random": run(0, 0.0), "s6000": run(6000, 9.0), "s3000": run(3000, 4.0)}}
    ax = viz.budget_curve(record).axes[0]
    curves = {c.get_label(): c.lines[0].get_ydata().tolist() for c in ax.containers}
    assert curves["student, large blocks"] == [0.0, 4.0, 9.0] and curves["linear probe, clean"] == [0.0, 6.0, 11.0]
    assert ax.containers[0].lines[0].get_xdata().tolist() == [0, 3000, 6000]
    with pytest.raises(ValueError, match="no pretrained snapshot"):
        viz.budget_curve({"recipes": {"random": run(0, 0.0)}})

# ----- widgets: the notebooks' explorers, driven headless -----


def _png_pixels(explorer) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(explorer.image.value)).convert("RGB")).astype(int)


def test_face_explorer_widget_groups_controls_and_pins_size():
    from occfau_lib import widgets

    box = widgets.face_explorer(size=32)
    titles = [[w.value for w in column.children if w.description == ""] for column in box.children[0].children]
    assert titles == [["<b>upper face</b>"], ["<b>lower face</b>"], ["<b>identity, head pose</b>", "<b>light</b>"]]
    assert set(box.controls) == {f"au{a}" for a in ALL_AUS} | {"identity_seed", "roll", "yaw", "pitch",
                                                              "light_x", "light_y", "light_strength"}
    assert "size" not in box.controls and box.arguments()["size"] == 32
    params = inspect.signature(viz.face_explorer).parameters
    for name, w in box.controls.items():  # each control starts at the plot function's default
        assert w.value == params[name].default, name
        assert not w.continuous_update  # a render per release, not per pixel dragged
    assert box.controls["light_strength"].min >= 0 and box.controls["light_strength"].description == "strength"
    upper = [w.description for w in box.children[0].children[0].children[1:]]
    assert upper == ["AU1", "AU2", "AU4", "AU6", "AU7"] and "Inner brow raiser" in box.controls["au1"].tooltip
    assert box.image.value[:4] == b"\x89PNG" and box.message.value == ""


def test_face_explorer_widget_redraws_when_a_control_moves():
    from occfau_lib import widgets

    box = widgets.face_explorer(size=32)
    before = _png_pixels(box)
    box.controls["au12"].value = 4.0
    after = _png_pixels(box)
    assert np.abs(after - before).sum() > 0
    box.controls["au12"].value = 0.0
    np.testing.assert_array_equal(_png_pixels(box), before)  # deterministic: back to the same frame


def test_explorer_shows_errors_and_keeps_the_last_figure():
    from occfau_lib import widgets

    def render(x):
        if x > 2:
            raise ValueError("too big")
        return viz.show_faces(np.full((1, 4, 4, 3), 60 * x, np.uint8))

    box = widgets.Explorer(render, {"numbers": {"x": widgets.slider("x", 0, 3, 1, 1)}})
    png = box.image.value
    box.controls["x"].value = 3
    assert "ValueError: too big" in box.message.value and box.image.value == png
    box.controls["x"].value = 2
    assert box.message.value == "" and box.image.value != png
    assert isinstance(widgets.slider("f", 0, 1, 0.5, 0), type(widgets.slider("f", 0.0, 1.0, 0.5, 0.0)))


def test_occluder_explorer_widget_enables_block_sliders_for_the_block_only():
    from occfau_lib import widgets

    seen = []

    def predict(x):
        seen.append(x.copy())
        return np.tile([[0.7, 0.2]], (len(x), 1))

    faces = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    box = widgets.occluder_explorer(predict, faces, np.array([[1, 0]] * 3), (6, 12))
    assert list(box.controls) == ["occluder", "face", "seed", "cx", "cy", "side"]
    assert box.controls["face"].max == 2 and box.controls["occluder"].value == "block"
    assert not box.controls["side"].disabled and box.controls["seed"].disabled
    png = box.image.value
    box.controls["face"].value = 2
    np.testing.assert_array_equal(seen[-1][0], faces[2])  # the clean face the detector sees
    assert box.image.value != png
    box.controls["occluder"].value = "sunglasses"
    assert box.controls["side"].disabled and not box.controls["seed"].disabled
    assert (seen[-1][1] != faces[2]).any()


def test_f1_plots_draw_the_chance_line_they_are_given():
    """Issue 16: every F1 plot of notebooks 03-04 shows the "always present" floor."""
    results = {"clean": _result(0.6, {1: 0.8, 2: 0.4}), "p50": _result(0.4, {1: 0.5, 2: 0.3})}
    fig = viz.level_curves(results, {"patches": {"p50": 0.5}}, (1, 2), chance=0.25)
    floor = next(line for line in fig.axes[0].lines if line.get_label().startswith("always present"))
    np.testing.assert_allclose(floor.get_ydata(), [25, 25])
    dots = viz.method_dots({"teacher": {"clean": {"avg_f1": 0.4}}}, chance=0.3)
    assert any(line.get_label() == "always present" and line.get_xdata()[0] == 30 for line in dots.axes[0].lines)
    per_au = viz.per_au_bars({"clean": {1: 0.8, 2: 0.4}}, (1, 2), chance={1: 0.2, 2: 0.1})
    ticks = next(c for c in per_au.axes[0].collections if c.get_label() == "always present")
    np.testing.assert_allclose([seg[0][1] for seg in ticks.get_segments()], [20, 10])
