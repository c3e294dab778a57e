"""The researcher's path: the command line on BP4D, DISFA and CSV trees in their distributed
layouts (random pixels), content-keyed caches, settings checked before any work, one config per
run directory, and the paper preset's 224-px path with a ViT-B/16 MAE from a local folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_trees import bp4d_tree, csv_tree, disfa_tree

from occfau_lib import cli, files, metrics

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
    assert cli.main(["train-teacher", *args]) == 2  # another dataset: not in this run's directory
    assert cli.main(["train-teacher", *args, "--overwrite"]) == 0
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
    (["distill.depth=99"], "setting 'distill.depth' = 99: the 'tiny' MAE has 6 blocks"),  # the distill stage's
    (["data.img_size=48"], "setting 'data.img_size' = 48: the 'tiny' MAE reads 64-px faces"),  # the MAE's
    (["folds=[]"], "setting 'folds' must be a non-empty list of int"),
    (["--fold", "1", "--fold", "1"], "--fold 1 is given twice"),
    (["distill.batch_size=40"], "setting 'distill.batch_size' = 40: fold 1 of "),  # 32 training faces
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


def claim(argv):
    """The checks and run directory of a command, without running its stage."""
    return cli.Run(cli.parser().parse_args(argv))


def test_a_run_directory_records_its_dataset_and_refuses_another(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    bp4d = ["train-teacher", *tree("bp4d", tmp_path), "--resize", "--config", "smoke", "--out", str(out)]
    claim(bp4d).log(model="teacher", fold=1)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["dataset"]["name"] == "bp4d" and config["dataset"]["root"] == str(tmp_path / "BP4D")
    assert set(config["dataset"]["key"]) >= {"labels", "images", "image_size"}
    assert records(out)[0]["dataset"] == "bp4d"
    csv = ["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke", "--out", str(out)]
    assert cli.main(csv) == 2
    err = capsys.readouterr().err
    assert "holds a run made with another config (differs in: dataset." in err
    assert config == yaml.safe_load((out / "config.yaml").read_text()) and len(records(out)) == 1  # untouched


def test_a_torn_last_record_does_not_swallow_the_next(tmp_path, data_dir):
    out = tmp_path / "run"
    run = claim(["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke", "--out", str(out)])
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"stage": "tra')  # a run killed mid-write
    run.log(model="teacher", fold=1)
    with pytest.warns(UserWarning, match="line 1: not a JSON record"):
        (record,) = metrics.read_jsonl(out / "metrics.jsonl")
    assert record["model"] == "teacher" and (out / "metrics.jsonl").read_text().count("\n") == 2


def test_all_labels_unknown_is_refused_before_training(tmp_path, data_dir, capsys):
    labels = csv_tree(tmp_path / "mine")
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[0]] + [",".join(c if j < 2 or j == len(row) - 1 else "" for j, c in
                                                       enumerate(row)) for row in (line.split(",") for line in
                                                                                    lines[1:])]) + "\n")
    argv = ["train-teacher", "--dataset", "csv", "--data-root", str(labels), "--resize", "--config", "smoke",
            "--out", str(tmp_path / "run"), "--fold", "1", *SMALL]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{labels}: every label of fold 1's training faces is unknown" in err and "nothing to learn" in err
    assert not (data_dir / "cache").exists()


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def test_unusable_folders_are_one_line_naming_them(tmp_path, data_dir, monkeypatch, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke", "--fold", "1", *SMALL]
    assert cli.main([*argv, "--out", str(afile)]) == 2
    assert f"--out {afile}: a file, not a folder" in _one_line(capsys)
    assert cli.main([*argv, "--out", str(afile / "run")]) == 2
    assert f"--out {afile / 'run'}: {afile}: a file, not a folder" in _one_line(capsys)
    long = tmp_path / ("x" * 300) / "run"
    assert cli.main([*argv, "--out", str(long)]) == 2
    assert f"--out {long}: " in _one_line(capsys)  # File name too long
    assert cli.main(["train-teacher", "--dataset", "csv", "--data-root", str(long / "labels.csv"), "--config",
                     "smoke", "--out", str(tmp_path / "run")]) == 2
    assert f"error: {long / 'labels.csv'}: " in _one_line(capsys)
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(afile))
    assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert f"OCCFAU_DATA_DIR {afile}: a file, not a folder" in _one_line(capsys)
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(data_dir))
    # read-only folders (the tests run as root, which ignores permission bits: the check is faked)
    real_access = files.os.access
    for folder, message in ((data_dir, f"OCCFAU_DATA_DIR {data_dir}: not writable"),
                            (tmp_path, f"--out {tmp_path / 'run'}: {tmp_path}: not writable")):
        monkeypatch.setattr(files.os, "access", lambda p, mode, f=folder: Path(p) != f and real_access(p, mode))
        assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2
        assert message in _one_line(capsys)
    monkeypatch.setattr(files.os, "access", real_access)
    assert not (tmp_path / "run").exists() and not (data_dir / "cache").exists()


def test_an_os_error_during_a_run_is_one_line_naming_the_file(tmp_path, data_dir, monkeypatch, capsys):
    def refused(run):
        raise PermissionError(13, "Permission denied", str(tmp_path / "cache" / "teacher.pt"))

    monkeypatch.setattr(cli, "train_teacher", refused)
    assert cli.main(["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke",
                     "--out", str(tmp_path / "run")]) == 2
    assert _one_line(capsys) == f"error: {tmp_path / 'cache' / 'teacher.pt'}: Permission denied"


def test_ctrl_c_says_how_to_resume_and_the_resumed_run_matches(tmp_path, data_dir, monkeypatch, interrupt, capsys):
    import torch

    from occfau_lib import train

    argv = ["train-teacher", *tree("csv", tmp_path), "--resize", "--config", "smoke", "--device", "cpu",
            "--fold", "1", *SMALL, "teacher_train.epochs=2", "--out", str(tmp_path / "run")]
    interrupt(train, 6)  # 4 steps per epoch: killed in epoch 2, after epoch 1 was checkpointed
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar's last state: one line, no traceback
    assert last.startswith("interrupted; to continue from the last finished epoch: python -m occfau_lib train-teacher")
    assert last.endswith(" --resume") and "Traceback" not in err
    assert cli.main([*argv, "--resume"]) == 0
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path / "straight"))
    assert cli.main([*argv[:-1], str(tmp_path / "straight-run")]) == 0
    (resumed,), (straight,) = (list(d.glob("cache/teacher-*.pt")) for d in (data_dir, tmp_path / "straight"))
    a, b = (torch.load(p, weights_only=True)["model"] for p in (resumed, straight))
    assert all(torch.equal(a[k], b[k]) for k in a)
