"""The README's figures are cut from executed notebooks by their cell tags."""
from __future__ import annotations

import base64
import io

import nbformat
import numpy as np
import pytest
from PIL import Image

import cut_figures as figures


def png(width: int, height: int, seed: int = 0) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def executed_notebook(path, tags_and_images):
    nb = nbformat.v4.new_notebook()
    for tags, image in tags_and_images:
        cell = nbformat.v4.new_code_cell("fig", metadata={"tags": tags})
        if image:
            cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": image})]
        nb.cells.append(cell)
    nbformat.write(nb, path)


def test_tagged_figures_are_written_scaled_and_light(tmp_path):
    executed_notebook(tmp_path / "00_a.ipynb", [(["readme-figure:gallery"], png(1200, 300)), ([], png(50, 50))])
    executed_notebook(tmp_path / "01_b.ipynb", [(["other", "readme-figure:mae"], png(400, 200, 1))])
    written = figures.export_figures(tmp_path, tmp_path / "out", max_width=600)
    assert sorted(written) == ["gallery.png", "mae.png"]
    gallery = Image.open(tmp_path / "out" / "gallery.png")
    assert gallery.size == (600, 150) and gallery.mode == "P"  # scaled down, palette PNG
    assert Image.open(tmp_path / "out" / "mae.png").size == (400, 200)  # small ones keep their size
    with pytest.raises(ValueError, match=r"would take .* MB \(limit"):
        figures.export_figures(tmp_path, tmp_path / "out2", max_total=1000)


def test_bad_tags_are_named(tmp_path):
    executed_notebook(tmp_path / "00_a.ipynb", [(["readme-figure:x"], None)])
    with pytest.raises(ValueError, match=r"00_a\.ipynb: the cell tagged 'readme-figure:x' has no PNG output"):
        figures.export_figures(tmp_path, tmp_path / "out")
    executed_notebook(tmp_path / "00_a.ipynb", [(["readme-figure:x"], png(10, 10))])
    executed_notebook(tmp_path / "01_b.ipynb", [(["readme-figure:x"], png(10, 10))])
    with pytest.raises(ValueError, match="two cells are tagged readme-figure:x"):
        figures.export_figures(tmp_path, tmp_path / "out")
