"""Node- and edge-level knowledge distillation from the AU-relation-graph teacher to the student.

Taught in notebook 04. For every training face the frozen teacher (eval mode) sees the **clean**
face and gives its final node features ``(B, N, C)`` and edge features ``(B, N, N, C)``; the
student sees the same face (same shift and flip) **occluded** by a draw from the training mixture
(:func:`occlusion.training_specs`), encodes only the visible patches, and is trained to

    L = L_WA(student probs, labels) + alpha * KD(node) + beta * KD(edge) + lambda * CE(student edges)

where KD is the mean squared error between L2-normalised features (the classifiers compare
directions, so directions are what is distilled [ours]; ``normalize=False`` uses raw features).
alpha = 0, beta = 0 and both give the ablations "no KD", "edge only", "node only".
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch
from tqdm.auto import tqdm

from .cache import config_hash, data_root, load_or_build
from .config import DistillConfig
from .mae import to_tensor, to_uint8
from .occlusion import training_occlusion
from .student import Student
from .teacher import TeacherOutput, au_weights, augment, edge_loss, wa_loss
from .train import batches, lr_at, new_history, optimiser_step, record, steps_per_epoch

#: Bump when the student or its training changes in a way the config does not capture.
DISTILL_VERSION = 1


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean squared error between feature tensors (..., C) of equal shape, optionally after L2
    normalisation of each feature vector. The teacher side is detached (it is a target)."""
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} do not match the teacher's {tuple(teacher.shape)}")
    teacher = teacher.detach()
    if normalize:
        student = torch.nn.functional.normalize(student, dim=-1)
        teacher = torch.nn.functional.normalize(teacher, dim=-1)
    return ((student - teacher) ** 2).sum(-1).mean()


def distill_loss(s: TeacherOutput, t: TeacherOutput, labels: torch.Tensor, weights: torch.Tensor | None,
                 cfg: DistillConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's objective and its parts ``{"wa", "node", "edge", "edge_ce"}`` (floats, for logs)."""
    parts = {"wa": wa_loss(s.probs, labels, weights), "node": kd_loss(s.node, t.node, cfg.normalize),
             "edge": kd_loss(s.edge, t.edge, cfg.normalize), "edge_ce": edge_loss(s.edge_logits, labels)}
    total = (parts["wa"] + cfg.node_weight * parts["node"] + cfg.edge_weight * parts["edge"]
             + cfg.edge_ce_weight * parts["edge_ce"])
    return total, {k: v.item() for k, v in parts.items()}


def train_student(ds, mae_model, teacher, cfg: DistillConfig = DistillConfig(), device: str = "cpu",
                  progress: bool = True, log_every: int = 20) -> tuple[Student, dict]:
    """Train a student on every row of ``ds`` (one fold's training part) against ``teacher``
    (trained on the same fold). Returns ``(student in eval mode, history)``; history also logs
    the loss parts (``"wa"``, ``"node"``, ``"edge"``, ``"edge_ce"``) and ``images_per_s``."""
    torch.manual_seed(cfg.seed)
    width, k = teacher.cfg.width, teacher.cfg.k_neighbours
    student = Student(mae_model, ds.aus, width, k).to(device)
    teacher = teacher.to(device).eval()
    weights = au_weights(ds.labels).to(device)
    opt = torch.optim.AdamW(student.head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    per_epoch = steps_per_epoch(len(ds), cfg.batch_size)
    total, warmup = cfg.epochs * per_epoch, int(cfg.warmup_epochs * per_epoch)
    history = {**new_history(), "wa": [], "node": [], "edge": [], "edge_ce": []}
    student.train()
    step, t0 = 0, time.perf_counter()
    bar = tqdm(total=total, desc="student", disable=not progress)
    for rows in batches(len(ds), cfg.batch_size, cfg.epochs, gen):
        clean = to_tensor(ds.batch_images(rows))
        if cfg.augment:
            clean = augment(clean, gen)
        occ = training_occlusion(to_uint8(clean), student.patch_size, rng, cfg.clean_rate)
        with torch.no_grad():
            target = teacher(clean.to(device))
        out = student(to_tensor(occ.images).to(device), occ.visible)
        y = torch.from_numpy(ds.labels[rows]).to(device)
        loss, parts = distill_loss(out, target, y, weights, cfg)
        lr = lr_at(step, total, warmup, cfg.lr)
        loss = optimiser_step(opt, loss, lr, step, "student")
        step += 1
        if step % log_every == 0 or step == total:
            for name, value in parts.items():
                history[name].append(value)
        record(history, bar, step, total, loss, lr, log_every)
    bar.close()
    history["images_per_s"] = step * cfg.batch_size / max(1e-9, time.perf_counter() - t0)
    return student.eval(), history


def trained_student(ds, fold: int, data_key: dict, mae_model, teacher, cfg: DistillConfig = DistillConfig(),
                    device: str = "cpu", progress: bool = True) -> tuple[Student, dict]:
    """Checkpoint or train: the student of subject-exclusive ``fold``, from
    ``data/cache/student-<hash>.pt`` when its stored config matches, else trained and saved
    atomically. The key holds the distillation config, the data, the fold and content hashes of
    the MAE's and the teacher's weights, so a retrained encoder or teacher retrains the student.
    Only the mapping network is stored."""
    from .probe import model_fingerprint

    config = {"distill": asdict(cfg), "data": data_key, "fold": int(fold), "aus": list(ds.aus), "n": int(len(ds)),
              "mae": model_fingerprint(mae_model), "teacher": model_fingerprint(teacher),
              "version": DISTILL_VERSION}
    path = data_root() / "cache" / f"student-{config_hash(config)}.pt"
    train, _ = ds.fold(fold)

    def save(obj, stored: dict, tmp) -> None:
        student, history = obj
        torch.save({"head": student.head_state(), "history": history, "config": stored}, tmp)

    def load(p):
        state = torch.load(p, map_location="cpu", weights_only=True)
        student = Student(mae_model, ds.aus, teacher.cfg.width, teacher.cfg.k_neighbours)
        student.head.load_state_dict(state["head"])
        return (student.to(device).eval(), state["history"]), state["config"]

    return load_or_build(path, config, lambda: train_student(train, mae_model, teacher, cfg, device, progress),
                         save, load)
