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
