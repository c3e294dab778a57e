"""``make test``'s workers (tests/conftest.py): each gets its share of the cores, all share one data
folder, and the long tests are collected first."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = '''
import json, os, pytest, torch

@pytest.fixture(scope="session", autouse=True)
def report():  # every process that runs a test of this file says what it was given
    report = {"omp": os.environ.get("OMP_NUM_THREADS"), "torch": torch.get_num_threads(),
              "data": os.environ["OCCFAU_DATA_DIR"], "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}
    with open(os.path.join(os.environ["REPORTS"], f"report-{report['worker']}.json"), "w") as f:
        json.dump(report, f)

@pytest.mark.parametrize("i", range(6))
def test_quick(i):
    pass

@pytest.mark.script
def test_long():
    pass
'''


def run_pytest(folder: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OCCFAU_DATA_DIR") and not k.startswith("PYTEST_")}
    env["REPORTS"] = str(folder)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--basetemp",
                           str(folder / "base"), *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def probe_run(tmp_path):
    """A scratch project: the project's conftest and the probe tests above."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    script: long\n")
    (tmp_path / "test_probe.py").write_text(PROBE)
    return tmp_path


def test_two_workers_share_the_cores_and_one_data_folder(probe_run):
    tmp_path = probe_run
    run_pytest(tmp_path, "-n", "2", "--dist", "worksteal")
    reports = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("report-*.json"))]
    assert [r["worker"] for r in reports] == ["gw0", "gw1"]
    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert all(r["omp"] == share and r["torch"] == int(share) for r in reports)
    assert all(Path(r["data"]).name == "occfau-data" for r in reports)
    assert {r["data"] for r in reports} == {str(tmp_path / "base" / "occfau-data")}  # the run's, above each worker's


def torch_threads() -> int:
    """What torch uses in a fresh process with OMP_NUM_THREADS unset (torch's own default)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                          capture_output=True, text=True, timeout=120)
    return int(done.stdout)


def test_one_process_keeps_every_core_and_collects_the_long_tests_first(probe_run):
    tmp_path = probe_run
    order = run_pytest(tmp_path, "--collect-only").splitlines()
    assert [line.split("::")[1] for line in order if "::" in line] == [
        "test_long", *(f"test_quick[{i}]" for i in range(6))]
    run_pytest(tmp_path, "-k", "long")
    report = json.loads((tmp_path / "report-main.json").read_text())
    assert report["omp"] is None and report["torch"] == torch_threads()
    assert Path(report["data"]).parent == tmp_path / "base"  # its own folder in the run's
