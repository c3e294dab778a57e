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
    assert "| student (visible latent -> mapping) |" in out
    assert "| reconstruct-then-detect (MAE decode + teacher) |" in out
    assert "speed ratio:" in out


@pytest.mark.script
def test_bench_methods_prints_and_writes_the_table(tmp_path):
    out = run("bench_methods.py", "--out", str(tmp_path))
    for row in ("teacher", "teacher + occlusion augmentation", "reconstruct-then-detect",
                "linear probe on MAE latent", "student, no KD", "student, node + edge KD"):
        assert f"| {row} |" in out
    header = next(line for line in out.splitlines() if line.startswith("| Method |"))
    assert header.startswith("| Method | clean | patches 25% |") and "| sunglasses |" in header  # conditions = columns
    csv = (tmp_path / "methods_f1.csv").read_text().splitlines()
    assert csv[0].startswith("method,clean,patches 25%") and len(csv) == 9
    per_au = (tmp_path / "methods_per_au.csv").read_text().splitlines()
    assert per_au[0].startswith("method,AU1,") and len(per_au) == 1 + 8 * 15
