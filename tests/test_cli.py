"""The command line (python -m occfau_lib) and its run configurations."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from occfau_lib import cli
from occfau_lib.cli_settings import config_name, run_config
from occfau_lib.config import PRESETS

pytestmark = pytest.mark.usefixtures("one_thread")


def test_presets_carry_the_per_dataset_settings():
    assert set(PRESETS) == {"smoke", "demo", "paper-bp4d", "paper-disfa"}
    bp4d, disfa = PRESETS["paper-bp4d"], PRESETS["paper-disfa"]
    assert bp4d.teacher_train.edge_weight == 0.05 and disfa.teacher_train.edge_weight == 0.01
    assert bp4d.mae == disfa.mae == "paper" and bp4d.data.img_size == 224
    assert bp4d.engine.precision == disfa.engine.precision == "bf16" and bp4d.engine.workers == 8
    assert PRESETS["demo"].engine.precision == "fp32" and PRESETS["demo"].engine.workers == 0


def test_overrides_are_typed_and_nested(tmp_path):
    p = run_config("demo", ["distill.epochs=2", "teacher_train.lr=3e-4", "folds=[1, 2]", "distill.depth=null"])
    assert (p.distill.epochs, p.teacher_train.lr, p.folds, p.distill.depth) == (2, 3e-4, (1, 2), None)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("base: smoke\ndistill:\n  epochs: 3\n  lr: 0.01\n")
    p = run_config(str(yaml_file), ["distill.epochs=4"])
    assert p.name == "smoke" and p.distill.epochs == 4 and p.distill.lr == 0.01  # the command line wins


@pytest.mark.parametrize("overrides, message", [
    (["nope=1"], "unknown setting 'nope'"),
    (["distill.nope=1"], "unknown setting 'distill.nope'"),
    (["distill.epochs=two"], "'distill.epochs' must be int"),
    (["distill.epochs=1.5"], "'distill.epochs' must be int"),
    (["distill.augment=1"], "'distill.augment' must be bool"),
    (["batch_size=null"], "cannot be null"),
    (["distill=3"], "is a group"),
    (["epochs"], "is not key=value"),
    (["teacher=huge"], "'teacher' = 'huge' is not one of"),
    (["folds=[4]"], "folds must be among"),
    (["folds=[]"], "'folds' must be a non-empty list of int; got \\[\\]"),
    (["folds=[2.9]"], "'folds' must be a non-empty list of int; got \\[2.9\\]"),
    (["folds=[true]"], "'folds' must be a non-empty list of int; got \\[True\\]"),
    (["distill_folds=[1, 1]"], "'distill_folds': folds must be among 1, 2, 3, each once"),
    (["distill.depth=99"], "'distill.depth' = 99: the 'tiny' MAE has 6 blocks"),
    (["data.img_size=48"], "'data.img_size' = 48: the 'tiny' MAE reads 64-px faces"),
    (["distill.epochs=[1"], "override 'distill.epochs=\\[1', line 1: not valid YAML"),
    (["engine.precision=fp16"], "setting 'engine': precision must be 'fp32' or 'bf16'"),
    (["engine.workers=-2"], "setting 'engine': workers must be >= 0"),
])
def test_config_errors_name_the_setting(overrides, message):
    with pytest.raises(ValueError, match=message):
        run_config("demo", overrides)


def test_unknown_config_and_bad_yaml(tmp_path):
    with pytest.raises(ValueError, match="neither a preset"):
        run_config("paper")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: huge\n")
    with pytest.raises(ValueError, match="base 'huge' is not a preset"):
        run_config(str(bad))


@pytest.mark.parametrize("text, message", [
    ("base: smoke\nteacher_train:\n  epochs: 1\n  epochs: 3\n", r"run\.yaml, line 4: .*duplicate key 'epochs' "
                                                                  r"\(first on line 3\)"),
    ("base: smoke\nepochs: [1\n", r"run\.yaml, line 3: not valid YAML"),
    ("base: smoke\nteacher_train:\n  epochs: 1\n bad: 2\n", r"run\.yaml, line 4: not valid YAML"),
])
def test_yaml_configs_with_duplicate_keys_or_bad_syntax_are_refused(tmp_path, capsys, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message):
        run_config(str(config))
    assert cli.main(["train-teacher", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "run.yaml" in err


def test_occfau_profile_is_the_default_config(monkeypatch, capsys):
    monkeypatch.delenv("OCCFAU_PROFILE", raising=False)
    assert config_name(None) == "demo"
    monkeypatch.setenv("OCCFAU_PROFILE", "smoke")
    assert config_name(None) == "smoke" and config_name("demo") == "demo"  # --config wins
    for value, message in (("bogus", "OCCFAU_PROFILE='bogus' is not a command-line preset"),
                           ("paper", "the paper presets are paper-bp4d and paper-disfa")):
        monkeypatch.setenv("OCCFAU_PROFILE", value)
        with pytest.raises(ValueError, match=message):
            config_name(None)
        assert cli.main(["train-teacher"]) == 2  # before anything is read or written
        assert message in capsys.readouterr().err


def test_a_run_config_yaml_is_a_config(tmp_path):
    """A run's config.yaml, dataset record included, passed back to --config repeats its settings."""
    written = {"base": "smoke", "distill": {"epochs": 3}, "dataset": {"name": "csv", "root": "/x", "key": {}}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(written))
    assert run_config(str(config)).distill.epochs == 3


