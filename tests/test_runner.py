"""The notebook runner of `make demo` run in lanes: its order, its `--jobs`, and two real kernels side by side."""
from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import run_notebooks as notebooks


def tiny(folder, name, seconds=None, cells=(), after=None):
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}"), *[new_code_cell(c) for c in cells]])
    if seconds is not None:
        nb.metadata["occfau"] = {notebooks.COST_KEY: seconds, **({notebooks.AFTER_KEY: after} if after else {})}
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


def order(paths, jobs_done=()):
    """The order one free lane at a time would take them in (each finishing before the next pick)."""
    plans = {p: notebooks.plan(p) for p in paths}
    pending, done, taken = list(paths), set(jobs_done), []
    while pending:
        nxt = notebooks.pick_next(pending, done, plans)
        if nxt is None:
            return taken + ["<stuck>"]
        pending.remove(nxt)
        done.add(nxt.name)
        taken.append(nxt.stem)
    return taken


def test_next_notebook_is_the_longest_ready_one(tmp_path):
    paths = [tiny(tmp_path, n, s) for n, s in [("00_a", 30), ("01_b", 30), ("02_c", 240), ("03_d", None),
                                                ("04_e", 170)]]
    assert order(paths) == ["02_c", "04_e", "00_a", "01_b", "03_d"]  # ties and unknown costs: file order
    paths[4] = tiny(tmp_path, "04_e", 170, after=["01_b.ipynb", "99_not_in_this_run.ipynb"])
    assert order(paths) == ["02_c", "00_a", "01_b", "04_e", "03_d"]  # 04 waits for 01 only
    plans = {p: notebooks.plan(p) for p in paths}
    assert notebooks.pick_next([paths[4]], set(), plans) is None  # 01 not done yet: nothing ready


def test_the_demo_order_starts_02_and_03_and_runs_04_after_03():
    paths = sorted(notebooks.Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"))
    plans = {p: notebooks.plan(p) for p in paths}
    assert len(paths) == 6 and all(cost > 0 for cost, _ in plans.values())
    first = notebooks.pick_next(paths, set(), plans)
    second = notebooks.pick_next([p for p in paths if p != first], set(), plans)
    assert (first.stem[:2], second.stem[:2]) == ("02", "03")
    assert order(paths).index("04_node_edge_distillation") > order(paths).index("03_occlusion_effects")


def test_jobs_setting():
    assert notebooks.parse_jobs("auto", cores=2) == 2 and notebooks.parse_jobs("auto", cores=1) == 1
    assert notebooks.parse_jobs("3") == 3
    assert notebooks.threads_per_job(2, cores=2) == 1 and notebooks.threads_per_job(2, cores=16) == 8
    assert notebooks.threads_per_job(4, cores=2) == 1  # never below one thread
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="--jobs must be a positive number or 'auto'"):
            notebooks.parse_jobs(bad)


