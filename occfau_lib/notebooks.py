"""Execute the teaching notebooks headless: ``make demo`` and the test suite both use this.

``python -m occfau_lib.notebooks notebooks build/notebooks`` runs every ``notebooks/*.ipynb`` in
order under the profile in ``$OCCFAU_PROFILE`` (``demo`` by default) and writes the executed
copies, figures included, to ``build/notebooks/``. Each notebook's wall time is printed (these
are the runtimes quoted in the README) and recorded in ``build/notebooks/runtimes.json``.
With ``--site build/site`` the executed notebooks are also converted to HTML pages (figures
embedded) under an ``index.html`` that lists each notebook's title and runtime: :func:`write_site`.
"""
from __future__ import annotations

import argparse
import html
import json
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


RUNTIMES = "runtimes.json"  # {notebook file name: seconds}, next to the executed notebooks


def notebook_title(nb: nbformat.NotebookNode, default: str = "") -> str:
    """The text of the first markdown heading of a notebook (``default`` if it has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.lstrip().startswith("#"):
                    return line.lstrip().lstrip("#").strip()
    return default


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "runtime not recorded"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes else f"{s} s"


def write_site(executed_dir: Path, site_dir: Path, runtimes: dict[str, float] | None = None) -> Path:
    """Convert every executed notebook in ``executed_dir`` to ``site_dir/<name>.html`` (nbconvert's
    HTMLExporter, images embedded) and write ``site_dir/index.html`` linking them, one line per
    notebook with its title and runtime (``runtimes``, else ``executed_dir/runtimes.json``).
    Returns the index path."""
    from nbconvert import HTMLExporter

    executed_dir, site_dir = Path(executed_dir), Path(site_dir)
    if runtimes is None:
        stored = executed_dir / RUNTIMES
        runtimes = json.loads(stored.read_text()) if stored.exists() else {}
    paths = sorted(executed_dir.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"write_site: no executed notebooks in {executed_dir}")
    site_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(embed_images=True)
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title = notebook_title(nb, path.stem)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
        (site_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
        rows.append(f'<li><a href="{html.escape(path.stem)}.html">{html.escape(title)}</a>'
                    f" <small>({html.escape(_duration(runtimes.get(path.name)))})</small></li>")
    profile = html.escape(os.environ.get("OCCFAU_PROFILE", "demo"))
    index = site_dir / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>occfau notebooks</title></head>\n"
        f"<body><h1>occfau notebooks</h1>\n<p>Executed on the <code>{profile}</code> profile; "
        "runtime = wall time of the whole notebook.</p>\n<ul>\n" + "\n".join(rows) + "\n</ul>\n</body></html>\n",
        encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the occfau notebooks in order.")
    parser.add_argument("src", type=Path, help="folder of notebooks")
    parser.add_argument("dst", type=Path, help="folder for the executed copies")
    parser.add_argument("--only", default="", help="run only notebooks whose name contains this")
    parser.add_argument("--site", type=Path, help="also write an HTML site of the executed notebooks here")
    args = parser.parse_args(argv)
    profile = os.environ.setdefault("OCCFAU_PROFILE", "demo")
    notebooks = sorted(p for p in args.src.glob("*.ipynb") if args.only in p.name)
    if not notebooks:
        print(f"no notebooks in {args.src}", file=sys.stderr)
        return 1
    args.dst.mkdir(parents=True, exist_ok=True)
    stored = args.dst / RUNTIMES  # kept across --only runs: each run updates its own notebooks
    runtimes = json.loads(stored.read_text()) if stored.exists() else {}
    for path in notebooks:
        start = time.perf_counter()
        print(f"[{profile}] {path.name} ...", flush=True)
        run_notebook(path, args.dst / path.name)
        runtimes[path.name] = round(time.perf_counter() - start, 1)
        stored.write_text(json.dumps(runtimes, indent=1, sort_keys=True) + "\n")
        print(f"[{profile}] {path.name} done in {runtimes[path.name]:.0f} s -> {args.dst / path.name}", flush=True)
    if args.site is not None:
        print(f"site: {write_site(args.dst, args.site, runtimes)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
