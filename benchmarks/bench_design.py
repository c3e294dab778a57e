"""The demo profile's design choices, measured on one fold: the labelled world's size and the teacher's
epochs (``world``), the student's mapping network, epochs and encoder block (``student``).

Every model goes through the cache (the same keys the notebooks and ``bench_methods.py`` use), so a
variant that matches the profile is trained once for all of them. Prints a Markdown table and writes
one JSON line per variant to ``--out``/``design_<kind>.jsonl``.

- ``world``: for each ``SUBJECTSxTASKSxFRAMES`` world and each teacher epoch count, the fold's teacher
  (the profile's recipe otherwise): clean test F1 / AUC, train F1 (every 4th training face), and the floor
  "pixels + logistic regression" on the same split. Renderer v3's choice (demo, fold 1):
  24x8x40 at 6 epochs 77.9 / 97.0 train, pixels 59.0; 96x8x10 at 12 epochs 89.0 / 94.7, pixels 74.3.
- ``student``: for each ``MAPPING:EPOCHS:BLOCK`` variant, the student with node + edge KD and without KD,
  on the profile's MAE and the fold's teacher: clean F1 / AUC and F1 under each large block (mean too),
  with the teacher's row on the same faces.
- ``design``: for each student variant ``NAME[:FIELD=VALUE,...]`` (fields of ``DistillConfig``), the student
  with node + edge KD and without, on the pretrained MAE (``--mae`` snapshot or the profile's) and on a randomly
  initialised encoder of the same shape, over ``--seeds`` (one row per seed in ``--out``/``design_design.jsonl``;
  seeds may run in separate processes): every row so far summarised in ``--record`` (``student_design_<profile>.json``):
  mean and std over seeds of clean F1 / AUC and of the mean F1 under the four large blocks, and the MAE's gain
  over the random encoder paired by seed.
- ``mae``: for each pretraining recipe ``NAME[:FIELD=VALUE,...]`` (fields of ``MAEConfig`` or
  ``PretrainConfig``, or ``mask_ratios=LOW-HIGH``), an MAE pretrained for ``--steps`` steps on a corpus of
  ``--corpus`` fresh faces, read by the profile's student (frozen linear map, node + edge KD, ``--student-epochs``);
  the recipe ``random`` is the control: the same student on a randomly initialised encoder, and
  ``NAME@PATH`` reads a snapshot that ``pretrain_mae.py`` kept during a long pretraining (recorded as ``NAME``
  at the snapshot's step: the budget curve). Each row also has the clean linear-probe F1 on the student's
  block (:func:`claims.clean_probe_f1`, same fold and seed). Every seed run
  so far (``--out``/``design_mae.jsonl``) is summarised in ``--record`` (``mae_recipes_<profile>.json``):
  mean and std over seeds, and each recipe's gain over the random encoder, paired by seed.

Usage::

    python benchmarks/bench_design.py world --worlds 24x8x40 96x8x10 --epochs 6 12 24
    python benchmarks/bench_design.py student --variants linear:8:3 attention:8:3 linear:24:3 linear:8:6
    python benchmarks/bench_design.py mae --recipes random base normpix:norm_pix_loss=true --steps 3000
    python benchmarks/bench_design.py design --variants linear attention:mapping=attention,lr=1e-3 --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from claims import clean_probe_f1
from occfau_lib import distill, experiments, mae, occlusion, student, synthfacs, teacher
from occfau_lib.config import MAE_CONFIGS, MAEConfig, PretrainConfig, get_profile
from occfau_lib.loaders import load_dataset
from occfau_lib.metrics import evaluate

BLOCKS = {f"block {round(100 * s / 224)}%": f"block:{s}" for s in occlusion.BLOCK_SIDES_224}


def _pct(x: float) -> float:
    return round(100 * float(x), 1)


def world_rows(profile, worlds, epochs, fold: int):
    """One row per (world, teacher epochs): test/train F1, AUC, pixel floor, seconds."""
    for world in worlds:
        subjects, tasks, frames = (int(v) for v in world.split("x"))
        cfg = replace(profile.data, n_subjects=subjects, n_tasks=tasks, frames_per_task=frames)
        ds = synthfacs.build_dataset(cfg=cfg, aus="bp4d", progress=False)
        key = synthfacs.world_key(cfg)
        train, _ = ds.fold(fold)
        pixels = experiments.pixel_probe(ds, fold, profile.probe_epochs)
        patch = MAE_CONFIGS[profile.mae].patch_size
        floor = experiments.evaluate_conditions(lambda k, occ: pixels(occ), ds, {"clean": "clean"}, patch,
                                                folds=(fold,))["clean"]
        for n_epochs in epochs:
            start = time.perf_counter()
            model, _ = teacher.trained_teacher(ds, fold, key, profile.teacher,
                                               replace(profile.teacher_train, epochs=n_epochs), progress=False)
            test = experiments.evaluate_conditions(lambda k, occ: teacher.predict(model, occ.images)["probs"], ds,
                                                   {"clean": "clean"}, patch, folds=(fold,))["clean"]
            rows = np.arange(0, len(train), 4)
            fit = evaluate(train.labels[rows], teacher.predict(model, train.batch_images(rows))["probs"], train.aus)
            yield {"world": world, "images": cfg.n_images, "epochs": n_epochs, "test_f1": _pct(test["avg_f1"]),
                   "test_auc": _pct(test["avg_auc"]), "train_f1": _pct(fit["avg_f1"]),
                   "pixels_f1": _pct(floor["avg_f1"]), "seconds": round(time.perf_counter() - start)}


def _scores(ds, predict, patch: int, fold: int) -> dict:
    """Clean F1 / AUC and F1 under each large block (and their mean) on every 2nd test face of ``fold``."""
    scored = experiments.evaluate_conditions(predict, ds, {"clean": "clean", **BLOCKS}, patch, folds=(fold,),
                                             test_stride=2)
    out = {"clean_auc": _pct(scored["clean"]["avg_auc"]), **{c: _pct(r["avg_f1"]) for c, r in scored.items()}}
    out["blocks"] = round(float(np.mean([out[c] for c in BLOCKS])), 1)
    return out


def _value(text: str):
    """A setting written on the command line: a bool, an int, a float, null, or the text itself."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _settings(spec: str, allowed, extra: tuple[str, ...] = ()) -> tuple[str, dict]:
    """``NAME[:FIELD=VALUE,...]`` -> (name, {field: value}), each field one of ``allowed``'s fields or ``extra``."""
    name, _, settings = spec.partition(":")
    out = {}
    for item in filter(None, settings.split(",")):
        field, _, text = item.partition("=")
        if not any(field in cls.__dataclass_fields__ for cls in allowed) and field not in extra:
            raise SystemExit(f"{spec!r}: {field!r} is not a setting of {', '.join(c.__name__ for c in allowed)}")
        out[field] = _value(text)
    return name, out


