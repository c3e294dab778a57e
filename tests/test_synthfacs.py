"""SynthFACS: determinism, locality and grading of AUs, identity confounds, sequences, caching."""
import warnings

import numpy as np
import pytest

from occfau_lib import synthfacs as sf
from occfau_lib.aus import ALL_AUS, BP4D_AUS
from occfau_lib.config import DataConfig

TINY = DataConfig(img_size=32, n_subjects=6, n_tasks=3, frames_per_task=5, seed=7)


def _scenes(n, seed=0):
    rng = np.random.default_rng(seed)
    ids, _ = sf.sample_identities(n, rng)
    aus = rng.uniform(0, 5, (n, len(ALL_AUS))).astype(np.float32)
    nus = np.concatenate([sf.sample_nuisances(n, rng, np.zeros(3), sf.sample_session(rng))])
    return ids, aus, nus, np.arange(n) + 100


def test_render_shapes_any_square_size():
    for size in (16, 64, 224):
        img = sf.render_face(size=size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert sf.render_face(size=64).std() > 10  # a face, not a flat image


def test_render_is_deterministic_and_independent_of_batch():
    ids, aus, nus, seeds = _scenes(6)
    batch = sf.render_faces(ids, aus, nus, seeds, 32)
    again = sf.render_faces(ids, aus, nus, seeds, 32)
    alone = np.stack([sf.render_faces(ids[i : i + 1], aus[i : i + 1], nus[i : i + 1], seeds[i : i + 1], 32)[0]
                      for i in range(6)])
    np.testing.assert_array_equal(batch, again)
    np.testing.assert_array_equal(batch, alone)


def test_seed_only_changes_sensor_noise():
    noisy = dict(noise=0.03)
    a = sf.render_face(seed=1, **noisy).astype(int)
    b = sf.render_face(seed=2, **noisy).astype(int)
    assert (a != b).mean() > 0.5  # noise differs everywhere...
    assert abs((a - b).mean()) < 1 and np.abs(a - b).mean() < 12  # ...but it is only zero-mean noise
    np.testing.assert_array_equal(sf.render_face(seed=1), sf.render_face(seed=2))  # no noise, no change


@pytest.mark.parametrize("au", ALL_AUS)
def test_each_au_changes_pixels_only_inside_its_region(au):
    rng = np.random.default_rng(au)
    n = 8
    ids, _ = sf.sample_identities(n, rng)
    nus = np.repeat(sf.make_nuisance(noise=0.02, blur=0.5)[None], n, 0)
    seeds = np.arange(n)
    neutral = sf.render_faces(ids, np.zeros((n, len(ALL_AUS))), nus, seeds, 64).astype(int)
    apex = sf.render_faces(ids, np.repeat(sf.au_vector({au: 5})[None], n, 0), nus, seeds, 64).astype(int)
    diff = np.abs(apex - neutral).max(axis=(0, 3))  # (64, 64)
    inside = sf.au_box_mask(au, 64)
    assert diff[inside].max() >= 25, f"AU{au} at intensity 5 should be clearly visible"
    assert diff[~inside].max() == 0, f"AU{au} changed pixels outside its region"


@pytest.mark.parametrize("au", ALL_AUS)
def test_intensity_is_graded(au):
    face = lambda i: sf.render_face(aus={au: i}, size=64).astype(float)  # noqa: E731
    neutral = face(0)
    change = [np.abs(face(i) - neutral).sum() for i in (1, 3, 5)]
    assert 0 < change[0] < change[1] < change[2], change
    assert change[0] < 0.45 * change[2], "intensity 1 should be subtle compared with 5"


def test_identity_lookalike_resembles_an_au():
    """A naturally low, close-browed face looks like AU4 (the confound subject-exclusive splits guard against)."""
    neutral = sf.render_face(size=64).astype(float)
    lookalike = sf.render_face(sf.make_identity(**sf.LOOKALIKES["low_close_brows"]), size=64).astype(float)
    au4 = sf.render_face(aus={4: 3}, size=64).astype(float)
    au12 = sf.render_face(aus={12: 3}, size=64).astype(float)
    d_au4 = np.abs((lookalike - neutral) - (au4 - neutral)).sum()
    d_au12 = np.abs((lookalike - neutral) - (au12 - neutral)).sum()
    assert d_au4 < d_au12
    region = sf.au_box_mask(4, 64)
    assert np.abs(lookalike - neutral)[region].mean() > 3 * np.abs(lookalike - neutral)[~region].mean()


def test_identities_have_enough_morphology_and_quirks():
    assert len(sf.IDENTITY_PARAMS) >= 8
    ids, quirks = sf.sample_identities(200, np.random.default_rng(0))
    assert ids.shape == (200, len(sf.IDENTITY_PARAMS))
    assert set(quirks) - {""} == set(sf.LOOKALIKES)
    faces = [sf.render_face(ids[i], size=32).astype(float) for i in range(4)]
    assert all(np.abs(faces[0] - f).mean() > 2 for f in faces[1:])


def test_sequences_follow_onset_apex_offset_and_prototypes():
    rng = np.random.default_rng(0)
    name, seq = sf.sample_sequence(60, rng)
    assert seq.shape == (60, len(ALL_AUS)) and seq.min() >= 0 and seq.max() <= 5
    seqs = np.concatenate([sf.sample_sequence(30, rng)[1] for _ in range(300)])
    occ = sf.occurrence(seqs).astype(float)
    col = {a: i for i, a in enumerate(ALL_AUS)}
    p = lambda a, given: occ[occ[:, col[given]] > 0, col[a]].mean()  # noqa: E731
    base = lambda a: occ[:, col[a]].mean()  # noqa: E731
    for a, given in ((12, 6), (2, 1), (7, 4), (10, 9)):  # happiness, surprise/fear, anger, disgust
        assert p(a, given) > 2 * base(a), (a, given)
    assert p(23, given=12) < 1.5 * base(23)  # lip tightening is no part of a smile
    assert 0.05 < occ.mean(0).min() and occ.mean(0).max() < 0.5  # every AU occurs, none dominates


def test_expression_prototypes_are_the_issue_s():
    names = {name for name, *_ in sf.PROTOTYPES}
    assert names == {"happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt", "neutral", "single"}
    rng = np.random.default_rng(1)
    for _ in range(200):
        name, apex = sf.sample_expression(rng)
        if name == "anger":
            assert {4, 7} <= set(apex) and set(apex) & {23, 24}
        if name == "single":
            assert len(apex) == 1
        assert all(1.5 <= v <= 5 for v in apex.values())


def test_world_structure_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    world = sf.load_world(TINY, progress=False)
    n = TINY.n_images
    assert world.images.shape == (n, 32, 32, 3)
    assert world.intensities.shape == (n, len(ALL_AUS))
    assert (np.bincount(world.subject) == TINY.n_tasks * TINY.frames_per_task).all()
    files = list((tmp_path / "synthfacs").glob("*.npz"))
    assert len(files) == 1
    # a second call loads the file instead of rendering
    monkeypatch.setattr(sf, "generate_world", lambda *a, **k: pytest.fail("should have loaded the cache"))
    again = sf.load_world(TINY, progress=False)
    np.testing.assert_array_equal(again.images, world.images)


def test_stale_or_corrupt_cache_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    world = sf.load_world(TINY, progress=False)
    path = next((tmp_path / "synthfacs").glob("*.npz"))
    path.write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="rebuilding"):
        again = sf.load_world(TINY, progress=False)
    np.testing.assert_array_equal(again.images, world.images)
    other = DataConfig(**{**vars(TINY), "seed": 8})
    assert not np.array_equal(sf.load_world(other, progress=False).images, world.images)
    assert len(list((tmp_path / "synthfacs").glob("*.npz"))) == 2  # keyed by config hash


