"""The benchmark scripts run end to end on the smoke profile and print their tables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    env = {**os.environ, "OCCFAU_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.script
def test_bench_inference_prints_the_speed_table():
    out = run("bench_inference.py", "--batch", "8", "--batches", "2", "--spec", "patches:0.5")
    assert "| student |" in out and "| reconstruct-then-detect |" in out and "| teacher alone |" in out
    assert "speed ratio:" in out


@pytest.mark.script
def test_bench_methods_writes_the_claims_record(tmp_path):
    """Two seeds on one fold: tables with mean ± std, floors, the JSON record and the ledger."""
    import json

    record_path = tmp_path / "methods_smoke.json"
    out = run("bench_methods.py", "--out", str(tmp_path), "--folds", "1", "--seeds", "0", "1", "--record",
              str(record_path))
    for row in ("chance: always present", "pixels + logistic regression", "teacher", "teacher + occlusion augmentation",
                "reconstruct-then-detect", "linear probe on MAE latent", "student, no KD", "student, node + edge KD",
                "student, random encoder"):
        assert f"| {row} |" in out
    header = next(line for line in out.splitlines() if line.startswith("| Method |"))
    assert header.startswith("| Method | clean | patches 25% |") and "| sunglasses |" in header  # conditions = columns
    record = json.loads(record_path.read_text())
    assert record["folds"] == [1] and record["seeds"] == [0, 1] and record["profile"] == "smoke"
    assert record["commit"] and 0 <= record["chance_f1"] <= 100 and 0 <= record["teacher_clean_f1"] <= 100
    cell = record["methods"]["student, node + edge KD"]["block 50%"]
    assert set(cell) == {"f1_mean", "f1_std", "auc_mean", "auc_std", "fold_std"} and cell["f1_std"] >= 0
    assert len(record["methods"]) == 11 and len(record["claims"]) == 6
    assert all(set(c) == {"name", "holds", "numbers"} and isinstance(c["holds"], bool) for c in record["claims"])
    assert sum(line.startswith(("- ✓", "- ✗")) for line in out.splitlines()) == 6  # the printed ledger
    assert (tmp_path / "methods_auc.md").read_text().startswith("| Method | clean |")
    per_au = (tmp_path / "methods_per_au.csv").read_text().splitlines()
    assert per_au[0].startswith("method,AU1,") and len(per_au) == 1 + 11 * 15
    # the README's block is generated from the record
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\n<!-- claims-record:start -->\nSTALE-BLOCK\n<!-- claims-record:end -->\n\nafter\n")
    done = subprocess.run([sys.executable, str(BENCH / "claims.py"), str(record_path), "--readme", str(readme)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "updated" in done.stdout, done.stderr[-2000:]
    text = readme.read_text()
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and "STALE-BLOCK" not in text
    assert "| student, node + edge KD |" in text and "mean ± seed std" in text and "Record of commit" in text
    # one file per (seed, fold), read back instead of redone by the next call
    runs = tmp_path / "methods_smoke"
    assert sorted(p.name for p in runs.iterdir()) == ["seed0-fold1.json", "seed1-fold1.json"]
    assert [(r["seed"], r["fold"]) for r in record["runs"]] == [(0, 1), (1, 1)]
    again = run("bench_methods.py", "--out", str(tmp_path), "--folds", "1", "--seeds", "1", "--record",
                str(record_path), "--runs-only")
    assert "seed 1, fold 1: read from" in again and "no record written" in again


def _record(seeds: list[int], holds_d) -> dict:
    cell = {"f1_mean": 60.0, "f1_std": 1.5, "auc_mean": 90.0, "auc_std": 0.5, "fold_std": 3.25}
    return {"commit": "abc", "profile": "demo", "folds": [1, 2, 3], "seeds": seeds, "test_stride": 2,
            "teacher_clean_f1": 89.0, "pixel_lr_f1": 74.0, "chance_f1": 26.0,
            "methods": {"teacher": {"clean": cell, "block 57%": cell}},
            "claims": [{"name": "(d) node+edge > no-KD", "holds": holds_d, "numbers": {"seeds": len(seeds)}}]}


def test_one_seed_tables_show_the_fold_spread_and_an_undecided_claim(tmp_path):
    import claims

    from occfau_lib import record as ledger

    one, three = _record([0], None), _record([0, 1, 2], False)
    assert ledger.spread_name(one) == "fold std, one seed" and ledger.spread_name(three) == "seed std"
    assert "| teacher | 60.0 ± 3.2 | 60.0 ± 3.2 |" in ledger.methods_table(one)  # fold std with one seed
    assert "| teacher | 60.0 ± 1.5 | 60.0 ± 1.5 |" in ledger.methods_table(three)
    assert "| teacher | 90.0 |" in ledger.methods_table(one, "auc", ["clean"])  # no AUC spread with one seed
    assert "- ? (d)" in ledger.ledger(one) and "- ✗ (d)" in ledger.ledger(three)
    (tmp_path / "README.md").write_text("no markers")
    with pytest.raises(ValueError, match="README.md: needs exactly one"):
        claims.update_readme(one, tmp_path / "README.md")


def test_the_readme_block_is_the_committed_records():
    """The README's claims block is generated from benchmarks/results/methods_demo.json: a new
    record without `python benchmarks/claims.py <record> --readme README.md` fails here."""
    import claims

    record_path = BENCH / "results" / "methods_demo.json"
    if not record_path.exists():
        pytest.skip("no demo record committed")
    readme = BENCH.parent / "README.md"
    assert claims.readme_record_block(readme) == claims.readme_block(claims.read_record(record_path))


@pytest.mark.script
def test_pixel_baseline_prints_its_table_even_when_an_au_is_absent_from_a_fold():
    """Smoke folds are tiny: some AU never occurs in a training fold; it is predicted as a constant."""
    out = run("pixel_baseline.py")
    assert "| pixels + logistic regression (3-fold mean) |" in out and "AUs above chance" in out


@pytest.mark.script
def test_bench_design_measures_worlds_and_student_variants(tmp_path):
    """The demo profile's design choices: a world x teacher-epochs row, student variants with and without KD."""
    import json

    out = run("bench_design.py", "world", "--worlds", "6x2x8", "--epochs", "1", "--out", str(tmp_path))
    assert "| world | images | epochs | test_f1 |" in out and "| 6x2x8 | 96 | 1 |" in out
    out = run("bench_design.py", "student", "--variants", "linear:1:1", "attention:1:1", "--out", str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "design_student.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == ["teacher", "linear:1:1 node + edge KD", "linear:1:1 no KD",
                                          "attention:1:1 node + edge KD", "attention:1:1 no KD"]
    assert all(0 <= r["clean"] <= 100 and 0 <= r["blocks"] <= 100 for r in rows)


