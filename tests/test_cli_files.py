"""The researcher's path: the command line on BP4D, DISFA and CSV trees in their distributed
layouts (random pixels), content-keyed caches, settings checked before any work, one config per
run directory, and the paper preset's 224-px path with a ViT-B/16 MAE from a local folder."""
from __future__ import annotations

import json

import pytest
from fake_trees import bp4d_tree, csv_tree, disfa_tree

from occfau_lib import cli

pytestmark = pytest.mark.usefixtures("one_thread")

#: Batches small enough for the tiny trees (every training fold holds >= 16 images).
SMALL = ["batch_size=8", "pretrain.batch_size=8", "teacher_train.batch_size=8", "distill.batch_size=8"]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private cache for this test, so 'trained' and 'reused' can be told apart."""
    folder = tmp_path / "data"
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(folder))
    return folder


def tree(kind: str, tmp_path):
    """``--dataset`` arguments for a fake tree of ``kind``, in the layout the dataset ships in."""
    if kind == "bp4d":
        return ["--dataset", "bp4d", "--data-root", str(bp4d_tree(tmp_path / "BP4D"))]
    if kind == "disfa":
        return ["--dataset", "disfa", "--data-root", str(disfa_tree(tmp_path / "DISFA")), "--threshold", "2"]
    return ["--dataset", "csv", "--data-root", str(csv_tree(tmp_path / "mine"))]


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["bp4d", "disfa", "csv"])
def test_all_four_stages_run_on_a_file_dataset(kind, tmp_path, data_dir):
    """32-px crops resized to the smoke profile's 64 px; MAE pretraining streams the files."""
    out = tmp_path / "run"
    common = [*tree(kind, tmp_path), "--resize", "--config", "smoke", "--out", str(out), "--device", "cpu",
              "--fold", "1", *SMALL]
    for stage in cli.STAGES:
        assert cli.main([stage, *common]) == 0, stage
    log = records(out)
    assert [r["stage"] for r in log[:3]] == ["pretrain-mae", "train-teacher", "distill"]
    assert len({r["config"] for r in log}) == 1  # every record names the run's config
    evaluated = [r for r in log if r["stage"] == "evaluate"]
    assert {r["method"] for r in evaluated} == {"teacher", "student"} and len(evaluated) == 20
    assert all(0 <= r["avg_f1"] <= 1 for r in evaluated)
    assert "| student / clean / fold 1 |" in (out / "f1_per_au.md").read_text()
    assert len(list((data_dir / "cache").glob("mae-*.pt"))) == 1  # pretrained on the files, cached


def test_a_relabelled_csv_retrains_the_teacher(tmp_path, data_dir):
    args = [*tree("csv", tmp_path), "--resize", "--config", "smoke", "--out", str(tmp_path / "run"),
            "--device", "cpu", "--fold", "1", *SMALL]
    assert cli.main(["train-teacher", *args]) == 0
    (first,) = (data_dir / "cache").glob("teacher-*.pt")
    stamp = first.stat().st_mtime_ns
    assert cli.main(["train-teacher", *args]) == 0  # same data: reused, not retrained
    assert first.stat().st_mtime_ns == stamp and len(list((data_dir / "cache").glob("teacher-*.pt"))) == 1
    labels = tmp_path / "mine" / "labels.csv"
    lines = labels.read_text().splitlines()
    flipped = [lines[0]] + [",".join(c if j < 2 or j == len(row) - 1 else str(1 - int(c)) for j, c in
                                     enumerate(row)) for row in (line.split(",") for line in lines[1:])]
    labels.write_text("\n".join(flipped) + "\n")
    assert cli.main(["train-teacher", *args]) == 0
    assert len(list((data_dir / "cache").glob("teacher-*.pt"))) == 2  # new labels, new teacher