def test_build_dataset_labels_and_subject_exclusive_folds(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = sf.build_dataset(cfg=TINY, aus="bp4d", progress=False)
    assert ds.aus == BP4D_AUS and ds.labels.shape == (TINY.n_images, 12)
    cols = [ALL_AUS.index(a) for a in BP4D_AUS]
    np.testing.assert_array_equal(ds.labels, (ds.meta["intensities"][:, cols] >= 1).astype(np.int8))
    train, test = ds.fold(1)
    assert not set(train.subjects) & set(test.subjects)
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and float(item["image"].max()) <= 1.0


def test_region_maps_are_measured_where_the_au_acts():
    maps = sf.au_region_maps(size=32, n_identities=4)
    assert set(maps) == set(ALL_AUS)
    for au, m in maps.items():
        assert m.shape == (32, 32) and m.max() > 0
        box = sf.au_box_mask(au, 32)
        assert m[~box].max() == 0
    # brows act above the mouth and the mouth below the brows
    rows = lambda m: np.nonzero(m.sum(1))[0].mean()  # noqa: E731
    assert rows(maps[1]) < rows(maps[7]) < rows(maps[9]) < rows(maps[12]) < rows(maps[17])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="AU3"):
        sf.au_vector({3: 1.0})
    with pytest.raises(ValueError, match="0-5"):
        sf.au_vector({12: 7.0})
    with pytest.raises(ValueError, match="unknown identity"):
        sf.make_identity(nose_size=1.0)
    with pytest.raises(ValueError, match="expected identities"):
        sf.render_faces(np.zeros((2, 3)), np.zeros((2, 15)), np.zeros((2, len(sf.NUISANCE_PARAMS))), [0, 1])