@pytest.mark.script
def test_mae_recipes_pretrain_keep_snapshots_and_are_read_against_a_random_encoder(tmp_path):
    """bench_design.py mae pretrains each recipe and reads it with the student next to the random-encoder
    control; pretrain_mae.py keeps the encoder after every epoch and bench_design reads such a snapshot."""
    import json

    for seed in ("0", "1"):
        run("bench_design.py", "mae", "--recipes", "random", "vary:mask_ratios=0.25-0.75,norm_pix_loss=true",
            "--steps", "8", "--corpus", "128", "--student-epochs", "1", "--seed", seed, "--out", str(tmp_path),
            "--record", str(tmp_path / "recipes.json"))
    rows = [json.loads(line) for line in (tmp_path / "design_mae.jsonl").read_text().splitlines()]
    assert [(r["recipe"].split(":")[0], r["steps"], r["seed"]) for r in rows] == [
        ("random", 0, 0), ("vary", 8, 0), ("random", 0, 1), ("vary", 8, 1)]
    assert all(0 <= r["clean"] <= 100 and 0 <= r["blocks"] <= 100 for r in rows)
    vary = json.loads((tmp_path / "recipes.json").read_text())["recipes"]["vary:mask_ratios=0.25-0.75,norm_pix_loss=true"]
    assert vary["seeds"] == [0, 1] and vary["blocks_gain"] == pytest.approx(
        sum(rows[i]["blocks"] - rows[i - 1]["blocks"] for i in (1, 3)) / 2, abs=0.01)
    assert vary["probe_gain"] == pytest.approx(sum(rows[i]["probe_f1"] - rows[i - 1]["probe_f1"] for i in (1, 3)) / 2,
                                               abs=0.01)
    run("pretrain_mae.py", "--recipe", "base", "--steps", "8", "--corpus", "128", "--snapshots", str(tmp_path / "s"),
        "--record", str(tmp_path / "pre.json"), "--render-once")
    record = json.loads((tmp_path / "pre.json").read_text())
    assert record["steps"] == 8 and record["epochs"] == 2 and record["snapshots"][-1] == "step-000008.pt"
    snap = next((tmp_path / "s").glob("base-*/step-000008.pt"))
    run("bench_design.py", "mae", "--recipes", f"long@{snap}", "--steps", "8", "--corpus", "128",
        "--student-epochs", "1", "--out", str(tmp_path / "b"), "--record", str(tmp_path / "b.json"))
    row = json.loads((tmp_path / "b" / "design_mae.jsonl").read_text())
    assert row["steps"] == 8 and row["recipe"] == "long"  # the snapshot's name, not its path


