"""Smoke execution of every notebook on the smoke profile (the way `make demo` runs them)."""
import re
from pathlib import Path

import nbformat
import pytest

import cut_figures as figures
from run_notebooks import run_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
#: One solutions notebook per teaching notebook: ``notebooks/solutions/NN_solutions.ipynb``.
SOLUTIONS = sorted((Path(__file__).resolve().parent.parent / "notebooks" / "solutions").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean_and_teaches(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    text = "\n".join(c.source for c in nb.cells)
    assert "sys.path" not in text
    assert "import *" not in text
    assert "interact(" not in text, "build widgets with occfau_lib.widgets: interact makes a slider of every argument"
    first, last = nb.cells[0].source, "\n".join(c.source for c in nb.cells[-3:] if c.cell_type == "markdown")
    assert "You will learn" in first and "Runtime" in first
    assert "Summary" in last and "Exercises" in last
    assert max(len(c.source.splitlines()) for c in code) <= 25, "long code belongs in occfau_lib"


#: The works every notebook's further-reading list discusses (issue: MAE, ME-GraphAU, the paper, FMAE, py-feat).
READING = ("MAE", "ME-GraphAU", "2212.04029", "FMAE", "py-feat")


def _section(text: str, heading: str) -> str:
    """The markdown from ``## heading`` to the next ``## `` heading."""
    after = text.split(f"## {heading}", 1)[1]
    return after.split("\n## ", 1)[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_ends_with_checkable_exercises_a_questionnaire_and_reading(path):
    """Every exercise says what to expect and has a worked solution; the questionnaire has answers;
    the reading list covers the five works, each with what to look for."""
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = re.split(r"^\d\. ", _section(text, "Exercises"), flags=re.M)[1:]
    assert len(exercises) >= 4 and all("Expect" in e for e in exercises), "each exercise states what to expect"
    solutions = nbformat.read(path.parent / "solutions" / f"{path.name[:2]}_solutions.ipynb", as_version=4)
    solved = {int(m) for c in solutions.cells for m in re.findall(r"^## Exercise (\d)", c.source, re.M)}
    assert solved == set(range(1, len(exercises) + 1)), f"solutions for exercises {sorted(solved)}"
    questions = re.split(r"^\d\. ", _section(text, "Questionnaire"), flags=re.M)[1:]
    assert len(questions) >= 5 and all("Answer" in q for q in questions)
    reading = _section(text, "Further reading").lower()
    assert all(work.lower() in reading for work in READING), [w for w in READING if w.lower() not in reading]
    assert reading.count("look for") >= len(READING)


def executed_on_smoke(path, out, monkeypatch) -> nbformat.NotebookNode:
    """``path`` executed on the smoke profile into ``out``; an error in any cell fails the test."""
    monkeypatch.setenv("OCCFAU_PROFILE", "smoke")
    nb = run_notebook(path, out, timeout=600)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[:1]
    return nb


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_on_smoke_profile(path, tmp_path, monkeypatch):
    nb = executed_on_smoke(path, tmp_path / path.name, monkeypatch)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook should draw its figures"
    figures.tagged_figures(tmp_path / path.name)  # every cell tagged readme-figure:<name> drew its PNG


def test_every_notebook_has_its_solutions():
    assert {p.name[:2] for p in NOTEBOOKS} == {p.name[:2] for p in SOLUTIONS}


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_are_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "commit without outputs"
    assert max(len(c.source.splitlines()) for c in code) <= 25, "long code belongs in occfau_lib"


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_execute_on_smoke_profile(path, tmp_path, monkeypatch):
    """Every exercise's solution runs, and its checks (asserts) hold, on the smoke profile."""
    executed_on_smoke(path, tmp_path / path.name, monkeypatch)


def test_the_readme_figures_are_tagged_once_each():
    tags = [t for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells
            for t in c.get("metadata", {}).get("tags", []) if t.startswith(figures.TAG)]
    assert len(tags) == len(set(tags)) >= 5
