"""Test-wide settings: offline, headless, a private data directory per session, the repository's
tools and benchmarks importable, and the cores shared fairly between pytest-xdist's workers.

``make test`` runs the tests in as many worker processes as there are cores (``pytest -n auto``,
at most 4), each with ``cores // workers`` threads: ``OMP_NUM_THREADS`` is set here, before torch
is imported, and every notebook kernel, CLI and benchmark subprocess a test starts inherits it,
so the workers never oversubscribe the cores (timings: docs/timings.md). The workers share one data
directory, so a smoke world or model that tests on both workers need is built once
(``cache.build_lock``); tests that must see a build use their own folder.
"""
import os
import sys
from pathlib import Path

import occfau_lib  # imports nothing heavy: the thread count below is still set before torch loads

REPO = Path(occfau_lib.__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools"), str(REPO / "benchmarks")]  # run_notebooks, book, claims, ...
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OCCFAU_PROFILE", "smoke")
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # set by pytest-xdist in each worker
if WORKERS > 1:
    from run_notebooks import threads_per_job  # no torch: the thread count must be set before it loads

    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_job(WORKERS)))

import pytest  # noqa: E402

#: Markers of the tests that run for tens of seconds (a kernel, a subprocess, a browser). They are
#: collected first: ``--dist worksteal`` gives each worker half of the collection and an idle worker
#: takes half of the other's queue, so both work on the long tests from the start instead of one
#: worker meeting them all at the end.
SLOW = ("script", "notebook", "browser")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in SLOW))  # stable: file order kept


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory):
    """Generated worlds and checkpoints go to a temporary folder, never the user's data/; one folder
    for all the workers of a run (the base temporary folder's parent is the run's, shared)."""
    if "OCCFAU_DATA_DIR" not in os.environ:
        if WORKERS > 1:
            shared = tmp_path_factory.getbasetemp().parent / "occfau-data"
            shared.mkdir(exist_ok=True)
            os.environ["OCCFAU_DATA_DIR"] = str(shared)
        else:
            os.environ["OCCFAU_DATA_DIR"] = str(tmp_path_factory.mktemp("occfau-data"))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors: one intra-op thread is ~10x faster than oversubscribed cores.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt(module, k)``: the module's (:mod:`occfau_lib.train`'s) next training run raises
    KeyboardInterrupt when it schedules step ``k`` (a kill in the middle of training); later runs
    train normally."""

    def arm(module, k: int) -> None:
        real = module.Run.set_lr

        def set_lr(run, opt, loss):
            if run.step == k:
                monkeypatch.setattr(module.Run, "set_lr", real)  # disarmed for the resumed run
                raise KeyboardInterrupt
            return real(run, opt, loss)

        monkeypatch.setattr(module.Run, "set_lr", set_lr)

    return arm
