"""The one checkpoint reader, atomic writes and their leftovers, the build lock, and run logs that survive a kill."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from occfau_lib import cache, metrics, train


def saved(path, obj):
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "not a readable PyTorch checkpoint"),
    (lambda p: p.write_bytes(os.urandom(300)), "not a readable PyTorch checkpoint"),
    (lambda p: torch.save([1, 2, 3], p), "expected a checkpoint dict, found list"),
])
def test_read_state_names_a_file_it_cannot_read(tmp_path, damage, message):
    path = saved(tmp_path / "model.pt", {"model": {"w": torch.ones(64, 64)}})
    assert torch.equal(cache.read_state(path)["model"]["w"], torch.ones(64, 64))
    damage(path)
    with pytest.raises(cache.CorruptFile, match=rf"model\.pt: {message}"):
        cache.read_state(path)
    with pytest.raises(FileNotFoundError):
        cache.read_state(tmp_path / "missing.pt")


def test_load_or_build_rebuilds_a_corrupt_file_with_a_warning(tmp_path):
    built = []

    def build():
        built.append(1)
        return {"w": torch.full((3,), float(len(built)))}

    def load(p):
        state = cache.read_state(p)
        return state["model"], state["config"]

    save = lambda obj, config, p: torch.save({"model": obj, "config": config}, p)  # noqa: E731
    path = tmp_path / "cache" / "thing.pt"
    cache.load_or_build(path, {"a": 1}, build, save, load)
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"cannot read cached .*thing\.pt .*rebuilding it"):
        again = cache.load_or_build(path, {"a": 1}, build, save, load)
    assert len(built) == 2 and again["w"][0] == 2
    assert cache.load_or_build(path, {"a": 1}, build, save, load)["w"][0] == 2 and len(built) == 2


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".mae-abc.pt.{int(dead.stdout)}.tmp"  # the pid has exited
    stale.write_bytes(b"x" * 1000)
    mine = tmp_path / f".other.pt.{os.getpid()}.tmp"  # a live writer's (this process)
    mine.write_bytes(b"y")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_text("keep")
    cache.atomic_write(tmp_path / "new.pt", lambda p: p.write_bytes(b"z"))
    assert not stale.exists() and mine.exists() and unrelated.exists()
    assert (tmp_path / "new.pt").read_bytes() == b"z"


def test_a_corrupt_epoch_checkpoint_starts_the_training_over(tmp_path):
    path = tmp_path / "teacher-x.partial.pt"
    path.write_bytes(b"\x00" * 50)  # killed mid-write by a full disk, say
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match=r"teacher-x\.partial\.pt: not a readable .*starting this training over"):
        step, epoch, history = train.EpochCheckpoint(path, {"a": 1}).restore(model, opt, torch.Generator(),
                                                                            np.random.default_rng(0))
    assert (step, epoch, history) == (0, 0, None)


def test_read_jsonl_skips_a_torn_line_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"stage": "a", "x": 1}\n{"stage": "b", "x"\n\n[1, 2]\n{"stage": "c"}\n')
    with pytest.warns(UserWarning, match=r"metrics\.jsonl, line 2: not a JSON record") as caught:
        records = metrics.read_jsonl(path)
    assert [r["stage"] for r in records] == ["a", "c"]
    assert any("line 4" in str(w.message) for w in caught)  # valid JSON, but not a record


def test_save_model_round_trips_through_read_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    cache.save_model((model, {"loss": [0.5]}), {"k": 1}, tmp_path / "m.pt")
    state = cache.read_state(tmp_path / "m.pt")
    assert set(state) == {"model", "history", "config"} and state["history"] == {"loss": [0.5]}
    assert torch.equal(state["model"]["weight"], model.weight)


def save_json(obj, cfg, path):
    """A tiny artefact format for the cache's tests: the object and its config, as JSON."""
    path.write_text(json.dumps({"obj": obj, "config": cfg}))


def load_json(path):
    d = json.loads(path.read_text())
    return d["obj"], d["config"]


def test_load_or_build_reuses_rebuilds_and_writes_atomically(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"value": len(calls)}

    path = tmp_path / "art.json"
    assert cache.load_or_build(path, {"x": 1}, build, save_json, load_json) == {"value": 1}
    assert cache.load_or_build(path, {"x": 1}, build, save_json, load_json) == {"value": 1}
    assert len(calls) == 1
    with pytest.warns(UserWarning, match="different config"):
        assert cache.load_or_build(path, {"x": 2}, build, save_json, load_json) == {"value": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["art.json"]  # no temporary left behind

    def failing_save(obj, cfg, path):
        path.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.load_or_build(tmp_path / "new.json", {"x": 3}, build, failing_save, load_json)
    assert [p.name for p in tmp_path.iterdir()] == ["art.json"]  # the failed write left nothing


def test_two_builders_of_one_artefact_build_it_once(tmp_path):
    """Two notebooks on one data folder asking for the same artefact at the same moment (make demo
    runs two at a time): the second waits for the first's build and loads it, and no lock file stays."""
    calls, results = [], []
    start = threading.Barrier(2)

    def build():
        calls.append(1)
        time.sleep(0.3)  # long enough for the other caller to arrive while this one builds
        return {"value": len(calls)}

    def ask():
        start.wait()
        results.append(cache.load_or_build(tmp_path / "art.json", {"x": 1}, build, save_json, load_json))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(calls) == 1 and results == [{"value": 1}, {"value": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["art.json"]  # the lock file went with its holder


def test_build_lock_excludes_a_second_holder_and_survives_a_failed_build(tmp_path):
    path, order = tmp_path / "a.npz", []
    with cache.build_lock(path):
        def wait_then_hold():
            with cache.build_lock(path):
                order.append("waiter")

        waiter = threading.Thread(target=wait_then_hold)
        waiter.start()
        waiter.join(timeout=0.3)
        assert waiter.is_alive() and order == []  # blocked while we hold it
        order.append("holder")
    waiter.join(timeout=5)
    assert order == ["holder", "waiter"] and list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"):
        cache.load_or_build(tmp_path / "b.json", {}, lambda: (_ for _ in ()).throw(RuntimeError("boom")),
                            None, None)
    with cache.build_lock(tmp_path / "b.json"):  # a failed build released its lock
        pass


def test_no_build_lock_among_torchrun_ranks(tmp_path, monkeypatch):
    """Under torchrun the ranks build each model together (an all-reduce every step): a rank must
    never wait on another's lock, or both wait forever (the CLI's torchrun test hung so)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    entered = []

    def second_rank():
        with cache.build_lock(tmp_path / "m.pt"):
            entered.append(True)

    with cache.build_lock(tmp_path / "m.pt"):
        rank1 = threading.Thread(target=second_rank, daemon=True)
        rank1.start()
        rank1.join(timeout=5)
        assert entered == [True]
    assert list(tmp_path.iterdir()) == []