@pytest.mark.parametrize("stage", list(cli.STAGES))
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([stage, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--fold" in out and "key=value" in out


def test_bad_input_exits_2_with_a_clear_message(capsys, tmp_path):
    assert cli.main(["train-teacher", "--config", "smoke", "--out", str(tmp_path), "distill.epochs=x"]) == 2
    assert "'distill.epochs' must be int" in capsys.readouterr().err
    assert cli.main(["pretrain-mae", "--config", "paper-bp4d", "--out", str(tmp_path)]) == 2
    assert "--mae-weights" in capsys.readouterr().err  # before any 224-px world is rendered
    assert cli.main(["train-teacher", "--config", "smoke", "--data-root", "x", "--out", str(tmp_path)]) == 2


def test_all_four_stages_run_on_synthfacs(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--config", "smoke", "--out", str(out), "--device", "cpu"]
    assert cli.main(["pretrain-mae", *common]) == 0
    assert cli.main(["train-teacher", *common, "--fold", "1"]) == 0
    assert cli.main(["distill", *common, "--fold", "1", "distill.epochs=1"]) == 0
    assert cli.main(["evaluate", *common, "--fold", "1", "distill.epochs=1"]) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in lines[:3]] == ["pretrain-mae", "train-teacher", "distill"]
    assert lines[1]["fold"] == 1 and "final_loss" in lines[1] and "images_per_s" in lines[1]
    evaluated = [r for r in lines if r["stage"] == "evaluate"]
    assert {r["method"] for r in evaluated} == {"teacher", "student"} and len(evaluated) == 2 * 10
    table = (out / "f1_per_au.md").read_text()
    assert "| student / clean / fold 1 |" in table and "| teacher / block 50% / 1-fold average |" in table
    assert (out / "f1_per_au.csv").read_text().startswith("method,AU1,")
    assert "base: smoke" in (out / "config.yaml").read_text()


def _cli(data_dir, *args):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OCCFAU_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "occfau_lib", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.script
def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    import signal
    import time

    import torch

    args = ["train-teacher", "--config", "smoke", "--fold", "1", "--device", "cpu", "teacher_train.epochs=6"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _cli(straight, *args, "--out", str(tmp_path / "a")).wait(timeout=300) == 0
    run = _cli(killed, *args, "--out", str(tmp_path / "b"))
    deadline = time.time() + 300
    while not list(killed.glob("cache/teacher-*.partial.pt")) and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the next epoch
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    epoch = torch.load(next(killed.glob("cache/teacher-*.partial.pt")), weights_only=True)["epoch"]
    assert 1 <= epoch < 6
    assert _cli(killed, *args, "--out", str(tmp_path / "b"), "--resume").wait(timeout=300) == 0
    assert not list(killed.glob("cache/*.partial.pt"))  # cleaned up once the model is stored
    a = torch.load(next(straight.glob("cache/teacher-*.pt")), weights_only=True)
    b = torch.load(next(killed.glob("cache/teacher-*.pt")), weights_only=True)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["history"]["loss"] == b["history"]["loss"]


@pytest.mark.script
def test_torchrun_two_processes_match_one(tmp_path):
    """DDP on CPU (gloo): 2 processes x half of each batch vs 1 process x the whole batch. The same
    batches, augmentations and occlusions are drawn; only the batch-norm statistics differ (per
    half). Tolerance on every condition, teacher and student: average F1 within 0.08, average AUC
    within 0.10, and the AUC gap 0.045 or less on average."""
    import subprocess
    import sys

    args = ["--config", "smoke", "--fold", "1", "--device", "cpu", "teacher_train.epochs=3", "distill.epochs=2"]
    outs = {}
    for name, launcher in (("one", [sys.executable, "-m", "occfau_lib"]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                                    "--master_port=29531", "-m", "occfau_lib"])):
        env = {**__import__("os").environ, "OCCFAU_DATA_DIR": str(tmp_path / name), "OMP_NUM_THREADS": "1"}
        for stage in ("train-teacher", "evaluate"):
            done = subprocess.run([*launcher, stage, *args, "--out", str(tmp_path / name / "run")], env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
        outs[name] = [json.loads(line) for line in (tmp_path / name / "run" / "metrics.jsonl").read_text().splitlines()]
    one = {r["method"] + r["condition"]: r for r in outs["one"] if r["stage"] == "evaluate"}
    two = {r["method"] + r["condition"]: r for r in outs["two"] if r["stage"] == "evaluate"}
    assert one.keys() == two.keys() and len(one) == 20  # rank 0 alone wrote the log: no duplicates
    gaps = np.array([[one[k]["avg_f1"] - two[k]["avg_f1"], one[k]["avg_auc"] - two[k]["avg_auc"]] for k in one])
    # measured when written (renderer v2): |F1 gap| <= 0.038, |AUC gap| <= 0.062, mean |AUC gap| 0.017; on
    # renderer v3's world: |AUC gap| <= 0.080, mean 0.032, the teacher rows 0.03-0.08 (its batch norm sees
    # half batches of 8 per process), the student rows <= 0.018. A rank drawing other batches, or a
    # duplicated log, fails far outside these bounds.
    assert np.abs(gaps[:, 0]).max() <= 0.08 and np.abs(gaps[:, 1]).max() <= 0.10
    assert np.abs(gaps[:, 1]).mean() <= 0.045
