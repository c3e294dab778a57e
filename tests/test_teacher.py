"""Tests for occfau_lib.teacher: the ME-GraphAU-style AU-relation-graph teacher."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occfau_lib import metrics, teacher, train
from occfau_lib.config import EngineConfig, TeacherConfig, TeacherTrainConfig
from occfau_lib.data import ArrayDataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors


TINY = TeacherConfig(backbone="resnet18", feature_stage=1, width=16, k_neighbours=2)  # 8x8 tokens at 32 px
AUS = (1, 2, 4, 12, 15)


def make_teacher(seed: int = 0) -> teacher.Teacher:
    torch.manual_seed(seed)
    model = teacher.Teacher(TINY, AUS, 32)
    # non-trivial batch-norm statistics, so the AU-indexed running buffers matter in eval mode
    gen = torch.Generator().manual_seed(seed)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
        elif name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight") or name.endswith("norm.bias"):
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_output_shapes_and_ranges():
    model = make_teacher()
    out = model(images(3))
    N, C = len(AUS), TINY.width
    assert out.probs.shape == (3, N) and out.node.shape == (3, N, C)
    assert out.edge.shape == (3, N, N, C) and out.edge_logits.shape == (3, N, N, 4)
    assert (out.probs >= 0).all() and (out.probs <= 1).all()
    assert torch.allclose(torch.sigmoid(out.logits), out.probs.clamp(1e-6, 1 - 1e-6), atol=1e-5)
    assert model.tokens(images(2)).shape == (2, 64, model.backbone.feature_info.channels()[-1])


def test_wrong_channels_or_size_are_refused():
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\); got shape \(2, 1, 32, 32\)"):
        make_teacher()(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 64, 64\)"):
        make_teacher()(torch.rand(2, 3, 64, 64))


def _permute_au_axes(state: dict, perm: torch.Tensor, n: int) -> dict:
    """The state dict of the same teacher with its AUs listed in the order ``perm``."""
    pair = (perm[:, None] * n + perm[None, :]).reshape(-1)  # edge (i, j) -> (perm[i], perm[j])
    out = {}
    for key, value in state.items():
        if key.startswith("head.") and value.ndim >= 1 and value.shape[0] == n and "classifier" not in key:
            out[key] = value[perm]  # AU blocks, per-AU batch norms, prototypes
        elif key.startswith("head.") and value.ndim == 1 and value.shape[0] == n * n:
            out[key] = value[pair]  # per-edge batch norms
        else:
            out[key] = value
    return out


def test_au_order_is_a_permutation_symmetry():
    """Listing the AUs in another order (and permuting every AU-indexed weight with them) permutes
    the outputs the same way: no AU has a special position in the graph."""
    model = make_teacher(seed=1)
    n = len(AUS)
    perm = torch.tensor([3, 0, 4, 1, 2])
    other = teacher.Teacher(TINY, tuple(AUS[i] for i in perm), 32)
    other.load_state_dict(_permute_au_axes(model.state_dict(), perm, n))
    other.eval()
    x = images(4, seed=2)
    a, b = model(x), other(x)
    assert torch.allclose(b.probs, a.probs[:, perm], atol=1e-5)
    assert torch.allclose(b.node, a.node[:, perm], atol=1e-5)
    assert torch.allclose(b.edge, a.edge[:, perm][:, :, perm], atol=1e-5)
    assert torch.allclose(b.edge_logits, a.edge_logits[:, perm][:, :, perm], atol=1e-5)
    # and the model is not trivially symmetric: the AUs do get different outputs
    assert not torch.allclose(a.probs[:, 0], a.probs[:, 1])


def test_facial_graph_keeps_top_k_neighbours():
    graph = teacher.FacialGraph(4, 3, k=2)
    v = torch.tensor([[[1.0, 0, 0], [0.9, 0.1, 0], [0, 1.0, 0], [0, 0, 1.0]]])
    adj = graph.adjacency(v)[0]
    assert adj.shape == (4, 4)
    assert ((adj > 0).sum(1) == 2).all()  # exactly K neighbours per node (itself included)
    assert adj[0, 1] > 0 and adj[0, 2] == 0 and adj[0, 3] == 0


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def test_wa_loss_by_hand():
    p = torch.tensor([[0.8, 0.3, 0.6]], requires_grad=True)
    y = torch.tensor([[1, 0, -1]])
    w = torch.tensor([2.0, 0.5, 0.5])
    loss = teacher.wa_loss(p, y, w)
    expected = -(2.0 * math.log(0.8) + 0.5 * 0.3 * math.log(0.7)) / 2  # the unknown AU is left out
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    # the negative term's probability factor is a stop-gradient: d/dp = w * p / (1 - p) / n_known
    assert p.grad[0, 1].item() == pytest.approx(0.5 * 0.3 / 0.7 / 2, rel=1e-4)
    assert p.grad[0, 0].item() == pytest.approx(-2.0 / 0.8 / 2, rel=1e-4)
    assert p.grad[0, 2].item() == 0  # unknown label: no gradient
    # unweighted, and confident negatives cost almost nothing
    assert teacher.wa_loss(torch.tensor([[0.01]]), torch.tensor([[0]])).item() < 1e-3


def test_au_weights_inverse_positive_rate():
    labels = np.array([[1, 1], [0, 1], [0, 1], [-1, 1]])  # rates 1/3 and 1
    w = teacher.au_weights(labels)
    assert w.sum().item() == pytest.approx(2.0)
    assert w[0].item() == pytest.approx(3 * w[1].item())


def test_edge_labels_and_loss():
    y = torch.tensor([[1, 0, -1]])
    states = teacher.edge_labels(y)[0]
    assert states.tolist() == [[3, 2, -1], [1, 0, -1], [-1, -1, -1]]
    logits = torch.zeros(1, 3, 3, 4)
    assert teacher.edge_loss(logits, y).item() == pytest.approx(math.log(4))  # uniform over 4 states
    logits[0, 0, 0, 3] = logits[0, 0, 1, 2] = logits[0, 1, 0, 1] = logits[0, 1, 1, 0] = 50.0
    logits[0, 2, :, 0] = -50.0  # pairs with the unknown AU are ignored however wrong
    assert teacher.edge_loss(logits, y).item() < 1e-6


# --------------------------------------------------------------------------------------------
# Training, prediction and the cache
# --------------------------------------------------------------------------------------------
def toy_dataset(n_per_subject: int = 8, size: int = 32) -> ArrayDataset:
    """Six subjects; AU k present when bright square k is drawn (a learnable toy task)."""
    rng = np.random.default_rng(0)
    n = 6 * n_per_subject
    labels = rng.integers(0, 2, (n, len(AUS))).astype(np.int8)
    imgs = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    for k in range(len(AUS)):
        r, c = divmod(k, 3)
        imgs[labels[:, k] == 1, 4 + 9 * r: 11 + 9 * r, 4 + 9 * c: 11 + 9 * c] = 230
    labels[0, 0] = -1  # an unknown label must not break anything
    subjects = [f"S{i % 6}" for i in range(n)]
    return ArrayDataset(imgs, labels, subjects, AUS, name="toy")


def test_tiny_teacher_overfits_a_tiny_batch():
    ds = toy_dataset()
    cfg = TeacherTrainConfig(epochs=60, batch_size=16, lr=3e-3, augment=False)
    model, history = teacher.train_teacher(ds, TINY, cfg, progress=False, log_every=5)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    probs = teacher.predict(model, ds.images)["probs"]
    assert metrics.average_f1(ds.labels, probs) > 0.95
    # inference is per face (batch norm in eval mode): the batch size, INFERENCE_BATCH or any other,
    # never changes an answer, so the notebooks' numbers do not depend on it
    for batch_size in (5, len(ds)):
        np.testing.assert_allclose(teacher.predict(model, ds.images, batch_size=batch_size)["probs"], probs,
                                   rtol=0, atol=1e-6)


def test_nan_loss_is_an_error(monkeypatch):
    monkeypatch.setattr(teacher, "teacher_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(FloatingPointError, match="teacher loss became nan at step 0"):
        teacher.train_teacher(toy_dataset(), TINY, TeacherTrainConfig(epochs=2, batch_size=16), progress=False)


def test_augment_shifts_and_flips_deterministically():
    x = images(8, size=32)
    a = teacher.augment(x, torch.Generator().manual_seed(0))
    b = teacher.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_trained_teacher_is_cached_per_config(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    ds = toy_dataset(n_per_subject=6)
    calls = []
    real = teacher.train_teacher

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher, "train_teacher", counting)
    cfg = TeacherTrainConfig(epochs=1, batch_size=8, augment=False)
    key = {"toy": 1}
    m1, _ = teacher.trained_teacher(ds, 1, key, TINY, cfg, progress=False)
    m2, _ = teacher.trained_teacher(ds, 1, key, TINY, cfg, progress=False)
    assert len(calls) == 1
    assert set(calls[0].subjects) == set(ds.fold(1)[0].subjects)  # trained on the fold's training subjects
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    teacher.trained_teacher(ds, 2, key, TINY, cfg, progress=False)  # another fold
    teacher.trained_teacher(ds, 1, key, TINY, TeacherTrainConfig(epochs=2, batch_size=8), progress=False)
    assert len(calls) == 3
    # a corrupt checkpoint is rebuilt with a warning, never used
    for path in (tmp_path / "cache").glob("teacher-*.pt"):
        path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="cannot read"):
        teacher.trained_teacher(ds, 1, key, TINY, cfg, progress=False)
    assert len(calls) == 4


def test_backbone_weights_from_a_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no backbone weights"):
        teacher.Teacher(TeacherConfig("resnet18", 1, 16, 2, str(tmp_path / "missing.pth")), AUS, 32)
    source = make_teacher(seed=3)
    torch.save(source.backbone.state_dict(), tmp_path / "r18.pth")
    loaded = teacher.Teacher(TeacherConfig("resnet18", 1, 16, 2, str(tmp_path / "r18.pth")), AUS, 32)
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[k], v)
    torch.save({"state_dict": {"fc.weight": torch.zeros(3, 3)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no weight"):
        teacher.Teacher(TeacherConfig("resnet18", 1, 16, 2, str(tmp_path / "other.pth")), AUS, 32)


def test_occlusion_augmented_teacher_trains_on_occluded_faces(monkeypatch):
    seen = []
    real = teacher.training_occlusion

    def spy(images, patch_size, rng, clean_rate=0.0):
        out = real(images, patch_size, rng, clean_rate)
        seen.append((patch_size, (out.images != images).any()))
        return out

    monkeypatch.setattr(teacher, "training_occlusion", spy)
    ds = toy_dataset(n_per_subject=4)
    teacher.train_teacher(ds, TINY, TeacherTrainConfig(epochs=1, batch_size=8, augment=False), progress=False)
    assert seen == []  # the plain teacher sees clean faces only
    teacher.train_teacher(ds, TINY, TeacherTrainConfig(epochs=1, batch_size=8, augment=False, occlusion_patch=8),
                          progress=False)
    assert len(seen) == len(ds) // 8 and all(p == 8 and changed for p, changed in seen)


def test_fine_tuning_starts_from_init_and_is_cached_separately(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    ds = toy_dataset(n_per_subject=4)
    start = make_teacher(seed=7)
    frozen = TeacherTrainConfig(epochs=1, batch_size=8, lr=0.0, weight_decay=0.0, augment=False, occlusion_patch=8)
    tuned, _ = teacher.train_teacher(ds, TINY, frozen, progress=False, init=start)
    for (name, a), b in zip(start.named_parameters(), tuned.parameters()):
        assert torch.equal(a, b), name  # lr 0: the weights are the init's
    cfg = TeacherTrainConfig(epochs=1, batch_size=8, augment=False)
    teacher.trained_teacher(ds, 1, {"toy": 1}, TINY, cfg, progress=False)
    teacher.trained_teacher(ds, 1, {"toy": 1}, TINY, cfg, progress=False, init=start)
    teacher.trained_teacher(ds, 1, {"toy": 1}, TINY, cfg, progress=False, init=start)
    assert len(list((tmp_path / "cache").glob("teacher-*.pt"))) == 2  # scratch and fine-tuned: two entries


def test_interrupted_teacher_resumes_to_the_uninterrupted_result(interrupt, tmp_path):
    ds = toy_dataset(n_per_subject=4)  # 24 faces, batches of 8: 3 steps per epoch
    cfg = TeacherTrainConfig(epochs=3, batch_size=8, lr=3e-3, occlusion_patch=8)  # augmentation + occlusion RNGs
    straight, h_straight = teacher.train_teacher(ds, TINY, cfg, progress=False, log_every=1)
    ckpt = tmp_path / "teacher.partial.pt"
    interrupt(train, 4)  # killed during epoch 2, after epoch 1 was checkpointed
    with pytest.raises(KeyboardInterrupt):
        teacher.train_teacher(ds, TINY, cfg, progress=False, log_every=1, resume_path=ckpt)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    resumed, h_resumed = teacher.train_teacher(ds, TINY, cfg, progress=False, log_every=1, resume_path=ckpt)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert h_resumed["loss"] == h_straight["loss"] and h_resumed["step"] == list(range(1, 10))


def test_loader_workers_change_nothing_in_the_result():
    """Batches decoded by 2 loader processes train the same teacher as loading in the training
    process: each epoch's order is drawn before its augmentations, workers only fetch."""
    ds = toy_dataset(n_per_subject=4)
    cfg = TeacherTrainConfig(epochs=2, batch_size=8, lr=3e-3, occlusion_patch=8)
    inline, h_inline = teacher.train_teacher(ds, TINY, cfg, progress=False, log_every=1)
    engine = train.Engine("cpu", EngineConfig(workers=2))
    loaded, h_loaded = teacher.train_teacher(ds, TINY, cfg, engine, progress=False, log_every=1)
    for (name, a), b in zip(inline.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert h_loaded["loss"] == h_inline["loss"]


def test_bf16_teacher_trains_close_to_fp32_and_is_cached_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    ds = toy_dataset(n_per_subject=4)
    cfg = TeacherTrainConfig(epochs=2, batch_size=8, lr=3e-3)
    fp32, h32 = teacher.trained_teacher(ds, 1, {"toy": 1}, TINY, cfg, progress=False)
    bf16, h16 = teacher.trained_teacher(ds, 1, {"toy": 1}, TINY, cfg, train.Engine("cpu", EngineConfig("bf16")),
                                        progress=False)
    assert len(list((tmp_path / "cache").glob("teacher-*.pt"))) == 2  # the precision is part of the key
    assert all(math.isfinite(v) for v in h16["loss"])
    assert h16["loss"] != h32["loss"]  # really computed in bf16 ...
    assert np.allclose(h16["loss"], h32["loss"], rtol=0.1, atol=0.02)  # ... and close to fp32
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # weights stay fp32 (autocast)