@pytest.mark.script
def test_design_and_scarcity_records_cover_every_variant_encoder_and_count(tmp_path):
    import json

    run("bench_design.py", "design", "--variants", "linear", "att:mapping=attention,lr=1e-3", "--seeds", "0",
        "--student-epochs", "1", "--out", str(tmp_path), "--record", str(tmp_path / "design.json"))
    design = json.loads((tmp_path / "design.json").read_text())
    assert len(design["variants"]) == 2 * 2 * 2  # variants x {mae, random} x {KD, no KD}
    row = design["variants"]["att, no KD, random encoder"]
    assert {"encoder", "kd", "seeds", "clean_f1", "blocks_f1", "clean_auc", "seconds"} <= set(row)
    assert row["encoder"] == "random" and row["kd"] is False and row["seeds"] == [0]
    run("bench_design.py", "design", "--variants", "linear", "--seeds", "1", "--student-epochs", "1",
        "--out", str(tmp_path), "--record", str(tmp_path / "design.json"))  # another lane's seed, same folder
    design = json.loads((tmp_path / "design.json").read_text())
    linear = design["variants"]["linear, node + edge KD, mae encoder"]
    assert linear["seeds"] == [0, 1] and len(linear["per_seed"]["blocks"]) == 2
    gain = design["mae_gain"]["linear, node + edge KD"]
    random = design["variants"]["linear, node + edge KD, random encoder"]
    assert gain["blocks_gain"] == pytest.approx(linear["blocks_f1"] - random["blocks_f1"], abs=0.02)
    run("bench_scarcity.py", "--subjects", "2", "0", "--folds", "1", "--record", str(tmp_path / "scarce.json"))
    scarce = json.loads((tmp_path / "scarce.json").read_text())
    assert scarce["subjects"] == [2, 0] and set(scarce["methods"]) == {
        "student, MAE", "student, random encoder", "teacher", "teacher + occlusion augmentation"}
    assert set(scarce["methods"]["teacher"]["2"]) >= {"clean_f1", "blocks_f1", "per_fold"}


