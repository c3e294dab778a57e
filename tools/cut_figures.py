"""The README's figures, cut from the executed notebooks: ``python tools/cut_figures.py``.

Top floor. A notebook cell whose figure belongs in the README carries the tag
``readme-figure:<name>`` (cell metadata ``tags``); after ``make demo`` has executed the notebooks
into ``build/notebooks/``, :func:`export_figures` writes the first PNG each tagged cell drew to
``docs/figures/<name>.png``, scaled to at most ``max_width`` pixels and re-encoded as an optimised
palette PNG, and refuses to write more than ``max_total`` bytes in all (the README stays light).
The figures are therefore always the committed code's output on the demo profile.

Usage: ``python tools/cut_figures.py [build/notebooks] [docs/figures]``.
"""
from __future__ import annotations

import argparse
import base64
import io
from pathlib import Path

import nbformat
from PIL import Image

TAG = "readme-figure:"


def tagged_figures(notebook: str | Path) -> dict[str, bytes]:
    """``{name: PNG bytes}`` of the cells tagged ``readme-figure:<name>`` in an executed notebook;
    a tagged cell without a PNG output is an error naming the notebook and the figure."""
    nb = nbformat.read(notebook, as_version=4)
    out = {}
    for cell in nb.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if not tag.startswith(TAG):
                continue
            name = tag[len(TAG):]
            pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
            if not pngs:
                raise ValueError(f"{notebook}: the cell tagged {tag!r} has no PNG output (was the notebook executed?)")
            out[name] = base64.b64decode(pngs[0])
    return out


def shrink(png: bytes, max_width: int) -> bytes:
    """A PNG scaled to at most ``max_width`` pixels wide and saved as an optimised 256-colour PNG."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def export_figures(executed: str | Path, out: str | Path, max_width: int = 900,
                   max_total: int = 1_500_000) -> dict[str, int]:
    """Write every tagged figure of the executed notebooks in ``executed`` to ``out``; returns
    ``{file name: bytes}``. Two cells with the same name, or more than ``max_total`` bytes, are errors."""
    figures: dict[str, bytes] = {}
    for notebook in sorted(Path(executed).glob("*.ipynb")):
        for name, png in tagged_figures(notebook).items():
            if name in figures:
                raise ValueError(f"two cells are tagged {TAG}{name} (the second in {notebook})")
            figures[name] = shrink(png, max_width)
    total = sum(len(p) for p in figures.values())
    if total > max_total:
        raise ValueError(f"the README figures would take {total / 1e6:.2f} MB (limit {max_total / 1e6:.1f} MB)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        (out / f"{name}.png").write_bytes(png)
    return {f"{name}.png": len(png) for name, png in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("executed", nargs="?", default="build/notebooks", help="folder of executed notebooks")
    parser.add_argument("out", nargs="?", default="docs/figures")
    args = parser.parse_args(argv)
    written = export_figures(args.executed, args.out)
    for name, size in written.items():
        print(f"{args.out}/{name}: {size / 1e3:.0f} kB")
    print(f"{len(written)} figures, {sum(written.values()) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
