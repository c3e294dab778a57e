"""Execute the teaching notebooks headless: ``make demo`` and the test suite both use this.

``python -m occfau_lib.notebooks notebooks build/notebooks`` runs every ``notebooks/*.ipynb`` in
order under the profile in ``$OCCFAU_PROFILE`` (``demo`` by default) and writes the executed
copies, figures included, to ``build/notebooks/``. Each notebook's wall time is printed: these
are the runtimes quoted in the README.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient


def run_notebook(path: Path, out_path: Path | None = None, timeout: int = 1800) -> nbformat.NotebookNode:
    """Execute one notebook in its own folder (so relative paths work); save it if ``out_path``."""
    path = Path(path)
    # the kernel inherits this process's environment: make sure figures render inline, even
    # where MPLBACKEND=Agg is set for headless scripts and tests
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    nb = nbformat.read(path, as_version=4)
    # Unix-socket (ipc) transport: no TCP ports to race for when notebooks run back to back
    with tempfile.TemporaryDirectory(prefix="occfau-kernel-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:  # a kernel manager we pass in is ours to stop
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_path)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the occfau notebooks in order.")
    parser.add_argument("src", type=Path, help="folder of notebooks")
    parser.add_argument("dst", type=Path, help="folder for the executed copies")
    parser.add_argument("--only", default="", help="run only notebooks whose name contains this")
    args = parser.parse_args(argv)
    profile = os.environ.setdefault("OCCFAU_PROFILE", "demo")
    notebooks = sorted(p for p in args.src.glob("*.ipynb") if args.only in p.name)
    if not notebooks:
        print(f"no notebooks in {args.src}", file=sys.stderr)
        return 1
    for path in notebooks:
        start = time.perf_counter()
        print(f"[{profile}] {path.name} ...", flush=True)
        run_notebook(path, args.dst / path.name)
        print(f"[{profile}] {path.name} done in {time.perf_counter() - start:.0f} s -> {args.dst / path.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