@pytest.mark.parametrize("extra, message", [
    (["teacher_train.epochs=-1"], "setting 'teacher_train': epochs must be >= 1"),
    (["batch_size=0"], "setting 'batch_size' must be >= 1"),
    (["distill.batch_size=0"], "setting 'distill': batch_size must be >= 1"),
    (["--device", "banana"], "--device 'banana' is not a device"),
    (["--device", "cuda:7"], "--device cuda:7: "),
    (["--device", "mps"], "--device 'mps' is not a device"),
    (["--numbering", "1"], "--numbering cannot be used with --dataset csv"),
    (["--labels", "x"], "--labels cannot be used with --dataset csv"),
    (["--mae-weights", "/nowhere/mae"], "--mae-weights: no such file or folder"),
])
def test_bad_settings_are_refused_before_any_work(extra, message, tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    argv = ["train-teacher", *tree("csv", tmp_path), "--config", "smoke", "--out", str(out), "--resize", *extra]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (data_dir / "cache").exists()  # nothing written, nothing trained


def test_synthfacs_refuses_file_flags(tmp_path, capsys):
    assert cli.main(["train-teacher", "--config", "smoke", "--out", str(tmp_path), "--resize"]) == 2
    assert "--resize cannot be used with --dataset synthfacs" in capsys.readouterr().err


@pytest.mark.parametrize("precision, warned", [("bf16", True), ("fp32", False)])
def test_bf16_on_the_cpu_is_flagged_before_any_work(precision, warned, tmp_path, data_dir, capsys):
    """The paper presets' bf16 autocast, asked for on the CPU, gets a one-line warning with the fix."""
    args = cli.parser().parse_args(["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke",
                                    "--out", str(tmp_path / "run"), "--device", "cpu", f"engine.precision={precision}"])
    assert cli.Run(args).engine.cfg.precision == precision
    assert (cli.CPU_BF16_WARNING in capsys.readouterr().out) == warned
    assert "engine.precision=fp32" in cli.CPU_BF16_WARNING and not (data_dir / "cache").exists()


def test_a_run_directory_holds_one_config(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    args = ["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke", "--out", str(out),
            "--device", "cpu", "--fold", "1", *SMALL]
    assert cli.main(args) == 0
    config = (out / "config.yaml").read_text()
    assert cli.main([*args, "teacher_train.epochs=2"]) == 2
    assert "holds a run made with another config (differs in: teacher_train.epochs)" in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == config and len(records(out)) == 1  # untouched
    assert cli.main([*args, "teacher_train.epochs=2", "--overwrite"]) == 0
    assert "epochs: 2" in (out / "config.yaml").read_text()
    (record,) = records(out)  # the old run's record is gone with its config
    assert len(record["history"]["loss"]) >= 1


@pytest.mark.script
def test_the_paper_preset_runs_at_224_px_with_a_local_vit_b(tmp_path, data_dir, capsys):
    """A randomly initialised ViT-B/16 MAE saved as a Hugging Face folder stands in for the official
    weights; ResNet-50 teacher, 224-px crops, every stage for a step or two on a tiny BP4D tree. In fp32:
    the preset's bf16 autocast is emulated on a CPU without bf16 units (here 322 s for this test instead
    of ~90 s; the CLI says so, checked below) and is tested on the tiny models in test_teacher/test_train."""
    from occfau_lib.mae import build_mae

    weights = tmp_path / "vit-mae-base"
    build_mae("paper").save_pretrained(weights)
    out = tmp_path / "run"
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1",))  # 8 training, 8 test faces for fold 1
    common = ["--dataset", "bp4d", "--data-root", str(root), "--resize", "--config", "paper-bp4d", "--mae-weights", str(weights),
              "--out", str(out), "--device", "cpu", "--fold", "1", "engine.workers=0", "batch_size=4",
              "teacher_train.batch_size=8", "teacher_train.epochs=1", "distill.batch_size=8", "distill.epochs=1",
              "engine.precision=fp32"]
    for stage in cli.STAGES:
        assert cli.main([stage, *common]) == 0, stage
    assert cli.CPU_BF16_WARNING not in capsys.readouterr().out
    log = records(out)
    assert [r["stage"] for r in log[:3]] == ["pretrain-mae", "train-teacher", "distill"]
    assert "history" not in log[0]  # official weights are loaded, not pretrained
    evaluated = [r for r in log if r["stage"] == "evaluate"]
    assert len(evaluated) == 20 and all(0 <= r["avg_auc"] <= 1 or r["avg_auc"] != r["avg_auc"] for r in evaluated)
