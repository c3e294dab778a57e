"""The book site of `make demo` (tools/book.py): executed notebooks as offline HTML pages (no kernel run here)."""
from __future__ import annotations

import base64
import json
import re
from io import BytesIO

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

import book as site
import run_notebooks as notebooks


def _png() -> str:
    buf = BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def executed(title: str, text: str) -> nbformat.NotebookNode:
    """A notebook as the runner leaves it: a heading, a section, a code cell with a printed line, a
    figure, plumbing (a warning on stderr, a cache line) and a widget, and a summary."""
    widget = {"model_id": "box"}
    cell = new_code_cell("print('hi')", execution_count=1, outputs=[
        new_output("stream", name="stdout", text=f"{text}\n[occfau] no shipped teacher model matches: training it\n"),
        new_output("stream", name="stderr", text="UserWarning: something internal\n"),
        new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
        new_output("display_data", data={notebooks_widget(): widget, "text/plain": "Explorer(...)"})])
    nb = new_notebook(cells=[new_markdown_cell(f"Intro line\n\n# {title}\n\nmore\n\n## Part one\n\ntext"), cell,
                             new_markdown_cell("## Summary\n\n- the verdict of " + title + "\n- second point")])
    nb.metadata["widgets"] = {site.WIDGET_STATE: {"state": {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_img"]}},
        "img": {"model_name": "ImageModel", "state": {}, "buffers": [{"path": ["value"], "data": _png()}]}}}}
    return nb


def notebooks_widget() -> str:
    return site.WIDGET_VIEW


@pytest.fixture
def executed_dir(tmp_path):
    folder = tmp_path / "executed"
    folder.mkdir()
    nbformat.write(executed("00 · First <world>", "first output"), folder / "00_first.ipynb")
    nbformat.write(executed("01 · Second", "second output"), folder / "01_second.ipynb")
    (folder / notebooks.RUNTIMES).write_text(json.dumps({"00_first.ipynb": 75.4}))
    return folder


def test_book_pages_toc_prev_next_and_verdicts(executed_dir, tmp_path):
    index = site.build(executed_dir, tmp_path / "site", solutions_dir=None)
    page = index.read_text()
    assert "00 · First &lt;world&gt;" in page and "1 min 15 s" in page and "runtime not recorded" in page
    assert "the verdict of 00" in page  # each notebook's verdict on the index
    first = (tmp_path / "site" / "00_first.html").read_text()
    assert first.index("What you saw") < first.index("first output")  # the summary comes first
    assert 'href="#Part-one"' in first  # the page's sections in the TOC
    assert re.search(r'rel="prev" href="(lecture|index)\.html"', first) and 'rel="next" href="01_second.html"' in first
    assert 'src="search.js"' in first and "SEARCH_INDEX" in (tmp_path / "site" / "search.js").read_text()


def test_pages_carry_no_plumbing_and_no_outside_requests(executed_dir, tmp_path):
    site.build(executed_dir, tmp_path / "site", solutions_dir=None)
    for page in (tmp_path / "site").glob("*.html"):
        text = page.read_text()
        assert not re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(?:https?:)?//', text), page.name
        assert "[occfau]" not in text and "UserWarning" not in text
    first = (tmp_path / "site" / "00_first.html").read_text()
    assert "run this notebook in JupyterLab" in first and first.count("data:image/png;base64,") >= 2  # widget: its figure
    assert "@import" not in (tmp_path / "site" / "notebook.css").read_text()


def test_pipeline_checks_are_folded():
    outputs = [new_output("display_data", data={"text/markdown": "| a |\n|---|\n| 0.0 |"})]
    folded = site.fold(outputs, "smoke scores")
    assert folded.data["text/html"].startswith('<details class="folded"><summary>smoke scores</summary>')
    assert "<table>" in folded.data["text/html"]


def test_solutions_and_lecture_path_are_published(executed_dir, tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 00 · Solutions")]), solutions / "00_solutions.ipynb")
    site.build(executed_dir, tmp_path / "site", solutions_dir=solutions)
    names = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert "solutions-00_solutions.html" in names and "lecture.html" in names
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'rel="next" href="lecture.html"' in index  # the lecture path is the first page after the index


def test_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        site.build(tmp_path, tmp_path / "other")


def test_notebook_title_is_first_markdown_heading():
    nb = new_notebook(cells=[new_code_cell("# a comment, not a heading"), new_markdown_cell("## Part\n# Later")])
    assert site.notebook_title(nb) == "Part"
    assert site.notebook_title(new_notebook(), "fallback") == "fallback"


def test_runner_records_runtimes_and_writes_the_site(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 07 · Tiny")]), src / "07_tiny.ipynb")
    monkeypatch.setattr(notebooks, "run_notebook",
                        lambda path, out, **kw: nbformat.write(nbformat.read(path, 4), out))
    assert notebooks.main([str(src), str(tmp_path / "out"), "--site", str(tmp_path / "site")]) == 0
    assert set(json.loads((tmp_path / "out" / notebooks.RUNTIMES).read_text())) == {"07_tiny.ipynb"}
    assert 'href="07_tiny.html"' in (tmp_path / "site" / "index.html").read_text()


def test_an_index_card_shows_the_what_you_saw_box_before_the_first_bullet():
    summary = site.markdown("> **What you saw.** The box line.\n\n- a bullet")
    assert "The box line." in site._first_item(summary) and "a bullet" not in site._first_item(summary)
    assert "a bullet" in site._first_item(site.markdown("- a bullet\n- another"))
