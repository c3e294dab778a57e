"""Test-wide settings: offline, headless, and a private data directory per session."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OCCFAU_PROFILE", "smoke")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory):
    """Generated worlds and checkpoints go to a temporary folder, never the user's data/."""
    if "OCCFAU_DATA_DIR" not in os.environ:
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
    """``interrupt(module, k)``: the module's next training run raises KeyboardInterrupt at
    optimiser step ``k`` (a kill in the middle of training); later runs train normally."""

    def arm(module, k: int) -> None:
        real = module.optimiser_step

        def step(opt, loss, lr, i, what):
            if i == k:
                monkeypatch.setattr(module, "optimiser_step", real)  # disarmed for the resumed run
                raise KeyboardInterrupt
            return real(opt, loss, lr, i, what)

        monkeypatch.setattr(module, "optimiser_step", step)

    return arm
