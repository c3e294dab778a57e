"""Label scarcity: where, if anywhere, self-supervised pretraining pays on SynthFACS.

For each fold and each number of labelled training subjects (``--subjects``, 0 = all of the fold's training
subjects), every method sees only those subjects' labelled faces; the fold's test part is unchanged:

- ``student, MAE``: the student (``--student`` settings of ``DistillConfig`` over the profile's, node + edge KD)
  reading the pretrained MAE (``--mae`` snapshot, else the profile's), distilled from the teacher trained on the
  same subjects (KD needs no labels, but that teacher does);
- ``student, random encoder``: the identical recipe on a randomly initialised encoder of the same shape;
- ``teacher``: the teacher from scratch on those subjects;
- ``teacher + occlusion augmentation``: that teacher fine-tuned with occlusion augmentation (notebook 04's recipe).

The subjects are the first ``n`` of one random order per fold, so the smaller sets nest in the larger. Every
count trains for the same number of optimiser steps as the full training set [ours]: fewer subjects get
proportionally more epochs, so a small set is not also a short training. With every training subject (``0``)
the runs are the profile's own models, from the same dataset and key: after ``make models`` they load from
``data/models/`` instead of training again. Scores: F1 on clean faces and the mean
F1 under the four large blocks, every 2nd test face. Every model goes through the cache.

Writes ``--record`` (default ``benchmarks/results/label_scarcity_<profile>.json``): ``subjects``, ``folds`` and
``methods`` -> name -> subject count -> ``{clean_f1, blocks_f1}`` as mean and std over the folds, with the
per-fold values.

Usage::

    python benchmarks/bench_scarcity.py --subjects 8 16 32 0 --folds 1 2 3 --student mapping=attention,lr=1e-3
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from occfau_lib import distill, student, synthfacs, teacher
from occfau_lib.config import DistillConfig, get_profile
from occfau_lib.loaders import load_dataset

from bench_design import _scores, _settings, design_encoders, write_record  # noqa: E402 (the scripts sit side by side)

METHODS = ("student, MAE", "student, random encoder", "teacher", "teacher + occlusion augmentation")


def labelled_subjects(ds, fold: int, n: int) -> list[str]:
    """The first ``n`` (0: all) of the fold's training subjects in one random order per fold."""
    train, _ = ds.fold(fold)
    subjects = sorted(set(train.subjects.tolist()))
    order = np.random.default_rng(fold).permutation(subjects).tolist()
    if n > len(subjects):
        raise SystemExit(f"fold {fold} has {len(subjects)} training subjects; cannot label {n}")
    return order[: n or len(order)]


def scarce_run(profile, ds, key: dict, encoders: dict, fold: int, n: int, distill_cfg: DistillConfig) -> dict:
    """Every method of :data:`METHODS` trained on ``n`` labelled subjects of ``fold``: ``{method: scores}``."""
    if n:
        chosen = labelled_subjects(ds, fold, n)
        _, test = ds.fold(fold)
        part = ds.with_subjects(sorted(set(test.subjects.tolist())) + chosen)
        part_key = {**key, "labelled_subjects": sorted(chosen)}
    else:  # every training subject: the profile's own dataset and key, so the shipped models are these runs
        part, part_key = ds, key
    scale = len(ds.fold(fold)[0]) / len(part.fold(fold)[0])  # same optimiser steps as the full training set
    teach_cfg = replace(profile.teacher_train, epochs=max(1, round(profile.teacher_train.epochs * scale)))
    tch, _ = teacher.trained_teacher(part, fold, part_key, profile.teacher, teach_cfg, progress=False)
    occ_cfg = replace(teach_cfg, occlusion_patch=encoders["mae"].config.patch_size,
                      epochs=max(1, teach_cfg.epochs // 2), lr=teach_cfg.lr / 3, warmup_epochs=0)
    augmented, _ = teacher.trained_teacher(part, fold, part_key, profile.teacher, occ_cfg, progress=False, init=tch)
    cfg = replace(distill_cfg, epochs=max(1, round(distill_cfg.epochs * scale)))
    students = {name: distill.trained_student(part, fold, part_key, encoders[which], tch, cfg, progress=False)[0]
                for name, which in (("student, MAE", "mae"), ("student, random encoder", "random"))}
    patch = encoders["mae"].config.patch_size
    out = {name: _scores(part, lambda k, occ, m=m: student.predict(m, occ.images, occ.visible)["probs"], patch, fold)
           for name, m in students.items()}
    for name, model in (("teacher", tch), ("teacher + occlusion augmentation", augmented)):
        out[name] = _scores(part, lambda k, occ, m=model: teacher.predict(m, occ.images)["probs"], patch, fold)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--subjects", type=int, nargs="+", default=[8, 16, 32, 0], help="labelled subjects (0: all)")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--student", default="", help="FIELD=VALUE,... of DistillConfig over the profile's")
    parser.add_argument("--mae", default=None, help="a pretrain_mae.py snapshot (default: the profile's MAE)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--record", default=None)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    _, changes = _settings(f"student:{args.student}", (DistillConfig,))
    distill_cfg = replace(profile.distill, **changes)
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    key = synthfacs.world_key(profile.data)
    encoders = design_encoders(profile, args.mae)
    per = {m: {n: {} for n in args.subjects} for m in METHODS}  # method -> n -> fold -> scores
    print("| subjects | fold | " + " | ".join(f"{m} clean / blocks" for m in METHODS) + " | seconds |")
    print("|---|---|" + "---|" * (len(METHODS) + 1))
    for n in args.subjects:
        for fold in args.folds:
            start = time.perf_counter()
            scores = scarce_run(profile, ds, key, encoders, fold, n, distill_cfg)
            for m in METHODS:
                per[m][n][fold] = scores[m]
            cells = " | ".join(f"{scores[m]['clean']} / {scores[m]['blocks']}" for m in METHODS)
            print(f"| {n or 'all'} | {fold} | {cells} | {time.perf_counter() - start:.0f} |", flush=True)

    def summary(by_fold: dict) -> dict:
        clean = [s["clean"] for s in by_fold.values()]
        blocks = [s["blocks"] for s in by_fold.values()]
        return {"clean_f1": round(float(np.mean(clean)), 2), "clean_f1_std": round(float(np.std(clean)), 2),
                "blocks_f1": round(float(np.mean(blocks)), 2), "blocks_f1_std": round(float(np.std(blocks)), 2),
                "per_fold": {str(k): {"clean_f1": s["clean"], "blocks_f1": s["blocks"]} for k, s in by_fold.items()}}

    record = {"profile": profile.name, "subjects": args.subjects, "folds": args.folds, "student": args.student,
              "mae": args.mae or "profile",
              "methods": {m: {str(n): summary(per[m][n]) for n in args.subjects} for m in METHODS}}
    write_record(record, args.record, f"label_scarcity_{profile.name}.json")


if __name__ == "__main__":
    main()