def _recipe(spec: str, base: MAEConfig, pretrain: PretrainConfig):
    """``NAME[:FIELD=VALUE,...]`` -> (name, MAE config, pretraining config, mask_ratios or None);
    ``mask_ratios=LOW-HIGH`` draws each batch's share of hidden patches from that range."""
    name, settings = _settings(spec, (MAEConfig, PretrainConfig), extra=("mask_ratios",))
    ratios = settings.pop("mask_ratios", None)
    if ratios is not None:
        ratios = tuple(float(v) for v in str(ratios).split("-"))
    mae_fields = {k: v for k, v in settings.items() if k in MAEConfig.__dataclass_fields__}
    pre_fields = {k: v for k, v in settings.items() if k not in mae_fields}
    return name, replace(base, **mae_fields), replace(pretrain, **pre_fields), ratios


def write_record(record: dict, path: str | None, default: str) -> Path:
    """Write a benchmark's JSON record to ``path`` (default ``benchmarks/results/<default>``) and say where."""
    out = Path(path or f"benchmarks/results/{default}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"record: {out}")
    return out


def load_snapshot(path: str | Path):
    """The MAE a ``pretrain_mae.py`` snapshot holds (eval mode) and its step."""
    from occfau_lib.cache import read_state

    state = read_state(path)
    model = mae.build_mae(MAEConfig(**state["mae"]))
    model.load_state_dict(state["model"])
    return model.eval(), int(state["step"])


def mae_rows(profile, recipes, fold: int, steps: int, corpus_size: int, student_epochs: int, seed: int = 0):
    """One row per pretraining recipe: the MAE's pretraining cost and final loss, and the fold's test
    scores of the profile's student (node + edge KD) reading it; ``random`` reads an untrained encoder."""
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    key = synthfacs.world_key(profile.data)
    tch, _ = teacher.trained_teacher(ds, fold, key, profile.teacher, profile.teacher_train, progress=False)
    corpus = synthfacs.FaceCorpus(corpus_size, profile.data.img_size)
    batch = profile.pretrain.batch_size
    if (steps * batch) % corpus_size:
        raise SystemExit(f"{steps} steps of {batch} faces are not whole epochs of a {corpus_size}-face corpus")
    epochs = steps * batch // corpus_size
    # MAE's warm-up is 5 % of the schedule (40 of 800 epochs)
    schedule = replace(profile.pretrain, epochs=epochs, warmup_epochs=0.05 * epochs)
    for spec in recipes:
        start = time.perf_counter()
        if "@" in spec:
            encoder, at = load_snapshot(spec.partition("@")[2])
            name, history, spec = "snapshot", {"step": at}, spec.partition("@")[0]  # no machine's path in records
        else:
            name, mae_cfg, pretrain, ratios = _recipe(spec, MAE_CONFIGS[profile.mae], schedule)
        if name == "random":
            encoder, history = mae.random_encoder(mae_cfg, seed), {}
        elif name != "snapshot":
            encoder, history = mae.pretrained_mae(corpus, mae_cfg, pretrain, corpus.key(), mask_ratios=ratios)
        cfg = replace(profile.distill, epochs=student_epochs, seed=seed)
        model, _ = distill.trained_student(ds, fold, key, encoder, tch, cfg, progress=False)
        scores = _scores(ds, lambda k, occ: student.predict(model, occ.images, occ.visible)["probs"],
                         encoder.config.patch_size, fold)
        probe_f1 = clean_probe_f1(ds, encoder, cfg.depth, profile.probe_epochs, folds=(fold,), seed=seed)
        loss = history.get("loss")  # none for a snapshot or the random encoder
        trained = {"random": 0, "snapshot": history.get("step")}.get(name, steps)
        yield {"recipe": spec, "steps": trained, "corpus": corpus_size,
               "student_epochs": student_epochs, "seed": seed, **scores, "probe_f1": probe_f1,
               "final_loss": round(float(np.mean(loss[-10:])), 4) if loss else None,
               "pretrain_seconds": round(history.get("seconds", 0.0)), "seconds": round(time.perf_counter() - start)}


def recipe_record(rows: list[dict]) -> dict:
    """The ``mae`` rows of every seed run so far as one record: per recipe the mean and std over seeds of
    clean F1 / AUC and of the mean F1 under large blocks, and its gain over the random encoder read by
    the same seed's student (paired), with the pretraining's cost."""
    by = {}
    for r in rows:
        by.setdefault(r["recipe"], {})[r["seed"]] = r
    random = by.get("random", {})
    out = {}
    for recipe, seeds in by.items():
        runs = [seeds[s] for s in sorted(seeds)]
        loss = runs[0]["final_loss"]
        entry = {"seeds": sorted(seeds), "steps": runs[0]["steps"], "corpus": runs[0]["corpus"],
                 "student_epochs": runs[0]["student_epochs"], "pretrain_seconds": runs[0]["pretrain_seconds"],
                 "final_loss": None if loss is None or np.isnan(loss) else loss}  # none: not pretrained here
        for field, name in (("clean", "clean_f1"), ("blocks", "blocks_f1"), ("clean_auc", "clean_auc"),
                            ("probe_f1", "probe_f1")):
            values = [r[field] for r in runs if field in r]
            if values:
                entry[name], entry[name + "_std"] = round(float(np.mean(values)), 2), round(float(np.std(values)), 2)
        paired = [s for s in sorted(seeds) if s in random]
        for field in ("clean", "blocks", "probe_f1"):
            gains = [seeds[s][field] - random[s][field] for s in paired if field in seeds[s] and field in random[s]]
            if gains:
                name = field.removesuffix("_f1")
                entry[f"{name}_gain"] = round(float(np.mean(gains)), 2)
                entry[f"{name}_gain_std"] = round(float(np.std(gains)), 2)
        out[recipe] = entry
    return {"recipes": out}


#: The KD settings every design variant is trained with: the method's node + edge KD, and none.
KD = {True: {}, False: {"node_weight": 0.0, "edge_weight": 0.0}}


def design_encoders(profile, mae_path: str | None = None, seed: int = 0) -> dict:
    """``{"mae": the pretrained MAE (a snapshot, else the profile's), "random": the same architecture,
    randomly initialised}``: every student variant is trained on both by the identical recipe."""
    encoder = load_snapshot(mae_path)[0] if mae_path else experiments.mae_for_profile(profile, progress=False)[0]
    return {"mae": encoder, "random": mae.random_encoder(encoder, seed)}


def design_rows(profile, variants, fold: int, seeds, epochs: int, mae_path: str | None = None):
    """One row per (variant ``NAME[:FIELD=VALUE,...]`` of ``DistillConfig``, encoder, KD on / off, seed):
    the fold's test scores and the seconds the student took. :func:`design_record` summarises them over
    seeds, so seeds may run in separate processes (one lane each) into one ``--out`` folder."""
    from occfau_lib.config import DistillConfig

    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    key = synthfacs.world_key(profile.data)
    tch, _ = teacher.trained_teacher(ds, fold, key, profile.teacher, profile.teacher_train, progress=False)
    encoders = design_encoders(profile, mae_path)
    for spec in variants:
        name, changes = _settings(spec, (DistillConfig,))
        for encoder_name, encoder in encoders.items():
            for kd, off in KD.items():
                for seed in seeds:
                    start = time.perf_counter()
                    cfg = replace(profile.distill, epochs=epochs, seed=seed, **{**changes, **off})
                    model, _ = distill.trained_student(ds, fold, key, encoder, tch, cfg, progress=False)
                    scores = _scores(ds, lambda k, occ: student.predict(model, occ.images, occ.visible)["probs"],
                                     encoder.config.patch_size, fold)
                    yield {"variant": name, "settings": spec, "encoder": encoder_name, "kd": kd, "seed": seed,
                           "epochs": epochs, **scores, "seconds": round(time.perf_counter() - start)}


def design_record(rows: list[dict]) -> dict:
    """``{"variants": {"NAME, KD, ENCODER encoder": {encoder, kd, seeds, clean_f1, blocks_f1, clean_auc (mean
    and std over seeds), seconds, per_seed}}}`` and, per variant and KD setting, the gain of the MAE over the
    random encoder paired by seed (``mae_gain``: clean and blocks, mean and std)."""
    groups: dict[str, dict[int, dict]] = {}
    for r in rows:
        label = f"{r['variant']}, {'node + edge KD' if r['kd'] else 'no KD'}, {r['encoder']} encoder"
        groups.setdefault(label, {})[r["seed"]] = r
    variants = {}
    for label, by_seed in groups.items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        row = {k: runs[0][k] for k in ("variant", "settings", "encoder", "kd", "epochs")}
        row["seeds"] = sorted(by_seed)
        for field, out in (("clean", "clean_f1"), ("blocks", "blocks_f1"), ("clean_auc", "clean_auc")):
            values = [r[field] for r in runs]
            row[out], row[out + "_std"] = round(float(np.mean(values)), 2), round(float(np.std(values)), 2)
        row["per_seed"] = {f: [r[f] for r in runs] for f in ("clean", "blocks", "clean_auc")}
        row["seconds"] = sum(r["seconds"] for r in runs)
        variants[label] = row
    gains = {}
    for label, row in variants.items():
        if row["encoder"] != "mae":
            continue
        random = groups.get(label.replace("mae encoder", "random encoder"), {})
        paired = [s for s in row["seeds"] if s in random]
        if paired:
            mae_runs = groups[label]
            gains[label.removesuffix(", mae encoder")] = {
                f"{field}_gain{suffix}": round(float(fn([mae_runs[s][field] - random[s][field] for s in paired])), 2)
                for field in ("clean", "blocks") for suffix, fn in (("", np.mean), ("_std", np.std))}
    return {"variants": variants, "mae_gain": gains}


def student_rows(profile, variants, fold: int):
    """The teacher's row, then one row per (variant, with / without KD) on the same test faces."""
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    key = synthfacs.world_key(profile.data)
    encoder, _ = experiments.mae_for_profile(profile, progress=False)
    tch, _ = teacher.trained_teacher(ds, fold, key, profile.teacher, profile.teacher_train, progress=False)
    patch = encoder.config.patch_size

    def row(name, predict, seconds=0):
        return {"model": name, **_scores(ds, predict, patch, fold), "seconds": seconds}

    yield row("teacher", lambda k, occ: teacher.predict(tch, occ.images)["probs"])
    for variant in variants:
        mapping, epochs, block = variant.split(":")
        for kd, change in (("node + edge KD", {}), ("no KD", {"node_weight": 0.0, "edge_weight": 0.0})):
            start = time.perf_counter()
            cfg = replace(profile.distill, mapping=mapping, epochs=int(epochs), depth=int(block), **change)
            model, _ = distill.trained_student(ds, fold, key, encoder, tch, cfg, progress=False)
            yield row(f"{variant} {kd}", lambda k, occ: student.predict(model, occ.images, occ.visible)["probs"],
                      round(time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("world", "student", "mae", "design"))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--worlds", nargs="+", default=["24x8x40", "96x8x10"], help="SUBJECTSxTASKSxFRAMES")
    parser.add_argument("--epochs", type=int, nargs="+", default=[12], help="teacher epochs (world)")
    parser.add_argument("--variants", nargs="+", default=["linear:20:3", "attention:20:3"], help="MAPPING:EPOCHS:BLOCK")
    parser.add_argument("--recipes", nargs="+", default=["random", "base"], help="NAME[:FIELD=VALUE,...] (mae)")
    parser.add_argument("--steps", type=int, default=3000, help="pretraining steps (mae)")
    parser.add_argument("--corpus", type=int, default=192_000, help="unlabelled faces pretrained on (mae)")
    parser.add_argument("--student-epochs", type=int, default=8, help="epochs of the reading student (mae)")
    parser.add_argument("--seed", type=int, default=0, help="the reading student's seed (mae)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="students' seeds (design)")
    parser.add_argument("--mae", default=None, help="a pretrain_mae.py snapshot the students read (design)")
    parser.add_argument("--record", default=None, help="the JSON record of design / mae (default: benchmarks/results/"
                        "student_design_<profile>.json / mae_recipes_<profile>.json)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="build/bench")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    if args.kind == "world":
        rows = world_rows(profile, args.worlds, args.epochs, args.fold)
    elif args.kind == "student":
        rows = student_rows(profile, args.variants, args.fold)
    elif args.kind == "mae":
        rows = mae_rows(profile, args.recipes, args.fold, args.steps, args.corpus, args.student_epochs, args.seed)
    else:
        rows = design_rows(profile, args.variants, args.fold, args.seeds, args.student_epochs, args.mae)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    printed, done = False, []
    with (out / f"design_{args.kind}.jsonl").open("a") as log:
        for r in rows:
            shown = r
            if not printed:
                print(f"profile {profile.name}, fold {args.fold}: {args.kind} design, F1 / AUC in %\n")
                print("| " + " | ".join(shown) + " |\n|" + "---|" * len(shown))
                printed = True
            print("| " + " | ".join(str(v) for v in shown.values()) + " |", flush=True)
            log.write(json.dumps({"profile": profile.name, "fold": args.fold, **r}) + "\n")
            log.flush()
            done.append(r)
    if args.kind == "mae":
        rows = [json.loads(line) for line in (out / "design_mae.jsonl").read_text().splitlines()]
        write_record({"profile": profile.name, "fold": args.fold,
                      **recipe_record([r for r in rows if r.get("profile") == profile.name])},
                     args.record, f"mae_recipes_{profile.name}.json")
    if args.kind == "design":
        rows = [json.loads(line) for line in (out / "design_design.jsonl").read_text().splitlines()]
        write_record({"profile": profile.name, "fold": args.fold,
                      "mae": Path(args.mae).name if args.mae else "profile", "epochs": args.student_epochs,
                      **design_record([r for r in rows if r.get("profile") == profile.name])},
                     args.record, f"student_design_{profile.name}.json")


if __name__ == "__main__":
    main()
