"""Tests for occfau_lib.student and occfau_lib.distill: the method's student and its losses."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from occfau_lib import distill, mae, metrics, student, teacher, train
from occfau_lib.config import INFERENCE_BATCH, DistillConfig, MAEConfig, TeacherConfig
from occfau_lib.data import ArrayDataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors

MAE_CFG = MAEConfig(img_size=32, patch_size=8, hidden_size=48, num_layers=2, num_heads=3,
                    decoder_hidden_size=32, decoder_layers=1, decoder_heads=2)
T_CFG = TeacherConfig(backbone="resnet18", feature_stage=1, width=16, k_neighbours=2)
AUS = (1, 2, 4, 12)
L = MAE_CFG.num_patches  # 16


def make_mae(seed: int = 0):
    torch.manual_seed(seed)
    model = mae.build_mae(MAE_CFG)
    with torch.no_grad():  # random, non-trivial weights (a fresh MAE has several zero tensors)
        gen = torch.Generator().manual_seed(seed)
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.2
            p.copy_(1 + noise if name.endswith("weight") and p.dim() == 1 else noise)
    return model.eval()


def make_teacher(seed: int = 0):
    torch.manual_seed(seed)
    return teacher.Teacher(T_CFG, AUS, 32).eval()


def toy_dataset(n_per_subject: int = 8) -> ArrayDataset:
    """Six subjects; AU k present when bright square k (one patch) is drawn."""
    rng = np.random.default_rng(0)
    n = 6 * n_per_subject
    labels = rng.integers(0, 2, (n, len(AUS))).astype(np.int8)
    imgs = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    for k in range(len(AUS)):
        r, c = divmod(k, 2)
        imgs[labels[:, k] == 1, 8 + 8 * r: 16 + 8 * r, 8 + 8 * c: 16 + 8 * c] = 230
    return ArrayDataset(imgs, labels, [f"S{i % 6}" for i in range(n)], AUS, name="toy")


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def test_kd_loss_by_hand():
    s = torch.tensor([[3.0, 4.0], [1.0, 0.0]], requires_grad=True)
    t = torch.tensor([[4.0, 3.0], [0.0, 2.0]], requires_grad=True)
    # normalised: (0.6, 0.8) vs (0.8, 0.6) -> 0.04 + 0.04; (1, 0) vs (0, 1) -> 1 + 1; mean over the 4 elements
    assert distill.kd_loss(s, t, normalize=True).item() == pytest.approx((0.08 + 2.0) / 4)
    # raw: (1 + 1) and (1 + 4)
    assert distill.kd_loss(s, t, normalize=False).item() == pytest.approx((2 + 5) / 4)
    distill.kd_loss(s, t, normalize=True).backward()
    assert s.grad is not None and t.grad is None  # the teacher is a target, not trained
    with pytest.raises(ValueError, match="do not match"):
        distill.kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_distill_loss_weights_select_the_ablation():
    g = torch.Generator().manual_seed(0)

    def out():
        return teacher.TeacherOutput(torch.rand(2, 3, generator=g), torch.randn(2, 3, 4, generator=g),
                                     torch.randn(2, 3, 3, 4, generator=g), torch.randn(2, 3, 3, 4, generator=g))

    s, t = out(), out()
    y = torch.tensor([[1, 0, -1], [0, 1, 1]])
    full, parts = distill.distill_loss(s, t, y, None, DistillConfig(node_weight=2.0, edge_weight=3.0, edge_ce_weight=0.5))
    assert full.item() == pytest.approx(parts["wa"] + 2 * parts["node"] + 3 * parts["edge"] + 0.5 * parts["edge_ce"],
                                        rel=1e-5)
    none, _ = distill.distill_loss(s, t, y, None, DistillConfig(node_weight=0, edge_weight=0, edge_ce_weight=0))
    assert none.item() == pytest.approx(teacher.wa_loss(s.probs, y).item())
    assert parts["node"] == pytest.approx(distill.kd_loss(s.node, t.node).item())


# --------------------------------------------------------------------------------------------
# The student
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mapping", student.MAPPINGS)
def test_student_shapes_and_hidden_patches_are_never_seen(mapping):
    model = student.Student(make_mae(), make_teacher(), mapping=mapping).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    visible = torch.ones(3, L, dtype=torch.bool)
    visible[:, :6] = False
    out = model(x, visible)
    N, C = len(AUS), T_CFG.width
    assert out.probs.shape == (3, N) and out.node.shape == (3, N, C) and out.edge.shape == (3, N, N, C)
    scribbled = x.clone()
    scribbled[:, :, :8, :] = torch.rand(3, 3, 8, 32)  # the first grid row = patches 0-3, all hidden
    again = model(scribbled, visible)
    assert torch.allclose(out.probs, again.probs, atol=1e-6) and torch.allclose(out.edge, again.edge, atol=1e-6)
    assert not torch.allclose(model(scribbled, None).probs, model(x, None).probs)


@pytest.mark.parametrize("mapping", student.MAPPINGS)
def test_student_batches_mixed_visible_counts_like_single_faces(mapping):
    model = student.Student(make_mae(), make_teacher(), mapping=mapping).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    visible = torch.zeros(3, L, dtype=torch.bool)
    for i, count in enumerate((16, 9, 3)):
        visible[i, torch.randperm(L, generator=torch.Generator().manual_seed(i))[:count]] = True
    batch = model(x, visible)
    for i in range(3):
        alone = model(x[i: i + 1], visible[i: i + 1])
        assert torch.allclose(batch.probs[i], alone.probs[0], atol=1e-5)
        assert torch.allclose(batch.edge[i], alone.edge[0], atol=1e-5)


@pytest.mark.parametrize("mapping", student.MAPPINGS)
def test_frozen_encoder_stays_frozen_and_a_tiny_student_overfits(mapping):
    ds = toy_dataset()
    encoder = make_mae()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    tch = make_teacher()
    lr = {"linear": 3e-3, "attention": 1e-3}[mapping]  # transformer layers diverge at the linear map's rate
    cfg = DistillConfig(epochs=100, batch_size=16, lr=lr, clean_rate=1.0, augment=False, node_weight=0.0,
                        edge_weight=0.0, mapping=mapping)  # the mapping alone must be able to fit the labels
    model, history = distill.train_student(ds, encoder, tch, cfg, progress=False, log_every=5)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, before[k]), f"encoder weight {k} changed"
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert len(history["node"]) == len(history["loss"])
    probs = student.predict(model, ds.images, np.ones((len(ds), L), bool))["probs"]
    assert metrics.average_f1(ds.labels, probs) > 0.95


def test_node_kd_pulls_student_nodes_towards_the_teacher():
    ds = toy_dataset(n_per_subject=4)
    tch = make_teacher(seed=3)
    cfg = DistillConfig(epochs=15, batch_size=8, lr=3e-3, augment=False, node_weight=1.0, edge_weight=0.0)
    with_kd, h_kd = distill.train_student(ds, make_mae(), tch, cfg, progress=False, log_every=3)
    without, h_no = distill.train_student(ds, make_mae(), tch, replace(cfg, node_weight=0.0), progress=False,
                                          log_every=3)
    assert h_kd["node"][-1] < 0.5 * h_kd["node"][0]  # the distilled distance falls ...
    assert h_kd["node"][-1] < h_no["node"][-1]  # ... and ends below the undistilled student's


def test_trained_student_is_cached_by_teacher_and_encoder(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    ds = toy_dataset(n_per_subject=4)
    calls = []
    real = distill.train_student
    monkeypatch.setattr(distill, "train_student", lambda *a, **k: calls.append(1) or real(*a, **k))
    encoder, tch = make_mae(), make_teacher()
    cfg = DistillConfig(epochs=1, batch_size=8, augment=False)
    s1, _ = distill.trained_student(ds, 1, {"toy": 1}, encoder, tch, cfg, progress=False)
    s2, _ = distill.trained_student(ds, 1, {"toy": 1}, encoder, tch, cfg, progress=False)
    assert len(calls) == 1
    for (k, a), b in zip(s1.head_state().items(), s2.head_state().values()):
        assert torch.equal(a, b), k
    distill.trained_student(ds, 1, {"toy": 1}, encoder, make_teacher(seed=9), cfg, progress=False)
    distill.trained_student(ds, 1, {"toy": 1}, make_mae(seed=5), tch, cfg, progress=False)
    assert len(calls) == 3  # another teacher, another encoder: retrained
    stored = torch.load(next((tmp_path / "cache").glob("student-*.pt")), weights_only=True)
    assert sorted({k.split(".")[0] for k in stored["head"]}) == [
        "edge_bias", "edge_map", "edge_weight", "node_map", "project", "prototypes"]  # not the encoder
    fresh = student.Student(encoder, tch)
    with pytest.raises(ValueError, match="does not match the mapping network"):
        fresh.load_head_state({k: v for k, v in stored["head"].items() if k != "node_map.bias"})


def test_student_reads_with_the_teachers_classifiers_and_starts_at_its_mean():
    tch = make_teacher(seed=4)
    model = student.Student(make_mae(), tch, depth=1).eval()
    N, C = len(AUS), T_CFG.width
    node, edge = torch.randn(N, C), torch.randn(N, N, C)
    model.start_at(node, edge)
    with torch.no_grad():  # a zero mapping now outputs the mean features exactly
        for m in (model.project, model.node_map, model.edge_map[0], model.edge_map[1]):
            m.weight.zero_()
        model.project.bias.zero_()
    out = model(torch.rand(2, 3, 32, 32), None)
    assert torch.allclose(out.node, node.expand(2, -1, -1)) and torch.allclose(out.edge, edge.expand(2, -1, -1, -1))
    want = torch.nn.functional.cosine_similarity(node, torch.relu(tch.head.prototypes), dim=-1).clamp(0, 1)
    assert torch.allclose(out.probs[0], want, atol=1e-6)
    assert torch.allclose(out.edge_logits[0], tch.head.edge_classifier(edge), atol=1e-5)
    assert not any(b.requires_grad for b in (model.prototypes, model.edge_weight, model.edge_bias))


def test_interrupted_student_resumes_to_the_uninterrupted_result(interrupt, tmp_path):
    ds = toy_dataset(n_per_subject=4)  # 24 faces, batches of 8: 3 steps per epoch
    encoder, tch = make_mae(), make_teacher()
    cfg = DistillConfig(epochs=3, batch_size=8, lr=3e-3, augment=True, clean_rate=0.3)
    straight, h_straight = distill.train_student(ds, encoder, tch, cfg, progress=False, log_every=1)
    ckpt = tmp_path / "student.partial.pt"
    interrupt(train, 5)  # killed during epoch 2
    with pytest.raises(KeyboardInterrupt):
        distill.train_student(ds, encoder, tch, cfg, progress=False, log_every=1, resume_path=ckpt)
    resumed, h_resumed = distill.train_student(ds, encoder, tch, cfg, progress=False, log_every=1, resume_path=ckpt)
    for (name, a), b in zip(straight.head_state().items(), resumed.head_state().values()):
        assert torch.equal(a, b), name
    assert h_resumed["loss"] == h_straight["loss"]


def test_one_shared_encoder_pass_gives_every_reader_the_same_numbers():
    """compare_methods encodes each occluded batch once (experiments.SharedEncoding) for the
    students (at their depths), the latent probe and reconstruct-then-detect: bit-identical to
    each reader encoding for itself, across more than one batch."""
    from occfau_lib import experiments, occlusion
    from occfau_lib.probe import fit_probe, missing_tokens, probe_probs

    encoder = make_mae()
    ds = toy_dataset(n_per_subject=50)  # 300 faces: several batches of INFERENCE_BATCH rows, the last one short
    occ = occlusion.apply(ds.images, "patches:0.5", MAE_CFG.patch_size, seed=3)
    shared = experiments.SharedEncoding(encoder, {1, None})
    for depth in (1, None):
        model = student.Student(encoder, make_teacher(), depth=depth).eval()
        alone = student.predict(model, occ.images, occ.visible)["probs"]
        assert np.array_equal(student.predict(model, occ.images, occ.visible, encoded=shared(occ, depth))["probs"],
                              alone)
    assert np.array_equal(mae.reconstruct_images(encoder, occ.images, occ.visible, encoded=shared(occ)),
                          mae.reconstruct_images(encoder, occ.images, occ.visible))
    batches = -(-len(occ.images) // INFERENCE_BATCH)
    assert batches > 1 and len(occ.images) % INFERENCE_BATCH
    assert len(shared(occ, 1)) == batches and shared(occ, 1) is shared(occ, 1)  # encoded once per batch
    patch = mae.extract_features(encoder, occ.images, occ.visible, depth=1)["patch"]  # (N, L, D)
    grid = torch.cat([e.on_grid(L) for e in shared(occ, 1)]).numpy()
    assert np.array_equal(grid, patch)
    probe = fit_probe(patch.reshape(len(patch), -1), ds.labels, epochs=1)
    missing = missing_tokens(occ.visible, MAE_CFG.hidden_size)
    assert np.array_equal(probe_probs(probe, grid.reshape(len(grid), -1), missing),
                          probe_probs(probe, patch.reshape(len(patch), -1), missing))


# --------------------------------------------------------------------------------------------
# Reading the latent: attention mapping, partial fine-tuning
# --------------------------------------------------------------------------------------------
def test_encoding_continues_block_by_block():
    encoder = make_mae()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    visible = torch.rand(2, L, generator=torch.Generator().manual_seed(6)) > 0.4
    lower = mae.encode(encoder, x, visible, depth=1)
    assert torch.allclose(mae.run_blocks(encoder, lower, 1).tokens, mae.encode(encoder, x, visible).tokens, atol=1e-6)
    assert torch.allclose(mae.run_blocks(encoder, mae.encode(encoder, x, visible, depth=0), 0, 1).tokens,
                          lower.tokens, atol=1e-6)
    with pytest.raises(ValueError, match="start <= stop"):
        mae.run_blocks(encoder, lower, 2, 1)


def test_fine_tuned_student_trains_its_own_copy_of_the_top_blocks():
    ds = toy_dataset(n_per_subject=4)
    encoder, tch = make_mae(), make_teacher()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    cfg = DistillConfig(epochs=2, batch_size=8, lr=3e-3, augment=False, depth=2, finetune_blocks=1)
    model, _ = distill.train_student(ds, encoder, tch, cfg, progress=False)
    for k, v in encoder.state_dict().items():  # the encoder other readers share is untouched
        assert torch.equal(v, before[k]), k
    tuned = model.mae.state_dict()
    assert not torch.equal(tuned["vit.layers.1.mlp.fc1.weight"], before["vit.layers.1.mlp.fc1.weight"])
    assert torch.equal(tuned["vit.layers.0.mlp.fc1.weight"], before["vit.layers.0.mlp.fc1.weight"])
    head = model.head_state()
    assert any(k.startswith("mae.vit.layers.1.") for k in head) and not any(k.startswith("mae.vit.layers.0.") for k in head)
    again = student.Student.from_config(encoder, tch, cfg)
    again.load_head_state(head)
    visible = np.ones((len(ds), L), bool)
    visible[::2, :5] = False
    alone = student.predict(model, ds.images, visible)["probs"]
    assert np.array_equal(student.predict(again.eval(), ds.images, visible)["probs"], alone)
    # a shared frozen encoding at the student's input depth gives the same answers
    from occfau_lib import experiments, occlusion
    occ = occlusion.Occluded(ds.images, np.zeros(ds.images.shape[:3], bool), visible, "test")
    shared = experiments.SharedEncoding(encoder, {model.input_depth})
    assert model.input_depth == 1
    assert np.array_equal(student.predict(model, occ.images, occ.visible, encoded=shared(occ, 1))["probs"], alone)


def test_fine_tuned_blocks_learn_at_layer_decayed_rates():
    model = student.Student(make_mae(), make_teacher(), depth=2, finetune_blocks=2)
    groups = model.parameter_groups(0.5)
    assert [g["scale"] for g in groups] == [1.0, 0.5, 0.25]  # mapping, block 2, block 1
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    opt = torch.optim.AdamW(groups, lr=1.0)
    schedule = DistillConfig(epochs=1, batch_size=2, lr=0.2)
    run = train.Run("test", model, opt, n=2, schedule=schedule, config={}, progress=False)
    run.set_lr(opt, model(torch.rand(2, 3, 32, 32), None).probs.sum())
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.1, 0.05])
    with pytest.raises(ValueError, match="finetune_blocks must be in 0..2"):
        student.Student(make_mae(), make_teacher(), depth=2, finetune_blocks=3)
    with pytest.raises(ValueError, match="finetune_blocks"):
        DistillConfig(depth=2, finetune_blocks=3)
    with pytest.raises(ValueError, match="layer_decay"):
        DistillConfig(layer_decay=0.0)


@pytest.mark.parametrize("mapping, relu", [("attention", None), ("linear", True)])
def test_relu_nodes_never_give_a_negative_cosine(mapping, relu):
    """A present AU always gets a gradient: with non-negative nodes (the teacher's are) the cosine
    to the non-negative prototypes is never below 0, where the probabilities' clamp is flat."""
    model = student.Student(make_mae(), make_teacher(), mapping=mapping, node_relu=relu).eval()
    out = model(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(7)), None)
    assert (out.node >= 0).all()
    raw = torch.nn.functional.cosine_similarity(out.node, model.prototypes[None], dim=-1)
    assert (raw >= 0).all() and torch.equal(out.probs, raw.clamp(0, 1))


def test_unset_options_leave_cache_keys_as_they_were():
    from occfau_lib import cache

    key = cache.config_dict(DistillConfig())
    assert "finetune_blocks" not in key and "node_relu" not in key and key["mapping"] == "linear"
    assert cache.config_dict(DistillConfig(depth=2, finetune_blocks=1))["finetune_blocks"] == 1
