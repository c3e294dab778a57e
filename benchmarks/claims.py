"""The paper's claims, measured with error bars: the record behind notebook 04's ledger and the README.

:func:`run_benchmark` trains and scores every method of notebook 04 (:func:`experiments.compare_methods`,
floors included) for every training seed over the subject-exclusive folds, with the test occlusions
fixed, and measures what the claims need besides: the linear-probe gain of the trained MAE over a
randomly initialised one, and inference speed. :func:`check_claims` turns that into checks (the
paper's claims as this project states them; the thresholds are ours, see ``docs/method-notes.md``):

- (a) mining a *pretrained* latent pays: the node + edge student on the MAE beats the same student on
  a randomly initialised encoder of the same shape (identical recipe) under large blocks (mean of the
  4 block sizes) by >= 5 F1 and by more than 2 paired seed std; the linear-probe gain is recorded beside it;
- (b) the student under large blocks keeps >= 90 % of the teacher's clean F1;
- (c) under large blocks it beats the teacher on the same occluded faces by >= 10 F1, and
  reconstruct-then-detect;
- (d) node + edge KD beats no KD under large blocks by more than 2 paired seed std, and is >= node-only
  and edge-only KD;
- (e) the student runs >= 2x as many images/s as reconstruct-then-detect;
- (f) beyond the paper: the student under large blocks >= the teacher fine-tuned with occlusion augmentation.

Reading and showing a record: :mod:`occfau_lib.record`. Writing the README's block:
``python benchmarks/claims.py benchmarks/results/methods_demo.json --readme README.md``.
"""
from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from occfau_lib import mae, occlusion, student, teacher
from occfau_lib.cache import config_dict, config_hash, model_fingerprint
from occfau_lib.config import NOTEBOOK_SETTINGS, TEACHER_CONFIGS
from occfau_lib.distill import DISTILL_VERSION
from occfau_lib.experiments import compare_methods, evaluate_conditions, latent_probe, method_models, with_seed
from occfau_lib.files import commit, read_json, write_json
from occfau_lib.metrics import aggregate_folds
from occfau_lib.record import (AUGMENTED, CHANCE, EDGE_KD, NO_KD, NODE_KD, PIXELS, RANDOM_STUDENT, RECONSTRUCT,
                               STUDENT, TEACHER, ledger, methods_table, read_record, spread_name)
