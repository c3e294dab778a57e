"""Command line: the method's stages outside the notebooks, ``python -m occfau_lib <stage> ...``.

::

    python -m occfau_lib pretrain-mae  --config demo
    python -m occfau_lib train-teacher --config demo --fold 1 --fold 2 --fold 3
    python -m occfau_lib distill       --config demo --fold 1
    python -m occfau_lib evaluate      --config demo --fold 1 --out runs/demo

Each stage loads what the earlier ones cached, or builds it. ``--config`` is a preset or a YAML
file, trailing ``key=value`` arguments override settings (:func:`cli_settings.run_config`);
``--resume`` continues an interrupted training. Every stage writes ``config.yaml`` and
``metrics.jsonl`` to ``--out``; ``evaluate`` also per-AU F1 tables. A bad setting, file or
folder is one line on stderr, exit status 2. The rules: ``docs/command-line.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from . import experiments, mae, mae_weights, metrics, occlusion, student, teacher
from .cache import DATA_ENV, atomic_write, config_hash, data_root
from .cli_settings import config_name, run_config
from .config import PROFILE_ENV
from .distill import trained_student
from .files import describe, writable_folder
from .loaders import load_dataset
from .synthfacs import world_key
from .train import Engine, distributed, local_device

#: The profile field with the folds each stage trains or scores unless ``--fold`` is given.
STAGE_FOLDS = {"pretrain-mae": None, "train-teacher": "folds", "distill": "distill_folds", "evaluate": "distill_folds"}

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
        p.add_argument("--config", default=None, help="preset (smoke, demo, paper-bp4d, paper-disfa) or YAML file "
                                                       "(default: $OCCFAU_PROFILE if set, else demo)")
        p.add_argument("--dataset", default="synthfacs", choices=["synthfacs", "bp4d", "disfa", "csv"])
        p.add_argument("--data-root", default=None, help="dataset folder (csv: the CSV file); not for synthfacs")
        p.add_argument("--labels", default=None, help="bp4d/disfa: label folder, relative to --data-root or absolute "
                                                      "(default: AU_OCC or AUCoding/AU_OCC; ActionUnit_Labels)")
        p.add_argument("--images", default=None, help="bp4d/disfa: frame folder, relative to --data-root or absolute "
                                                      "(default: images or img)")
        p.add_argument("--resize", action="store_true",
                       help="file datasets: resize square face crops of another size to the config's image size")
        p.add_argument("--numbering", default=None, choices=["auto", "0", "1"],
                       help="disfa: image numbering, 0 = ME-GraphAU's (label frame f -> (f-1).png), "
                            "1 = as the labels (f -> f.png), auto (default) = detect per subject")
        p.add_argument("--threshold", type=int, default=None,
                       help="disfa: AU present when its intensity is at least this (1..5, default 2)")
        p.add_argument("--fold", type=int, action="append", choices=[1, 2, 3], default=None,
                       help="a subject-exclusive fold; repeat for several (default: the config's folds; "
                            "distill and evaluate: its distill_folds)")
        p.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
        p.add_argument("--resume", action="store_true",
                       help="continue an interrupted training from its last epoch checkpoint (default: start over)")
        p.add_argument("--overwrite", action="store_true",
                       help="reuse a run directory made with another config: its config and records are replaced "
                            "(default: refuse, so one directory holds one run)")
        p.add_argument("--mae-weights", default=None,
                       help="official MAE weights (HF folder or .pth); required by the paper presets")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="override settings, e.g. distill.epochs=2")
    return top


#: A CPU without bfloat16 units emulates the paper presets' bf16 autocast (docs/decisions.md, "Smaller choices").
CPU_BF16_WARNING = ("[occfau] engine.precision=bf16 on the CPU: bfloat16 autocast is emulated on CPUs without bf16 "
                    "units, several times slower than fp32; add engine.precision=fp32 for a CPU run")


class Run:
    """What every stage needs: the profile, the dataset and its cache key, the engine, the log.
    Everything a user gives is checked here, before any model is trained; a run directory holds
    one run (another config or dataset in it is refused unless ``--overwrite``)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.config = config_name(args.config)
        self.profile = run_config(self.config, args.overrides)
        self.weights = args.mae_weights or os.environ.get(mae_weights.WEIGHTS_ENV)
        if self.profile.mae != "tiny" and not self.weights:  # checked before any data is read
            raise ValueError(f"config {self.profile.name!r} uses the {self.profile.mae!r} MAE (ViT-B/16): give the "
                             "official weights with --mae-weights PATH (a Hugging Face ViTMAEForPreTraining folder "
                             "with config.json + model.safetensors, or a facebookresearch/timm .pth checkpoint)")
        if self.weights and not Path(self.weights).exists():
            raise FileNotFoundError(f"--mae-weights: no such file or folder: {self.weights}")
        self.rank, self.world = distributed()  # (0, 1) unless started by torchrun
        self.engine = Engine(check_device(args.device), self.profile.engine)  # precision, loader workers
        if self.rank == 0 and not args.config and os.environ.get(PROFILE_ENV):
            print(f"[occfau] --config {self.config} (from ${PROFILE_ENV})")
        if self.engine.cfg.precision == "bf16" and not self.engine.cuda and self.rank == 0:
            print(CPU_BF16_WARNING)
        writable_folder(data_root(), DATA_ENV if os.environ.get(DATA_ENV) else "data folder")
        self.out = Path(args.out or Path("runs") / self.profile.name)
        writable_folder(self.out, "--out", create=False)
        self.folds = self._folds()
        self.ds, self.data_key = self._dataset()
        self._check_folds()
        if self.rank == 0:
            self._claim_out()

    def _folds(self) -> tuple[int, ...]:
        if self.args.fold:
            repeated = sorted({k for k in self.args.fold if self.args.fold.count(k) > 1})
            if repeated:
                raise ValueError(f"--fold {repeated[0]} is given twice")
            return tuple(self.args.fold)
        field = STAGE_FOLDS[self.args.stage]
        return tuple(getattr(self.profile, field)) if field else ()

    def _check_folds(self) -> None:
        """Every fold can train (subjects on both sides, a known label, a full batch), so that no
        stage fails after an earlier one trained."""
        where = self.args.data_root or self.ds.name
        for k in self.folds:
            train, _ = self.ds.fold_rows(k)  # an empty side is a ValueError naming the fold
            if not (self.ds.labels[train] >= 0).any():
                raise ValueError(f"{where}: every label of fold {k}'s training faces is unknown (-1, 9 or empty): "
                                 "there is nothing to learn from")
            for group in ("teacher_train", "distill"):
                size = getattr(self.profile, group).batch_size
                if len(train) < size:
                    raise ValueError(f"setting '{group}.batch_size' = {size}: fold {k} of {where} has only "
                                     f"{len(train)} training faces")

    def _dataset(self):
        args = self.args
        kwargs = {k: v for k, v in (("labels", args.labels), ("images", args.images), ("threshold", args.threshold),
                                    ("numbering", args.numbering)) if v is not None}
        allowed = {"synthfacs": set(), "csv": set(), "bp4d": {"labels", "images"},
                   "disfa": {"labels", "images", "threshold", "numbering"}}[args.dataset]
        wrong = sorted(set(kwargs) - allowed) + (["resize"] if args.resize and args.dataset == "synthfacs" else [])
        if wrong:
            raise ValueError(f"--{', --'.join(wrong)} cannot be used with --dataset {args.dataset}")
        if "numbering" in kwargs and kwargs["numbering"] != "auto":
            kwargs["numbering"] = int(kwargs["numbering"])
        if args.dataset == "synthfacs":
            if args.data_root:
                raise ValueError("--data-root is for bp4d, disfa and csv; SynthFACS is rendered, not read")
            aus = "disfa" if self.profile.name == "paper-disfa" else "bp4d"
            return (load_dataset("synthfacs", profile=self.profile, aus=aus, progress=False),
                    world_key(self.profile.data))
        ds = load_dataset(args.dataset, args.data_root, profile=self.profile, resize=args.resize, **kwargs)
        return ds, ds.key()

    def _claim_out(self) -> None:
        """Write ``config.yaml``: the resolved settings and the dataset read."""
        root = self.args.data_root and str(Path(self.args.data_root).resolve())
        resolved = {"base": self.profile.name, **{k: v for k, v in asdict(self.profile).items() if k != "name"},
                    "dataset": {"name": self.args.dataset, "root": root, "key": self.data_key}}
        text = yaml.safe_dump(json.loads(json.dumps(resolved)), sort_keys=False)
        config_file = self.out / "config.yaml"
        if config_file.exists() and config_file.read_text() != text:
            if not self.args.overwrite:
                old = yaml.safe_load(config_file.read_text()) or {}
                changed = sorted(_changed(old, yaml.safe_load(text)))
                raise ValueError(f"{self.out} holds a run made with another config (differs in: "
                                 f"{', '.join(changed[:6]) or 'format'}); use another --out, or --overwrite "
                                 "to replace that run's config and records")
            for name in ("metrics.jsonl", "f1_per_au.md", "f1_per_au.csv"):
                (self.out / name).unlink(missing_ok=True)
        writable_folder(self.out, "--out")
        atomic_write(config_file, lambda tmp: tmp.write_text(text))
        self.config_id = config_hash(resolved)

    def log(self, **record) -> None:
        """One JSON line to ``<out>/metrics.jsonl``, printed short (rank 0 only)."""
        if self.rank > 0:
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "stage": self.args.stage, "config": self.config_id,
                  "dataset": self.args.dataset, **record}
        metrics.append_jsonl(self.out / "metrics.jsonl", record)
        print(" ".join(f"{k}={v}" for k, v in record.items() if not isinstance(v, (dict, list))))

    def mae(self):
        if self.weights:
            return mae_weights.load_mae(self.weights, self.profile.mae).to(self.engine.device), {}
        if self.args.dataset == "synthfacs":
            return experiments.mae_for_profile(self.profile, self.engine, resume=self.args.resume)
        return mae.pretrained_mae(self.ds, mae.MAE_CONFIGS[self.profile.mae], self.profile.pretrain,
                                  self.data_key, self.engine, resume=self.args.resume)

    def teacher(self, fold: int):
        return teacher.trained_teacher(self.ds, fold, self.data_key, self.profile.teacher, self.profile.teacher_train,
                               self.engine, resume=self.args.resume)

    def student(self, fold: int, encoder, trained_teacher):
        return trained_student(self.ds, fold, self.data_key, encoder, trained_teacher, self.profile.distill, self.engine,
                               resume=self.args.resume)


