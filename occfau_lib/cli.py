"""Command line: the method's stages outside the notebooks, ``python -m occfau_lib <stage> ...``.

Stages, in order (each loads what the previous ones cached under ``$OCCFAU_DATA_DIR/cache``, or
builds it; running a finished stage again is instant)::

    python -m occfau_lib pretrain-mae  --config demo
    python -m occfau_lib train-teacher --config demo --fold 1 --fold 2 --fold 3
    python -m occfau_lib distill       --config demo --fold 1
    python -m occfau_lib evaluate      --config demo --fold 1 --out runs/demo

``--config`` is a preset (smoke, demo, paper-bp4d, paper-disfa) or a YAML file; trailing
``key=value`` arguments override single settings (``distill.epochs=2``), see
:func:`occfau_lib.config.run_config`. ``--dataset`` picks SynthFACS (default) or a licensed
dataset under ``--data-root``. ``--resume`` continues an interrupted training from its
last epoch checkpoint (model, optimiser, step, random generators), to the same weights as an
uninterrupted run; without it an interrupted run starts over. Every stage writes the resolved
config (``config.yaml``) and one JSON line per trained model or evaluation to
``<out>/metrics.jsonl``; ``evaluate`` also writes per-AU F1 for each fold and their average as
Markdown and CSV.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

STAGES = {
    "pretrain-mae": "pretrain the MAE on the dataset's faces (or load official weights: --mae-weights)",
    "train-teacher": "train the ME-GraphAU-style teacher of each fold on clean faces",
    "distill": "train the student of each fold (node + edge KD from that fold's teacher)",
    "evaluate": "score teacher and student under the occlusion protocols; per-AU F1 per fold and averaged",
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m occfau_lib", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="stage", required=True, metavar="stage")
    for name, help_text in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default="demo", help="preset (smoke, demo, paper-bp4d, paper-disfa) or YAML file")
        p.add_argument("--dataset", default="synthfacs", choices=["synthfacs", "bp4d", "disfa", "csv"])
        p.add_argument("--data-root", default=None, help="dataset folder (csv: the CSV file); not for synthfacs")
        p.add_argument("--fold", type=int, action="append", choices=[1, 2, 3], default=None,
                       help="a subject-exclusive fold; repeat for several (default: the config's folds; "
                            "distill and evaluate: its distill_folds)")
        p.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
        p.add_argument("--resume", action="store_true",
                       help="continue an interrupted training from its last epoch checkpoint (default: start over)")
        p.add_argument("--mae-weights", default=None,
                       help="official MAE weights (HF folder or .pth); required by the paper presets")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="override settings, e.g. distill.epochs=2")
    return top


class Run:
    """What every stage needs: the resolved profile, the dataset, its cache key, the engine, the log."""

    def __init__(self, args: argparse.Namespace):
        import torch

        from .config import run_config
        from .data import load_dataset

        from .mae import WEIGHTS_ENV

        self.args = args
        self.profile = run_config(args.config, args.overrides)
        self.weights = args.mae_weights or os.environ.get(WEIGHTS_ENV)
        if self.profile.mae != "tiny" and not self.weights:  # checked before any data is read
            raise ValueError(f"config {self.profile.name!r} uses the {self.profile.mae!r} MAE (ViT-B/16): give the "
                             "official weights with --mae-weights PATH (a Hugging Face ViTMAEForPreTraining folder "
                             "with config.json + model.safetensors, or a facebookresearch/timm .pth checkpoint)")
        if args.dataset == "synthfacs":
            if args.data_root:
                raise ValueError("--data-root is for bp4d, disfa and csv; SynthFACS is rendered, not read")
            from .synthfacs import world_key

            aus = "disfa" if self.profile.name == "paper-disfa" else "bp4d"
            self.ds = load_dataset("synthfacs", profile=self.profile, aus=aus, progress=False)
            self.data_key = world_key(self.profile.data)
        else:
            self.ds = load_dataset(args.dataset, args.data_root, profile=self.profile)
            self.data_key = {"dataset": args.dataset, "root": str(Path(args.data_root).resolve()), "n": len(self.ds)}
        from .train import Engine, distributed, local_device

        self.rank, self.world = distributed()  # (0, 1) unless started by torchrun
        device = local_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.engine = Engine(device, self.profile.engine)  # with the preset's precision and loader workers
        self.out = Path(args.out or Path("runs") / self.profile.name)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_config()

    def _write_config(self) -> None:
        import yaml

        resolved = {"base": self.profile.name, **{k: v for k, v in asdict(self.profile).items() if k != "name"}}
        (self.out / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(resolved)), sort_keys=False))

    def folds(self, default) -> tuple[int, ...]:
        return tuple(self.args.fold or default)

    def log(self, **record) -> None:
        """Append one JSON line to ``<out>/metrics.jsonl`` and print a short form (rank 0 only)."""
        if self.rank > 0:
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "stage": self.args.stage, **record}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(" ".join(f"{k}={v}" for k, v in record.items() if not isinstance(v, (dict, list))))

    def mae(self):
        from . import mae

        if self.weights:
            return mae.load_mae(self.weights, self.profile.mae).to(self.engine.device), {}
        if self.args.dataset == "synthfacs":
            return mae.mae_for_profile(self.profile, self.engine, resume=self.args.resume)
        return mae.pretrained_mae(self.ds.images, mae.MAE_CONFIGS[self.profile.mae], self.profile.pretrain,
                                  self.data_key, self.engine, resume=self.args.resume)

    def teacher(self, fold: int):
        from .teacher import trained_teacher

        return trained_teacher(self.ds, fold, self.data_key, self.profile.teacher, self.profile.teacher_train,
                               self.engine, resume=self.args.resume)

    def student(self, fold: int, encoder, teacher):
        from .distill import trained_student

        return trained_student(self.ds, fold, self.data_key, encoder, teacher, self.profile.distill, self.engine,
                               resume=self.args.resume)


def summary(history: dict) -> dict:
    """The loss log, last logged loss and throughput of a training history (as stored with the model)."""
    out = {}
    if history.get("loss"):
        out["final_loss"] = round(float(history["loss"][-1]), 5)
        out["history"] = {k: [float(v) for v in history[k]] for k in ("step", "loss", "lr")}
    if "images_per_s" in history:
        out["images_per_s"] = round(float(history["images_per_s"]), 1)
    return out


def pretrain_mae(run: Run) -> None:
    _, history = run.mae()
    run.log(model="mae", **summary(history))


def train_teacher(run: Run) -> None:
    for k in run.folds(run.profile.folds):
        _, history = run.teacher(k)
        run.log(model="teacher", fold=k, **summary(history))


def distill(run: Run) -> None:
    encoder, _ = run.mae()
    for k in run.folds(run.profile.distill_folds):
        _, history = run.student(k, encoder, run.teacher(k)[0])
        run.log(model="student", fold=k, **summary(history))


def gathered(predict, rank: int, world: int):
    """``predict(fold, occluded)`` run by every process on its share of the test faces, the
    shares gathered back in order, so F1 is computed over the whole fold on every rank."""
    from dataclasses import replace

    import numpy as np
    import torch.distributed as dist

    def run(k, occ):
        rows = np.arange(rank, len(occ.images), world)
        part = predict(k, replace(occ, images=occ.images[rows], hidden=occ.hidden[rows], visible=occ.visible[rows]))
        parts = [None] * world
        dist.all_gather_object(parts, (rows, part))
        out = np.empty((len(occ.images), part.shape[1]), part.dtype)
        for r, p in parts:
            out[r] = p
        return out

    return run


def evaluate(run: Run) -> None:
    from . import metrics, occlusion, student, teacher

    encoder, _ = run.mae()
    folds = run.folds(run.profile.distill_folds)
    teachers = {k: run.teacher(k)[0] for k in folds}
    students = {k: run.student(k, encoder, teachers[k])[0] for k in folds}
    methods = {"teacher": lambda k, occ: teacher.predict(teachers[k], occ.images)["probs"],
               "student": lambda k, occ: student.predict(students[k], occ.images, occ.visible)["probs"]}
    if run.world > 1:
        methods = {name: gathered(fn, run.rank, run.world) for name, fn in methods.items()}
    conditions = occlusion.protocol_conditions()
    rows: dict[str, dict[int, float]] = {}
    for name, predict in methods.items():
        results = metrics.evaluate_conditions(predict, run.ds, conditions, encoder.config.patch_size, folds)
        for condition, result in results.items():
            for k, per_fold in zip(folds, result["folds"]):
                rows[f"{name} / {condition} / fold {k}"] = per_fold["f1"]
            rows[f"{name} / {condition} / {len(folds)}-fold average"] = result["f1"]
            run.log(method=name, condition=condition, folds=list(folds), avg_f1=round(result["avg_f1"], 4),
                    avg_auc=round(result["avg_auc"], 4), f1=result["f1"])
    if run.rank > 0:
        return
    (run.out / "f1_per_au.md").write_text(metrics.format_table(rows, run.ds.aus) + "\n")
    (run.out / "f1_per_au.csv").write_text(metrics.format_csv(rows, run.ds.aus))
    print(f"written: {run.out / 'f1_per_au.md'}, {run.out / 'f1_per_au.csv'}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run = Run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stages = {"pretrain-mae": pretrain_mae, "train-teacher": train_teacher, "distill": distill, "evaluate": evaluate}
    stages[args.stage](run)
    return 0