def test_lanes_take_the_longest_first_with_their_share_of_cores(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name, seconds in [("00_short", 5), ("01_long", 50), ("02_mid", 20)]:
        tiny(src, name, seconds)
    started = []

    def fake_run(path, out, threads=None, kernels=None):
        started.append((path.name, threads))
        nbformat.write(nbformat.read(path, 4), out)

    monkeypatch.setattr(notebooks, "run_notebook", fake_run)
    monkeypatch.setattr(notebooks.os, "cpu_count", lambda: 4)
    assert notebooks.main([str(src), str(tmp_path / "out"), "--jobs", "2", "--site", str(tmp_path / "site")]) == 0
    assert [name for name, _ in started] == ["01_long.ipynb", "02_mid.ipynb", "00_short.ipynb"]
    assert {threads for _, threads in started} == {2}  # 4 cores, 2 lanes
    assert set(json.loads((tmp_path / "out" / notebooks.RUNTIMES).read_text())) == {p.name for p in src.iterdir()}
    assert "(2 notebooks at a time, 2 thread(s) each)" in (tmp_path / "site" / "index.html").read_text()
    with pytest.raises(SystemExit):
        notebooks.main([str(src), str(tmp_path / "out"), "--jobs", "0"])
    tiny(src, "00_short", 5, after=["02_mid.ipynb"])
    tiny(src, "02_mid", 20, after=["00_short.ipynb"])
    with pytest.raises(ValueError, match="wait for each other"):
        notebooks.main([str(src), str(tmp_path / "out"), "--jobs", "2"])


def test_a_failing_notebook_stops_the_other_lane_at_once(tmp_path):
    """Two real kernels: one notebook fails after a second while the other would sleep for a minute;
    the run ends with the failure within seconds, the sleeper's kernel killed, not waited for."""
    src = tmp_path / "src"
    src.mkdir()
    tiny(src, "00_sleeps", 60, ["import time\ntime.sleep(60)"])
    tiny(src, "01_fails", 1, ["import time\ntime.sleep(1)\nraise ValueError('boom in 01')"])
    start = time.perf_counter()
    with pytest.raises(CellExecutionError, match="boom in 01"):
        notebooks.main([str(src), str(tmp_path / "out"), "--jobs", "2"])
    assert time.perf_counter() - start < 40  # not the sleeper's minute
    assert not list((tmp_path / "out").glob("*.ipynb"))  # neither was finished


def test_a_kernel_gets_the_threads_it_is_given(tmp_path):
    path = tiny(tmp_path, "00_threads", None, ["import os\nprint(os.environ['OMP_NUM_THREADS'])"])
    done = notebooks.run_notebook(path, threads=3)
    assert done.cells[1].outputs[0]["text"].strip() == "3"


def test_unreadable_notebook_or_unusable_output_folder_is_one_line(tmp_path, capsys):
    """Checked before any kernel starts: exit 2 and one line naming the file or folder."""
    src = tmp_path / "src"
    src.mkdir()
    tiny(src, "00_ok")
    afile = tmp_path / "afile"
    afile.write_text("")
    assert notebooks.main([str(src), str(afile / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: output folder {afile / 'out'}: {afile}: a file, not a folder"
    (src / "01_broken.ipynb").write_text('{"cells": [')
    assert notebooks.main([str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{src / '01_broken.ipynb'}: not a readable notebook" in err
    assert not (tmp_path / "out").exists()


def executed(markdown, *outputs):
    """A tiny executed notebook: one markdown cell, then one code cell per output."""
    cells = [new_markdown_cell(markdown)]
    for output in outputs:
        cell = new_code_cell("x")
        cell.outputs = [output]
        cells.append(cell)
    return new_notebook(cells=cells)


def test_prose_numbers_are_the_decimals_of_the_prose_only():
    markdown = ("F1 71.6 against 0.83 (and 71.6 again), 88 points, 7,680 faces, 1,274.5 faces/s; "
                "torch 2.14.1, v2.1, arXiv 2212.04029, arXiv\n2301.00001, `lr 0.05`, $\\lambda = 0.01$, "
                "[table 3.2](https://x.org/1.5), https://example.org/a/0.7, ±0.08 and −2.4, AU1/AU2, 2.5e-4.\n"
                "```python\nratio = 0.75\n```\nEnds with 9.5.")
    assert notebooks.prose_numbers(markdown) == ["71.6", "0.83", "1,274.5", "0.08", "2.4", "2.5e-4", "9.5"]


def test_unprinted_numbers_reads_stdout_results_and_html_tables():
    stdout = nbformat.v4.new_output("stream", name="stdout", text="teacher 71.62 F1, AUC 0.8\n")
    stderr = nbformat.v4.new_output("stream", name="stderr", text="warning: 12.5 s\n")
    plain = nbformat.v4.new_output("execute_result", data={"text/plain": "array([-0.12, 1.00])"}, execution_count=1)
    html = nbformat.v4.new_output("display_data", data={"text/html": "<table><td>65.9</td></table>",
                                                         "image/png": "iVBOR"})
    nb = executed("71.6 (printed 71.62), 0.80, 1.0 and −0.12 printed; 65.9 from the table; "
                  "60.6 and 12.5 (stderr only) and 71.5 not; the 2.14.1 version is no number",
                  stdout, stderr, plain, html)
    assert notebooks.unprinted_numbers(nb) == ["60.6", "12.5", "71.5"]
    assert notebooks.unprinted_numbers(executed("no decimals here, 88 points", stdout)) == []
    assert notebooks.unprinted_numbers(executed("71.6 before any run")) == ["71.6"]


def test_drift_line_names_the_notebook_and_its_unprinted_numbers():
    assert notebooks.drift_line("02_latent_probing", ["65.9", "60.6"]) == \
        "drift: 02_latent_probing: 65.9, 60.6 not printed by any cell"
    assert notebooks.drift_line("00_facs", []) == \
        "drift: 00_facs: every decimal number in the prose is printed by a cell"


def test_the_run_reports_drift_after_each_notebook_and_does_not_fail(tmp_path, monkeypatch, capsys):
    """``main`` prints one drift line per notebook (no kernel here: the executed copy is made up)."""
    src = tmp_path / "src"
    src.mkdir()
    for name, markdown in [("00_drifts", "F1 65.9 and 60.6, AUC 0.83"), ("01_clean", "F1 66.0, 7 folds")]:
        nbformat.write(new_notebook(cells=[new_markdown_cell(markdown), new_code_cell("print(...)")]),
                       src / f"{name}.ipynb")

    def fake_run(path, out, threads=None, kernels=None):
        nb = nbformat.read(path, 4)
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="F1 66.0, AUC 0.832\n")]
        nbformat.write(nb, out)
        return nb

    monkeypatch.setattr(notebooks, "run_notebook", fake_run)
    assert notebooks.main([str(src), str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("drift:")]
    assert lines == ["drift: 00_drifts: 65.9, 60.6 not printed by any cell",
                     "drift: 01_clean: every decimal number in the prose is printed by a cell"]
