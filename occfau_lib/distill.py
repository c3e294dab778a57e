"""Node- and edge-level knowledge distillation from the AU-relation-graph teacher to the student.

Taught in notebook 04. The frozen teacher sees the **clean** face and gives its node ``(B, N, C)``
and edge ``(B, N, N, C)`` features; the student sees the same face **occluded** by a draw from the
training mixture (:func:`occlusion.training_occlusion`) and is trained to

    L = L_WA(student probs, labels) + alpha * KD(node) + beta * KD(edge) + lambda * CE(student edges)

with KD the mean squared error between the features. The student's probabilities come from the
teacher's prototypes, so L_WA too pulls its features into the teacher's space. alpha = 0, beta = 0 or
both give the ablations (:data:`ABLATIONS`).
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from .cache import checkpoint_or_train, model_fingerprint, read_state
from .config import DistillConfig
from .occlusion import training_occlusion
from .patches import to_tensor, to_uint8
from .student import Student
from .teacher import TeacherOutput, au_weights, augment, edge_loss, wa_loss
from .train import Engine, Run

#: Bump when the student or its training changes in a way the config does not capture.
DISTILL_VERSION = 3


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Mean squared error over every element of feature tensors (..., C), the teacher's detached;
    ``normalize``: of L2-normalised feature vectors. The element mean puts a KD weight of 1 on the
    AU loss's scale: summed over the C channels, node KD was ~60x the AU loss and the student
    matched the teacher's features at the expense of recognising AUs."""
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} do not match the teacher's {tuple(teacher.shape)}")
    student, teacher = student.float(), teacher.detach().float()  # fp32 even from a bf16 forward pass
    if normalize:
        student = torch.nn.functional.normalize(student, dim=-1)
        teacher = torch.nn.functional.normalize(teacher, dim=-1)
    return ((student - teacher) ** 2).mean()


def distill_loss(s: TeacherOutput, t: TeacherOutput, labels: torch.Tensor, weights: torch.Tensor | None,
                 cfg: DistillConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's objective and its parts ``{"wa", "node", "edge", "edge_ce"}`` (floats, for logs)."""
    parts = {"wa": wa_loss(s.probs, labels, weights), "node": kd_loss(s.node, t.node, cfg.normalize),
             "edge": kd_loss(s.edge, t.edge, cfg.normalize), "edge_ce": edge_loss(s.edge_logits, labels)}
    total = (parts["wa"] + cfg.node_weight * parts["node"] + cfg.edge_weight * parts["edge"]
             + cfg.edge_ce_weight * parts["edge_ce"])
    return total, {k: v.item() for k, v in parts.items()}


def train_student(ds, mae_model, teacher, cfg: DistillConfig = DistillConfig(), device: str | Engine = "cpu",
                  progress: bool = True, log_every: int = 20, resume_path=None) -> tuple[Student, dict]:
    """Train a student on every row of ``ds`` (one fold's training part) against ``teacher`` (trained
    on the same fold). Returns ``(student in eval mode, history)``; the history logs the loss parts too."""
    engine = Engine.of(device)
    torch.manual_seed(cfg.seed)
    if tuple(ds.aus) != tuple(teacher.aus):
        raise ValueError(f"the dataset's AUs {ds.aus} are not the teacher's {teacher.aus}")
    student = engine.place(Student.from_config(mae_model, teacher, cfg))
    teacher = engine.place(teacher, conv=True).eval()
    with torch.no_grad(), engine.autocast():  # the teacher's average face, from up to 1,024 training faces
        faces = ds.batch_images(np.arange(0, len(ds), max(1, len(ds) // 1024)))
        ref = teacher(engine.batch(to_tensor(faces), conv=True))
    student.start_at(ref.node.float().mean(0), ref.edge.float().mean(0))
    weights = au_weights(ds.labels).to(engine.device)
    # the mapping at cfg.lr, fine-tuned encoder blocks (if any) at decaying rates; the frozen encoder is not among them
    opt = engine.adamw(student.parameter_groups(cfg.layer_decay), cfg.lr, cfg.weight_decay)
    config = {"distill": asdict(cfg), "n": len(ds), "aus": list(ds.aus), **engine.key()}
    run = Run("student", student, opt, n=len(ds), schedule=cfg, config=config, engine=engine,
              resume_path=resume_path, progress=progress, log_every=log_every)
    mine = run.mine  # this process's rows of every batch (all of them without torchrun)
    for epoch in range(run.epoch, cfg.epochs):
        for rows, faces in run.batches(ds.batch_images):
            clean = to_tensor(faces)  # (B, 3, S, S) the whole batch: every process draws the same occlusions
            if cfg.augment:
                clean = augment(clean, run.gen)
            occ = training_occlusion(to_uint8(clean), student.patch_size, run.rng, cfg.clean_rate)
            with torch.no_grad(), engine.autocast():  # the teacher sees the clean face
                target = teacher(engine.batch(clean[mine], conv=True))  # nodes (B, N, C), edges (B, N, N, C)
            with engine.autocast():  # the student sees only the visible patches of the occluded face
                out = run.net(engine.batch(to_tensor(occ.images[mine])), occ.visible[mine])
            y = torch.from_numpy(ds.labels[rows][mine]).to(engine.device)  # (B, N) AU labels, -1 = unknown
            loss, parts = distill_loss(out, target, y, weights, cfg)
            run.set_lr(opt, loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.log(loss, **parts)
        run.end_epoch()
    return student.eval(), run.finish()


def trained_student(ds, fold: int, data_key: dict, mae_model, teacher, cfg: DistillConfig = DistillConfig(),
                    device: str | Engine = "cpu", progress: bool = True, resume: bool = True) -> tuple[Student, dict]:
    """The student of subject-exclusive ``fold`` from the cache, else trained and saved
    (:func:`cache.checkpoint_or_train`). Its key holds hashes of the MAE's and the teacher's
    weights, so a retrained encoder or teacher retrains the student; only the head is stored."""
    engine = Engine.of(device)
    config = {"distill": asdict(cfg), "data": data_key, "fold": int(fold), "aus": list(ds.aus), "n": int(len(ds)),
              "mae": model_fingerprint(mae_model), "teacher": model_fingerprint(teacher),
              "version": DISTILL_VERSION, **engine.key()}
    train, _ = ds.fold(fold)

    def save(obj, stored: dict, tmp) -> None:
        student, history = obj
        torch.save({"head": student.head_state(), "history": history, "config": stored}, tmp)

    def load(p):
        state = read_state(p)
        student = Student.from_config(mae_model, teacher, cfg)
        student.load_head_state(state["head"])
        return (student.to(engine.device).eval(), state["history"]), state["config"]

    return checkpoint_or_train("student", config, lambda partial: train_student(
        train, mae_model, teacher, cfg, engine, progress, resume_path=partial), save, load, resume)


#: The student ablations (notebook 04): which KD terms are on (the AU loss and the edge CE always are).
ABLATIONS = {"student, no KD": {"node_weight": 0.0, "edge_weight": 0.0},
             "student, node KD": {"edge_weight": 0.0},
             "student, edge KD": {"node_weight": 0.0},
             "student, node + edge KD": {}}
