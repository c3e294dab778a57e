"""Models shipped with the repository: written by `make models`, loaded only when their key matches."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

import ship_models as shipped
from occfau_lib import cache
from occfau_lib.config import get_profile

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """A private training cache and a private shipped-models folder."""
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OCCFAU_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(cache, "_SAID", set())  # "training it instead" lines print once per process and kind
    return tmp_path


def test_make_models_ships_what_the_notebooks_use_and_it_loads_without_training(dirs, monkeypatch, capsys):
    profile = get_profile("smoke")
    manifest = shipped.make_models(profile, half=True, progress=False)  # as `make models` ships them
    files = manifest["files"]
    kinds = sorted(entry["kind"] for entry in files.values())
    # 3 teachers (one per fold) + the augmented teacher of fold 1; the latent and pixel probes of notebook
    # 04's table; the four KD ablations and the student on a random encoder
    assert kinds == ["mae", "probe", "probe"] + ["student"] * 5 + ["teacher"] * 4
    for name, entry in files.items():
        path = dirs / "models" / name
        assert path.stat().st_size == entry["bytes"] and cache.file_sha256(path) == entry["sha256"]
        assert entry["key"]["version"] and entry["seconds"] > 0
    assert all(entry["fp16"] == (entry["kind"] != "probe") for entry in files.values())  # probes stay exact
    assert all(len(entry["fingerprint"]) == 16 for entry in files.values() if entry["kind"] in ("mae", "teacher"))
    # a fresh machine: no training cache, the shipped files only; the fp16 teachers still key the
    # students (and the augmented teacher) as trained, so nothing is retrained
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(dirs / "fresh"))
    assert shipped.missing_models(profile) == []
    assert not (dirs / "fresh" / "cache").exists()  # nothing was trained or written
    # make models again on that machine: what is shipped and current is kept as it is, nothing retrained
    assert shipped.make_models(profile, half=True, progress=False)["files"] == files
    assert not (dirs / "fresh" / "cache").exists()
    # a code or config change the shipped files were not made with: named, and trained instead
    changed = replace(profile, teacher_train=replace(profile.teacher_train, epochs=2))
    missing = shipped.missing_models(changed)
    assert missing and "teacher" in missing[0] and "make models" in missing[0]
    assert "no shipped teacher model matches" in capsys.readouterr().out


def test_retrain_ignores_the_shipped_models(dirs, monkeypatch, capsys):
    profile = get_profile("smoke")
    shipped.make_models(profile, progress=False)
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(dirs / "fresh"))
    monkeypatch.setenv(cache.RETRAIN_ENV, "1")
    missing = shipped.missing_models(profile)  # nothing may be trained here: the first model is missing
    assert missing and "make models" in missing[0]
    assert "OCCFAU_RETRAIN=1: shipped models ignored" in capsys.readouterr().out
    monkeypatch.setenv(cache.RETRAIN_ENV, "0")
    assert shipped.missing_models(profile) == []


def test_a_damaged_shipped_file_is_not_used(dirs, monkeypatch, capsys):
    profile = get_profile("smoke")
    manifest = shipped.make_models(profile, progress=False)
    name = next(n for n, e in manifest["files"].items() if e["kind"] == "mae")
    path = dirs / "models" / name
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(dirs / "fresh"))
    assert shipped.missing_models(profile) and "does not match its sha256" in capsys.readouterr().out


def test_safetensors_round_trip_in_fp16_keeps_the_dtype(tmp_path):
    import torch

    score = torch.tensor([77.53], dtype=torch.float64)
    state = {"model": {"w": torch.randn(3, 4), "steps": torch.tensor(5), "score": score},
             "history": {"loss": [0.5]}, "config": {"a": 1}}
    shipped.write_safetensors(state, tmp_path / "m.safetensors", half=True)
    back = cache.read_state(tmp_path / "m.safetensors")
    assert back["history"] == {"loss": [0.5]} and back["config"] == {"a": 1}
    assert back["model"]["w"].dtype == torch.float32 and torch.allclose(back["model"]["w"], state["model"]["w"], atol=1e-2)
    assert back["model"]["steps"].item() == 5
    assert back["model"]["score"].item() == 77.53  # float64 results are not halved: printed scores stay exact


def test_the_repositorys_shipped_models_match_the_code():
    """Every model the demo notebooks use is shipped under the key the current code asks for, or
    nothing is shipped at all (then there is no manifest and no model file)."""
    root = cache.models_root()
    manifest = root / cache.MANIFEST
    if not manifest.exists():
        assert not list(root.glob("*.safetensors")), "model files without a manifest: run `make models`"
        return
    profile = get_profile(json.loads(manifest.read_text())["profile"])
    assert shipped.missing_models(profile) == [], "the shipped models are stale: run `make models` and commit"
