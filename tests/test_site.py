"""The static site of `make demo`: executed notebooks as HTML pages under an index (no kernel run here)."""
from __future__ import annotations

import base64
import json
import re
from io import BytesIO

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from occfau_lib import notebooks


def _png() -> str:
    buf = BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def executed(title: str, text: str) -> nbformat.NotebookNode:
    """A notebook as the runner leaves it: a heading, a code cell with a printed line and a figure."""
    cell = new_code_cell("print('hi')", execution_count=1, outputs=[
        new_output("stream", name="stdout", text=text),
        new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})])
    return new_notebook(cells=[new_markdown_cell(f"Intro line\n\n# {title}\n\nmore"), cell])


@pytest.fixture
def executed_dir(tmp_path):
    folder = tmp_path / "executed"
    folder.mkdir()
    nbformat.write(executed("00 · First <world>", "first output"), folder / "00_first.ipynb")
    nbformat.write(executed("01 · Second", "second output"), folder / "01_second.ipynb")
    (folder / notebooks.RUNTIMES).write_text(json.dumps({"00_first.ipynb": 75.4}))
    return folder


def test_site_index_links_every_page_with_title_and_runtime(executed_dir, tmp_path):
    site = tmp_path / "site"
    index = notebooks.write_site(executed_dir, site)
    assert index == site / "index.html"
    page = index.read_text()
    links = re.findall(r'href="([^"]+)"', page)
    assert links == ["00_first.html", "01_second.html"]
    assert all((site / link).is_file() for link in links)
    assert "00 · First &lt;world&gt;" in page and "1 min 15 s" in page  # title escaped; runtime from the JSON
    assert "01 · Second" in page and "runtime not recorded" in page
    first = (site / "00_first.html").read_text()
    assert "first output" in first and "data:image/png;base64," in first  # figures embedded, no side files
    assert sorted(p.name for p in site.iterdir()) == ["00_first.html", "01_second.html", "index.html"]


def test_site_runtimes_argument_and_empty_folder(executed_dir, tmp_path):
    index = notebooks.write_site(executed_dir, tmp_path / "site", runtimes={"01_second.ipynb": 12.0})
    page = index.read_text()
    assert "12 s" in page and "1 min 15 s" not in page
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        notebooks.write_site(tmp_path / "site", tmp_path / "other")


def test_notebook_title_is_first_markdown_heading():
    nb = new_notebook(cells=[new_code_cell("# a comment, not a heading"), new_markdown_cell("## Part\n# Later")])
    assert notebooks.notebook_title(nb) == "Part"
    assert notebooks.notebook_title(new_notebook(), "fallback") == "fallback"


def test_runner_records_runtimes_and_writes_the_site(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 07 · Tiny")]), src / "07_tiny.ipynb")
    monkeypatch.setattr(notebooks, "run_notebook",
                        lambda path, out, **kw: nbformat.write(nbformat.read(path, 4), out))
    assert notebooks.main([str(src), str(tmp_path / "out"), "--site", str(tmp_path / "site")]) == 0
    assert set(json.loads((tmp_path / "out" / notebooks.RUNTIMES).read_text())) == {"07_tiny.ipynb"}
    assert 'href="07_tiny.html"' in (tmp_path / "site" / "index.html").read_text()