def test_recording_conditions_are_per_subject_session():
    """Background, light and camera belong to the subject's session, not to the task (a per-task
    background would let a model recognise the task, and so its expression, from the background)."""
    world = sf.generate_world(TINY, progress=False)
    cols = [sf.NU_INDEX[k] for k in ("bg_r", "bg_g", "bg_b", "bg2_r", "bg2_g", "bg2_b", "light_strength", "noise", "blur")]
    for s in range(TINY.n_subjects):
        session = world.nuisances[world.subject == s][:, cols]
        assert np.allclose(session, session[0])  # identical over all tasks and frames of the subject
    firsts = np.stack([world.nuisances[world.subject == s][0, cols] for s in range(TINY.n_subjects)])
    assert len(np.unique(firsts.round(4), axis=0)) == TINY.n_subjects  # different between subjects
    key = sf.world_key(TINY)
    assert key["renderer"] == sf.RENDERER_VERSION and key["synthfacs"]["n_subjects"] == TINY.n_subjects


def test_au_visibility_grows_with_intensity():
    vis = sf.au_visibility(size=32, n_identities=8, intensities=(1, 3, 5))
    assert vis.shape == (len(ALL_AUS), 3) and (vis > 0).all()
    assert (np.diff(vis, axis=1) > 0).all()  # a stronger AU changes its region more
    assert vis[ALL_AUS.index(26), 2] > vis[ALL_AUS.index(14), 2]  # a dropped jaw vs a dimple


def test_face_corpus_is_unlabelled_deterministic_per_face_and_new_people():
    corpus = sf.FaceCorpus(50, size=32, seed=3)
    batch = corpus.batch_images([4, 9, 4])
    assert batch.shape == (3, 32, 32, 3) and batch.dtype == np.uint8 and len(corpus) == 50
    np.testing.assert_array_equal(batch[0], batch[2])  # face 4 is face 4, whatever the batch
    np.testing.assert_array_equal(corpus.batch_images([9])[0], batch[1])
    assert not np.array_equal(sf.FaceCorpus(50, size=32, seed=4).batch_images([4])[0], batch[0])
    assert not hasattr(corpus, "labels")
    world = sf.generate_world(TINY, progress=False)
    corpus_ids = np.stack([corpus.face_parameters(i)[0] for i in range(50)])
    assert not (np.abs(corpus_ids[:, None] - world.identities[None]).max(-1) < 1e-6).any()  # no shared person
    with pytest.raises(IndexError, match="outside the corpus of 50"):
        corpus.face_parameters(50)


def test_every_au_is_visible_against_identity_at_apex_and_subtle_at_trace():
    """Renderer v3's calibration (issue 12): at intensity 5 each AU changes its region at least as much
    as changing the person does; at intensity 1 (FACS A, a trace) at most half as much."""
    vis = sf.au_visibility(size=64, n_identities=32, intensities=(1, 5))  # (15, 2)
    for row, au in enumerate(ALL_AUS):
        assert vis[row, 1] >= 1.0, f"AU{au} at intensity 5: visibility {vis[row, 1]:.2f} < 1.0"
        assert vis[row, 0] <= 0.5, f"AU{au} at intensity 1: visibility {vis[row, 0]:.2f} > 0.5"


def test_studio_background_is_shared_and_plain():
    """One studio for all subjects: the backdrop differs between sessions only a little."""
    rng = np.random.default_rng(0)
    bgs = np.stack([sf.sample_session(rng)[sf.NU_INDEX["bg_r"]:] for _ in range(200)])  # (200, 6)
    assert bgs.std(0).max() < 0.05
    np.testing.assert_allclose(bgs[:, :3].mean(0), sf.STUDIO_BACKGROUND[0], atol=0.01)