from occfau_lib.teacher import TEACHER_VERSION


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of percentages."""
    return float(np.mean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0


def summarise(per_seed: dict[int, dict]) -> dict:
    """``{method: {condition: {f1_mean, f1_std, auc_mean, auc_std, fold_std}}}`` in percent from
    ``{seed: compare_methods(...)}``."""
    first = next(iter(per_seed.values()))
    out = {}
    for method, rows in first.items():
        out[method] = {}
        for condition in rows:
            runs = [per_seed[s][method][condition] for s in per_seed]
            f1_mean, f1_std = _stats([100 * r["avg_f1"] for r in runs])
            auc_mean, auc_std = _stats([100 * r["avg_auc"] for r in runs])
            per_fold = np.mean([[100 * f["avg_f1"] for f in r["folds"]] for r in runs], axis=0)  # (folds,)
            out[method][condition] = {"f1_mean": round(f1_mean, 2), "f1_std": round(f1_std, 2),
                                      "auc_mean": round(auc_mean, 2), "auc_std": round(auc_std, 2),
                                      "fold_std": round(float(np.std(per_fold)), 2)}
    return out


def clean_probe_f1(ds, mae_model, depth: int | None, epochs: int, folds=(1,), seed: int = 0, hidden: int = 0,
                   data_key: dict | None = None) -> float:
    """Average F1 (%) of :func:`experiments.latent_probe` on clean test faces over ``folds``: how much AU
    information a latent holds (claim (a)'s probe gain, the data-regime study)."""
    probes = {k: latent_probe(ds, k, mae_model, depth, epochs, seed, hidden, data_key) for k in folds}
    result = evaluate_conditions(lambda k, occ: probes[k](occ), ds, {"clean": "clean"},
                                 mae_model.config.patch_size, folds)["clean"]
    return round(100 * result["avg_f1"], 2)


def probe_gain(profile, ds, mae_model, folds, seed: int = 0, data_key: dict | None = None) -> dict:
    """Claim (a)'s measurement: clean-face F1 (%) of the linear probe on the student's latent grid
    for the trained MAE and for a randomly initialised one of the same architecture."""
    random_mae = mae.random_encoder(mae_model, seed)
    out = {name: clean_probe_f1(ds, model, profile.distill.depth, profile.probe_epochs, folds, seed, data_key=data_key)
           for name, model in (("trained", mae_model), ("random", random_mae))}
    out["gain"] = round(out["trained"] - out["random"], 2)
    return out


def rates_in_turns(pipelines: dict, batches: list) -> dict[str, float]:
    """Median images/s of each ``pipelines[name](batch)`` over ``batches`` (each with ``.images``),
    after one warm-up call each. The pipelines take turns on every batch, so a machine that speeds
    up or slows down while it is timed moves all of them alike and leaves their ratio."""
    for fn in pipelines.values():
        fn(batches[0])
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    for b in batches:
        for name, fn in pipelines.items():
            t0 = time.perf_counter()
            fn(b)
            rates[name].append(len(b.images) / (time.perf_counter() - t0))
    return {name: round(statistics.median(r), 1) for name, r in rates.items()}


def inference_speed(profile, ds, encoder, batch: int = 64, batches: int = 10, spec: str = "block:112") -> dict:
    """Images/s of the student, reconstruct-then-detect and the teacher alone on the very same
    occluded batches (:func:`rates_in_turns`). Speed does not depend on the weights, so the
    teacher and mapping network are freshly initialised."""
    torch.manual_seed(0)
    detector = teacher.Teacher(TEACHER_CONFIGS[profile.teacher], ds.aus, ds.image_size).eval()
    model = student.Student.from_config(encoder, detector, profile.distill).eval()
    n = min(len(ds), batch * batches)
    images = ds.batch_images(np.arange(n))
    occluded = [occlusion.apply(images[i: i + batch], spec, encoder.config.patch_size, seed=i)
                for i in range(0, n, batch)]
    return rates_in_turns({
        "student": lambda b: student.predict(model, b.images, b.visible, batch_size=len(b.images)),
        "reconstruct-then-detect": lambda b: teacher.predict(
            detector, mae.reconstruct_images(encoder, b.images, b.visible), batch_size=len(b.images)),
        "teacher alone": lambda b: teacher.predict(detector, b.images, batch_size=len(b.images)),
    }, occluded)


def _blocks(rows: dict) -> float:
    """Mean F1 over the large-block conditions of one method's results (fractions or percents)."""
    values = [v for c, v in rows.items() if c.startswith("block ")]
    return float(np.mean(values))


def _paired_blocks(per_seed: dict[int, dict], better: str, worse: str) -> tuple[float, float, int]:
    """Mean and std over seeds of ``better``'s large-block F1 minus ``worse``'s (paired by seed), and the seed count."""
    diffs = [100 * (_blocks({c: r["avg_f1"] for c, r in res[better].items()})
                    - _blocks({c: r["avg_f1"] for c, r in res[worse].items()})) for res in per_seed.values()]
    return (*_stats(diffs), len(diffs))


def check_claims(per_seed: dict[int, dict], summary: dict, probe: dict, speed: dict) -> list[dict]:
    """Claims (a)-(f) (module docstring) as ``{name, holds, numbers}``; a claim that needs a paired seed
    spread is undecided (``holds`` None) with one seed."""
    block = {m: _blocks({c: s["f1_mean"] for c, s in rows.items()}) for m, rows in summary.items()}
    clean = summary[TEACHER]["clean"]["f1_mean"]
    mined, mined_std, seeds = _paired_blocks(per_seed, STUDENT, RANDOM_STUDENT)
    kd, kd_std, _ = _paired_blocks(per_seed, STUDENT, NO_KD)
    ratio = speed["student"] / speed["reconstruct-then-detect"]
    r = lambda x: round(float(x), 2)  # noqa: E731
    return [
        {"name": "(a) under large blocks the student on the MAE beats it on a random encoder by >= 5 F1 and > 2 std",
         "holds": (mined >= 5 and mined > 2 * mined_std) if seeds > 1 else None,
         "numbers": {"gain_over_random_encoder": r(mined), "paired_std": r(mined_std), "seeds": seeds,
                     "mae": r(block[STUDENT]), "random_encoder": r(block[RANDOM_STUDENT]),
                     "probe_gain": probe["gain"]}},
        {"name": "(b) node+edge student under large blocks >= 90% of the teacher's clean F1",
         "holds": block[STUDENT] >= 0.9 * clean,
         "numbers": {"student_blocks": r(block[STUDENT]), "teacher_clean": r(clean),
                     "ratio": r(block[STUDENT] / clean) if clean else None}},
        {"name": "(c) under large blocks it beats the teacher by >= 10 F1 and reconstruct-then-detect",
         "holds": block[STUDENT] >= block[TEACHER] + 10 and block[STUDENT] > block[RECONSTRUCT],
         "numbers": {"student_blocks": r(block[STUDENT]), "teacher_blocks": r(block[TEACHER]),
                     "reconstruct_blocks": r(block[RECONSTRUCT])}},
        {"name": "(d) node+edge > no-KD under large blocks by > 2 std; >= node-only and edge-only",
         "holds": (kd > 2 * kd_std and block[STUDENT] >= max(block[NODE_KD], block[EDGE_KD])) if seeds > 1
         else None,
         "numbers": {"gain_over_no_kd": r(kd), "paired_std": r(kd_std), "seeds": seeds,
                     "node_edge": r(block[STUDENT]), "node_only": r(block[NODE_KD]), "edge_only": r(block[EDGE_KD])}},
        {"name": "(e) student >= 2x reconstruct-then-detect images/s", "holds": ratio >= 2,
         "numbers": {**speed, "ratio": r(ratio)}},
        {"name": "(f) under large blocks the student >= the occlusion-augmented teacher",
         "holds": block[STUDENT] >= block[AUGMENTED],
         "numbers": {"student_blocks": r(block[STUDENT]), "augmented_teacher_blocks": r(block[AUGMENTED])}},
    ]


def setup_key(profile, data_key: dict, mae_model, conditions: dict[str, str], test_stride: int) -> str:
    """What must be equal for runs to be merged into one record: the profile's recipes (every
    field but :data:`config.NOTEBOOK_SETTINGS`, which the benchmark sets itself or never reads),
    the data, the MAE's weights, the versions of the teacher and student training code, the
    occlusion conditions and the test stride. The training seed and fold are not in it."""
    recipes = {k: v for k, v in config_dict(profile).items() if k not in NOTEBOOK_SETTINGS}
    return config_hash({"profile": recipes, "data": data_key, "mae": model_fingerprint(mae_model),
                        "versions": [TEACHER_VERSION, DISTILL_VERSION], "conditions": conditions,
                        "test_stride": test_stride})


def run_one(profile, ds, data_key: dict, mae_model, conditions: dict[str, str], fold: int, seed: int,
            test_stride: int = 2, progress: bool = True, code: str | None = None) -> dict:
    """One (seed, fold) of the benchmark: its models trained (through the cache) and every method
    scored under every condition on that fold's test faces. Returns a JSON-ready run: the commit,
    :func:`setup_key`, the seconds spent training and scoring, and ``results`` ->
    method -> condition -> :func:`metrics.evaluate` of that fold. ``code``: the commit the
    process started from (default: the checkout's now), since files may be edited while it runs."""
    code = code or commit()
    start = time.perf_counter()
    models = method_models(with_seed(profile, seed) if seed else profile, ds, data_key, mae_model, (fold,),
                           progress=progress)
    trained = time.perf_counter()
    results = compare_methods(profile, ds, data_key, mae_model, conditions, (fold,), test_stride, progress=progress,
                              seed=seed, models=models)
    setup = setup_key(profile, data_key, mae_model, conditions, test_stride)
    return {"commit": code, "profile": profile.name, "setup": setup, "seed": seed, "fold": fold, "test_stride": test_stride,
            "seconds": {"training": round(trained - start, 1), "scoring": round(time.perf_counter() - trained, 1)},
            "results": {m: {c: r["folds"][0] for c, r in rows.items()} for m, rows in results.items()}}


def run_path(runs_dir: str | Path, seed: int, fold: int) -> Path:
    return Path(runs_dir) / f"seed{seed}-fold{fold}.json"


def read_run(path: str | Path, setup: str) -> dict | None:
    """A run written by :func:`run_one`, or None (with a warning naming the file and why) when it is
    missing, unreadable or made with another setup: the caller runs it again."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        run = read_json(path)
        missing = [k for k in ("commit", "setup", "seed", "fold", "results") if k not in run]
        if missing:
            raise ValueError(f"missing {missing}")
    except (ValueError, UnicodeDecodeError) as err:
        warnings.warn(f"{path}: not a readable benchmark run ({err}); running it again")
        return None
    if run["setup"] != setup:
        warnings.warn(f"{path}: made with another setup ({run['setup']} != {setup}: profile, data, conditions or "
                      "test stride changed); running it again")
        return None
    return run


def merge_runs(runs: list[dict]) -> dict[int, dict]:
    """``{seed: {method: {condition: aggregate}}}`` from single-fold runs: per seed, what
    :func:`experiments.compare_methods` returns for all the runs' folds (the folds' results
    combined by :func:`metrics.aggregate_folds`, in fold order, under ``"folds"``)."""
    per_seed: dict[int, dict] = {}
    for seed in sorted({r["seed"] for r in runs}):
        mine = sorted((r for r in runs if r["seed"] == seed), key=lambda r: r["fold"])
        first = mine[0]["results"]
        per_seed[seed] = {m: {c: {**aggregate_folds([r["results"][m][c] for r in mine]),
                                  "folds": [r["results"][m][c] for r in mine]} for c in rows}
                          for m, rows in first.items()}
    return per_seed


def run_benchmark(profile, ds, data_key: dict, mae_model, conditions: dict[str, str], folds=(1, 2, 3),
                  seeds=(0, 1, 2), test_stride: int = 2, runs_dir: str | Path = "build/bench/runs",
                  runs_only: bool = False, progress: bool = True) -> tuple[dict | None, dict]:
    """The whole record (module docstring): every method x condition x fold x seed, the floors,
    the probe gain, the speeds and the claims, with the time each part took; and the raw
    ``{seed: compare_methods(...)}`` results it summarises (per AU, per fold).

    Work is done and kept one (seed, fold) at a time: each run is written to ``runs_dir`` as soon
    as it is done (:func:`run_path`; commit these files) and a run already there with the same
    :func:`setup_key` is read instead of redone, so the benchmark can be spread over sessions
    whose caches do not survive. ``runs_only``: stop after the runs (no record)."""
    t0, code = time.perf_counter(), commit()  # the code this process runs, whatever is edited meanwhile
    setup = setup_key(profile, data_key, mae_model, conditions, test_stride)
    runs, seconds = [], {}
    for seed in seeds:
        for fold in folds:
            path = run_path(runs_dir, seed, fold)
            run = read_run(path, setup)
            if run is None:
                run = run_one(profile, ds, data_key, mae_model, conditions, fold, seed, test_stride, progress, code)
                write_json(run, path)
                print(f"seed {seed}, fold {fold}: {run['seconds']} s, written to {path}", flush=True)
            else:
                print(f"seed {seed}, fold {fold}: read from {path} (commit {run['commit']})", flush=True)
            runs.append(run)
            seconds[f"seed {seed}, fold {fold}"] = run["seconds"]
    per_seed = merge_runs(runs)
    if runs_only:
        return None, per_seed
    start = time.perf_counter()
    probe = probe_gain(profile, ds, mae_model, folds, data_key=data_key)
    seconds["probe gain"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    speed = inference_speed(profile, ds, mae_model)
    seconds["speed"] = round(time.perf_counter() - start, 1)
    summary = summarise(per_seed)
    seconds["this call"] = round(time.perf_counter() - t0, 1)
    seconds["total"] = round(sum(s["training"] + s["scoring"] for s in (r["seconds"] for r in runs))
                             + seconds["probe gain"] + seconds["speed"], 1)
    return {
        "commit": code, "profile": profile.name, "folds": list(folds), "seeds": list(seeds),
        "test_stride": test_stride,
        "teacher_clean_f1": summary[TEACHER]["clean"]["f1_mean"],
        "pixel_lr_f1": summary[PIXELS]["clean"]["f1_mean"],
        "chance_f1": summary[CHANCE]["clean"]["f1_mean"],
        "methods": summary, "claims": check_claims(per_seed, summary, probe, speed), "seconds": seconds,
        "runs": [{"seed": r["seed"], "fold": r["fold"], "commit": r["commit"]} for r in runs],
    }, per_seed


# --------------------------------------------------------------------------------------------
# The README's block, generated from the record (so its numbers are the record's)
# --------------------------------------------------------------------------------------------
README_START, README_END = "<!-- claims-record:start -->", "<!-- claims-record:end -->"
#: The README's AUC columns (the F1 table has every condition).
README_AUC = ("clean", "patches 75%", "block 57%", "lower half", "medical_mask")


def readme_block(record: dict) -> str:
    """The README's claims block: the ledger, the F1 table of every method x condition and the AUC
    of a few conditions, each ``mean ± std`` (:func:`spread_name`)."""
    spread = spread_name(record)
    return "\n".join([
        README_START, ledger(record), "",
        f"Average F1 % over BP4D's 12 AUs (mean ± {spread}; one test face in {record['test_stride']} scored):", "",
        methods_table(record), "",
        f"AUC % (mean ± {spread}):" if len(record["seeds"]) > 1 else "AUC % (mean over folds, one seed):", "",
        methods_table(record, "auc", [c for c in README_AUC if c in next(iter(record["methods"].values()))]),
        README_END])


def update_readme(record: dict, path: str | Path) -> bool:
    """Replace the block between the README's markers with :func:`readme_block`; True if it changed.
    Missing markers are a ValueError naming the file."""
    path = Path(path)
    text = path.read_text()
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{path}: needs exactly one {README_START} ... {README_END} block")
    head, rest = text.split(README_START)
    _, tail = rest.split(README_END)
    new = head + readme_block(record) + tail
    path.write_text(new)
    return new != text


def readme_record_block(path: str | Path) -> str:
    """The block currently between the README's markers (what the test compares with the record)."""
    text = Path(path).read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    return text[start:end]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Print a benchmark record's ledger, or write it into the README.")
    parser.add_argument("record", help="benchmarks/results/methods_<profile>.json")
    parser.add_argument("--readme", default=None, help="replace this README's claims-record block")
    args = parser.parse_args(argv)
    record = read_record(args.record)
    if args.readme:
        print(f"{args.readme}: {'updated' if update_readme(record, args.readme) else 'already up to date'}")
    else:
        print(readme_block(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