def test_a_corpus_rendered_once_is_the_same_faces(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    sys.path.insert(0, str(BENCH))
    import numpy as np
    from pretrain_mae import Rendered

    from occfau_lib.synthfacs import FaceCorpus

    corpus = FaceCorpus(40, 64, seed=3)
    rendered = Rendered(corpus, chunk=16)
    rows = [39, 0, 17, 17]
    assert np.array_equal(rendered.batch_images(rows), corpus.batch_images(rows))
    assert rendered.key() == corpus.key() and len(rendered) == 40
    assert np.array_equal(Rendered(corpus).batch_images([5]), corpus.batch_images([5]))  # read back from the file


def test_labelled_subjects_nest_and_leave_the_test_part_alone():
    sys.path.insert(0, str(BENCH))
    from bench_scarcity import labelled_subjects

    from occfau_lib import synthfacs
    from occfau_lib.config import DataConfig

    world = synthfacs.build_dataset(cfg=DataConfig(n_subjects=12, n_tasks=1, frames_per_task=2), progress=False)
    small, large, every = (labelled_subjects(world, 1, n) for n in (2, 4, 0))
    assert large[:2] == small and len(every) == 8 and set(large) <= set(every)
    test_subjects = set(world.fold(1)[1].subjects.tolist())
    assert not test_subjects & set(every)


def _run(seed: int, fold: int, f1: dict, setup: str = "S") -> dict:
    scores = {"f1": f1, "auc": {a: 0.5 for a in f1}, "avg_f1": sum(f1.values()) / len(f1), "avg_auc": 0.5, "n": 4}
    return {"commit": "abc", "setup": setup, "seed": seed, "fold": fold, "results": {"teacher": {"clean": scores}}}


def test_single_fold_runs_merge_into_what_the_folds_give_together(tmp_path):
    """merge_runs is aggregate_folds over the runs' folds, per seed, whatever order they come in."""
    import claims

    from occfau_lib.metrics import aggregate_folds

    runs = [_run(0, 2, {1: 0.2, 2: 0.4}), _run(0, 1, {1: 0.6, 2: 1.0}), _run(1, 1, {1: 0.0, 2: 0.5})]
    merged = claims.merge_runs(runs)
    assert sorted(merged) == [0, 1]
    want = aggregate_folds([runs[1]["results"]["teacher"]["clean"], runs[0]["results"]["teacher"]["clean"]])
    assert merged[0]["teacher"]["clean"]["avg_f1"] == pytest.approx(want["avg_f1"]) == pytest.approx(0.55)
    assert merged[0]["teacher"]["clean"]["folds"][0]["f1"] == {1: 0.6, 2: 1.0}  # fold order
    assert merged[1]["teacher"]["clean"]["avg_f1"] == pytest.approx(0.25)


def test_a_run_from_another_setup_or_a_broken_file_is_redone_with_a_warning(tmp_path):
    import json

    import claims

    from occfau_lib.files import write_json

    path = claims.run_path(tmp_path, 1, 2)
    assert path.name == "seed1-fold2.json" and claims.read_run(path, "S") is None  # missing: no warning
    write_json(_run(1, 2, {1: 0.5}), path)
    assert claims.read_run(path, "S")["fold"] == 2
    with pytest.warns(UserWarning, match="another setup"):
        assert claims.read_run(path, "T") is None
    path.write_text(json.dumps({"seed": 1}))
    with pytest.warns(UserWarning, match=r"seed1-fold2.json: not a readable benchmark run \(missing"):
        assert claims.read_run(path, "S") is None
    path.write_text("{truncated")
    with pytest.warns(UserWarning, match="not a readable benchmark run"):
        assert claims.read_run(path, "S") is None


def test_a_runs_setup_ignores_what_only_the_notebooks_choose():
    """Committed runs stay readable when a notebook setting changes (which folds, frames or study
    points the notebooks run); any recipe, the data, the MAE, the conditions or the stride renews them."""
    from dataclasses import replace

    import claims

    from occfau_lib import mae
    from occfau_lib.config import NOTEBOOK_SETTINGS, get_profile

    profile, model, data = get_profile("smoke"), mae.build_mae("tiny"), {"world": "w"}
    conditions = {"clean": "none", "block 50%": "block:32"}
    key = claims.setup_key(profile, data, model, conditions, 2)
    notebooks = replace(profile, folds=(2,), distill_folds=(2, 3), test_stride=7, probe_stride=3,
                        regime_corpora=(8,), regime_steps=(2,))
    changed = [f for f in vars(notebooks) if getattr(notebooks, f) != getattr(profile, f)]
    assert sorted(NOTEBOOK_SETTINGS) == sorted(changed)  # every notebook setting changed, nothing else
    assert claims.setup_key(notebooks, data, model, conditions, 2) == key
    for other in (replace(profile, distill=replace(profile.distill, epochs=9)), replace(profile, probe_epochs=9),
                  replace(profile, teacher_train=replace(profile.teacher_train, lr=1e-4))):
        assert claims.setup_key(other, data, model, conditions, 2) != key
    assert claims.setup_key(profile, {"world": "v"}, model, conditions, 2) != key
    assert claims.setup_key(profile, data, mae.build_mae("tiny"), conditions, 2) != key  # other weights
    assert claims.setup_key(profile, data, model, {"clean": "none"}, 2) != key
    assert claims.setup_key(profile, data, model, conditions, 4) != key


def test_speed_pipelines_take_turns_on_every_batch():
    """Timed in turns, a machine's drift moves every pipeline alike (claims.rates_in_turns)."""
    import time
    from types import SimpleNamespace

    import claims

    calls = []

    def pipeline(name, seconds):
        def run(batch):
            calls.append((name, batch.i))
            time.sleep(seconds)
        return run

    batches = [SimpleNamespace(images=[0] * 8, i=i) for i in range(3)]
    rates = claims.rates_in_turns({"fast": pipeline("fast", 0.001), "slow": pipeline("slow", 0.02)}, batches)
    assert calls == [("fast", 0), ("slow", 0)] + [(name, i) for i in range(3) for name in ("fast", "slow")]
    assert list(rates) == ["fast", "slow"] and 0 < rates["slow"] < rates["fast"] <= 8 / 0.001


def _scores(blocks: float) -> dict:
    return {c: {"avg_f1": blocks / 100} for c in ("clean", "block 29%", "block 57%")}


def test_claim_a_compares_the_student_on_the_mae_with_it_on_a_random_encoder_paired_by_seed():
    """(a) holds when the paired gain is >= 5 F1 and above 2 paired seed std; (f) compares the student
    with the occlusion-augmented teacher; one seed leaves (a) undecided."""
    import claims

    from occfau_lib import record as ledger

    def per_seed(gains):
        return {s: {ledger.STUDENT: _scores(60 + g), ledger.RANDOM_STUDENT: _scores(60), ledger.NO_KD: _scores(60),
                    ledger.NODE_KD: _scores(55), ledger.EDGE_KD: _scores(55), ledger.TEACHER: _scores(50),
                    ledger.RECONSTRUCT: _scores(50), ledger.AUGMENTED: _scores(70)} for s, g in enumerate(gains)}

    def claims_for(gains):
        runs = per_seed(gains)
        summary = claims.summarise({s: {m: {c: {**r, "avg_auc": 0.5, "folds": [r]} for c, r in rows.items()}
                                        for m, rows in res.items()} for s, res in runs.items()})
        checked = claims.check_claims(runs, summary, {"gain": 1.0}, {"student": 10, "reconstruct-then-detect": 1})
        return {c["name"][:3]: c for c in checked}

    steady, noisy, one = claims_for([6, 6.5, 7]), claims_for([1, 7, 13]), claims_for([8])
    assert steady["(a)"]["holds"] is True and steady["(a)"]["numbers"]["gain_over_random_encoder"] == 6.5
    assert steady["(a)"]["numbers"]["probe_gain"] == 1.0  # the probe gain stays in the record as a number
    assert noisy["(a)"]["holds"] is False  # mean 7 but paired std 6: not a finding
    assert one["(a)"]["holds"] is None
    assert steady["(f)"]["holds"] is False and claims_for([11, 11, 11])["(f)"]["holds"] is True


def test_the_regime_record_holds_what_notebook_02_draws():
    """Notebook 02 reads the data-regime study from its benchmark record (benchmarks/bench_regime.py)."""
    import matplotlib

    matplotlib.use("Agg")
    from occfau_lib import viz
    from occfau_lib.config import get_profile
    from occfau_lib.files import read_json

    record, demo = read_json(BENCH / "results" / "regime_demo.json"), get_profile("demo")
    assert record["profile"] == "demo" and record["folds"] == [1] and set(record["random"]) == {"linear", "mlp"}
    assert [(r["corpus"], r["steps"]) for r in record["runs"]] == [(n, t) for n in demo.regime_corpora
                                                                   for t in demo.regime_steps]
    assert len(viz.regime_curves(record, chance=25.0).axes[0].lines) == 2 * 2 + 2 + 1


def test_scarcity_with_every_subject_trains_the_profiles_own_models(monkeypatch):
    """Subject count 0 hands the profile's dataset and key to every training call (so the shipped models are
    those runs); a smaller count hands a subset whose key names its labelled subjects."""
    sys.path.insert(0, str(BENCH))
    import bench_scarcity
    import numpy as np

    from occfau_lib import synthfacs
    from occfau_lib.config import DataConfig, get_profile

    world = synthfacs.build_dataset(cfg=DataConfig(n_subjects=12, n_tasks=1, frames_per_task=2), progress=False)
    key, seen = {"world": 1}, []

    def trained(ds, fold, data_key, *args, **kwargs):
        seen.append((len(ds), data_key))
        return object(), {}

    monkeypatch.setattr(bench_scarcity.teacher, "trained_teacher", trained)
    monkeypatch.setattr(bench_scarcity.distill, "trained_student", trained)
    monkeypatch.setattr(bench_scarcity, "_scores", lambda *args: {"clean": 0.0, "blocks": 0.0})
    encoders = {"mae": type("E", (), {"config": type("C", (), {"patch_size": 8})()})(), "random": None}
    profile = get_profile("smoke")
    bench_scarcity.scarce_run(profile, world, key, encoders, 1, 0, profile.distill)
    assert seen == [(len(world), key)] * 4  # teacher, augmented teacher, two students
    seen.clear()
    bench_scarcity.scarce_run(profile, world, key, encoders, 1, 2, profile.distill)
    chosen = bench_scarcity.labelled_subjects(world, 1, 2)
    test_faces = int(np.isin(world.subjects, list(set(world.fold(1)[1].subjects.tolist()))).sum())
    assert all(k == {**key, "labelled_subjects": sorted(chosen)} for _, k in seen)
    assert all(n == test_faces + int(np.isin(world.subjects, chosen).sum()) for n, _ in seen)


def test_design_table_shows_each_variant_by_encoder_and_kd_with_the_paired_gain():
    sys.path.insert(0, str(BENCH))
    from bench_design import design_record

    from occfau_lib import record

    def row(variant, encoder, kd, seed, blocks):
        return {"variant": variant, "settings": variant, "encoder": encoder, "kd": kd, "seed": seed, "epochs": 8,
                "clean": blocks + 10, "blocks": blocks, "clean_auc": 90.0, "seconds": 1}

    rows = [row("linear", enc, kd, s, base + s + (5 if kd else 0)) for enc, base in (("mae", 70), ("random", 50))
            for kd in (True, False) for s in (0, 1)] + [row("attention", "mae", True, 0, 80)]
    table = record.design_table(design_record(rows)).splitlines()
    assert table[0].startswith("| Variant | mae, node + edge KD | mae, no KD | random, node + edge KD | random, no KD")
    assert table[2] == "| linear | 85.5 / 75.5 ± 0.5 | 80.5 / 70.5 ± 0.5 | 65.5 / 55.5 ± 0.5 | 60.5 / 50.5 ± 0.5 | " \
                       "+20.0 ± 0.0 / +20.0 ± 0.0 |"
    assert table[3] == "| attention | 90.0 / 80.0 ± 0.0 | – | – | – | – / – |"