def check_device(name: str | None) -> str:
    """The device to train on (default: cuda if available); an unknown or absent one is a ValueError."""
    if name is None:
        return local_device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r} is not a device; use cpu, cuda or cuda:<index>")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})")
    return local_device(name)


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested config dicts."""
    keys = set(old) | set(new)
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def summary(history: dict) -> dict:
    """Loss log, last loss and throughput of a training history."""
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
    for k in run.folds:
        _, history = run.teacher(k)
        run.log(model="teacher", fold=k, **summary(history))


def distill(run: Run) -> None:
    encoder, _ = run.mae()
    for k in run.folds:
        _, history = run.student(k, encoder, run.teacher(k)[0])
        run.log(model="student", fold=k, **summary(history))


def gathered(predict, rank: int, world: int):
    """``predict`` on this process's share of the test faces, the shares gathered back in order."""
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
    encoder, _ = run.mae()
    folds = run.folds
    teachers = {k: run.teacher(k)[0] for k in folds}
    students = {k: run.student(k, encoder, teachers[k])[0] for k in folds}
    methods = {"teacher": lambda k, occ: teacher.predict(teachers[k], occ.images)["probs"],
               "student": lambda k, occ: student.predict(students[k], occ.images, occ.visible)["probs"]}
    if run.world > 1:
        methods = {name: gathered(fn, run.rank, run.world) for name, fn in methods.items()}
    conditions = occlusion.protocol_conditions()
    rows: dict[str, dict[int, float]] = {}
    for name, predict in methods.items():
        results = experiments.evaluate_conditions(predict, run.ds, conditions, encoder.config.patch_size, folds)
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


def resume_command(argv: list[str]) -> str:
    return shlex.join(["python", "-m", "occfau_lib", *argv, *([] if "--resume" in argv else ["--resume"])])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    stages = {"pretrain-mae": pretrain_mae, "train-teacher": train_teacher, "distill": distill, "evaluate": evaluate}
    try:
        stages[args.stage](Run(args))
    except (ValueError, FileNotFoundError) as err:  # bad settings, data, weights: named, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or folder the system refused (permissions, a name too long): named
        print(f"error: {describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: every finished epoch is checkpointed
        pass  # said below, once the interrupted frames are gone and their progress bars have closed
    else:
        return 0
    print(f"interrupted; to continue from the last finished epoch: {resume_command(argv)}", file=sys.stderr)
    return 130

