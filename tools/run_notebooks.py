"""Execute the teaching notebooks headless: ``make demo`` and the test suite both use this.

``python tools/run_notebooks.py notebooks build/notebooks`` runs every ``notebooks/*.ipynb`` in
order under the profile in ``$OCCFAU_PROFILE`` (``demo`` by default) and writes the executed
copies, figures included, to ``build/notebooks/``. Each notebook's wall time is printed (the
runtimes quoted in the README) and recorded in ``build/notebooks/runtimes.json``; a failing
notebook (or Ctrl-C) ends the run, with every kernel still running killed.
With ``--site build/site`` the executed notebooks also become the offline book site
(``tools/book.py``: index, lecture path, one page per notebook and solution): :func:`write_site`.

With ``--jobs 2`` (``make demo`` passes ``--jobs auto``) two notebooks run at a time, each kernel
with half the cores (``OMP_NUM_THREADS``), the longest ready one first (:func:`pick_next`: a
notebook that reads another's cached results waits for it). A lone notebook keeps fewer than its 2
cores busy (kernel start-up, plotting, rendering and UMAP run on one core), so two one-thread kernels
side by side fill them (timings: docs/timings.md). The two kernels share the data folder; the cache's
build lock (:func:`occfau_lib.cache.build_lock`) makes a dataset or model both ask for be built
once. Printed numbers are those of a one-thread kernel (float sums in another order can move a
per-AU cell by 0.1; averages do not move).

After each notebook a **drift check** (:func:`unprinted_numbers`) prints one line naming every decimal
number its markdown quotes that none of its executed outputs prints: prose that has drifted from what
the cells compute. It is a report; it never fails the run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from decimal import Decimal
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from occfau_lib.files import describe, writable_folder


def run_notebook(path: Path, out_path: Path | None = None, timeout: int = 1800,
                 threads: int | None = None, kernels: set | None = None) -> nbformat.NotebookNode:
    """Execute one notebook in its own folder (so relative paths work); save it if ``out_path``.
    ``threads``: the kernel's ``OMP_NUM_THREADS`` (torch's and BLAS's threads), else inherited.
    ``kernels``: a set the kernel's manager is in while it runs (so :func:`main` can stop every
    kernel in flight when one notebook fails or the user presses Ctrl-C)."""
    path = Path(path)
    # the kernel inherits this process's environment: make sure figures render inline, even
    # where MPLBACKEND=Agg is set for headless scripts and tests
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    nb = read_notebook(path)
    # Unix-socket (ipc) transport: no TCP ports to race for when notebooks run back to back
    with tempfile.TemporaryDirectory(prefix="occfau-kernel-") as sockets:
        run_sync(_execute)(nb, path.parent, Path(sockets) / "kernel", timeout, env, kernels)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_path)
    return nb


async def _execute(nb: nbformat.NotebookNode, folder: Path, socket: Path, timeout: int, env: dict,
                   kernels: set | None) -> None:
    """Run ``nb`` in a fresh kernel. The asynchronous kernel manager keeps the client's event loop
    free while it waits for output, so a kernel that dies (or that :func:`main` kills) is noticed
    within a second; with the blocking one the wait for the next message never returns."""
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(socket))
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(folder)}})
    if kernels is not None:
        kernels.add(km)
    try:
        await client.async_execute(env=env)
    finally:  # a kernel manager we pass in is ours to stop
        if kernels is not None:
            kernels.discard(km)
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


RUNTIMES = "runtimes.json"  # {notebook file name: seconds}, next to the executed notebooks
#: Each notebook's metadata ``{"occfau": {"demo_seconds": s, "after": [names]}}``: its wall time on 2
#: cores on the demo profile (fresh data folder, shipped models, the notebooks before it already run),
#: and the notebooks whose cached results it reads (it could compute them itself, at their cost).
#: Only :func:`pick_next` reads them, to order ``make demo``'s lanes.
COST_KEY, AFTER_KEY = "demo_seconds", "after"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``; a file that is not one (corrupt JSON, not nbformat 4) is a
    one-line ValueError naming it."""
    try:
        return nbformat.read(path, as_version=4)
    except (ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as err:  # NotJSONError too
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:100]
        raise ValueError(f"{path}: not a readable notebook ({reason})") from None


def plan(path: Path) -> tuple[float, set[str]]:
    """A notebook's cost and the names of the notebooks it runs after (its ``occfau`` metadata;
    none given: cost 0, runs any time)."""
    meta = read_notebook(path).metadata.get("occfau", {})
    return float(meta.get(COST_KEY, 0)), set(meta.get(AFTER_KEY, []))


def pick_next(pending: list[Path], done: set[str], plans: dict[Path, tuple[float, set[str]]]) -> Path | None:
    """The next notebook for a free lane: the longest of those ``pending`` whose ``after`` notebooks
    are all ``done`` (or not part of this run); ties keep file order; None while every pending one
    waits. Greedy longest-first: notebook 02 (240 s) and 03 start together, 04 follows 03 (it reads
    the teacher answers 03 caches: one-thread 04 took 215-252 s after 03, 470 s when it ran before
    03 beside 02), the short ones follow 02, and the two lanes of ``make demo`` end within a minute
    of each other (measured: 511 and 540 s)."""
    in_run = {path.name for path in plans}
    ready = [p for p in pending if plans[p][1] & in_run <= done]  # what it runs after, if in this run, is done
    return max(ready, key=lambda p: plans[p][0], default=None)  # max keeps the first of equal costs


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """The threads each of ``jobs`` processes running side by side gets: an equal share of the
    cores, at least one, so that together they never oversubscribe the machine. The lanes of
    ``make demo`` and the test workers of ``make test`` (``tests/conftest.py``) share cores so."""
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def parse_jobs(value: str, cores: int | None = None) -> int:
    """``--jobs``: a positive number, or ``auto`` = 2 where there are at least 2 cores, else 1 (the
    demo's six notebooks are dominated by one, 02: more lanes would wait for it anyway)."""
    cores = cores or os.cpu_count() or 1
    if value == "auto":
        return 2 if cores >= 2 else 1
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(f"--jobs must be a positive number or 'auto', got {value!r}")
    return jobs


# The drift check: decimal numbers quoted in the markdown that no output of the executed notebook prints.
#: What in markdown is not prose: fenced code, code spans, LaTeX, links and images (text and target),
#: bare URLs, HTML code elements.
_NOT_PROSE = re.compile(r"```.*?```|~~~.*?~~~|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]+\$|!?\[[^\]]*\]\([^)]*\)"
                        r"|<code>.*?</code>|<https?://[^>]*>|https?://\S+", re.S)
#: A number: digits with optional thousands commas and decimals; one standing right after a letter,
#: a digit or a dot (v2.1, x1.5, the 14.1 of 2.14.1) is part of a name and not matched.
_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)*(?:[eE][-+]?\d+)?")
#: arXiv identifiers (arXiv 2212.04029, arXiv:2212.04029) are names, not measurements.
_ARXIV = re.compile(r"arxiv[:\s]*\d{4}\.\d{4,5}", re.I)
#: The outputs read for printed numbers: streams on stdout and these representations of results.
_PRINTED_MIMES = ("text/plain", "text/html", "text/markdown")


def prose_numbers(markdown: str) -> list[str]:
    """The decimal numbers quoted in the prose of ``markdown``, as written, in order, each once:
    ``71.6`` and ``0.83`` yes; integers (``88``, ``7,680``), version numbers (``2.14.1``), arXiv
    identifiers and anything inside code, LaTeX, links or URLs no."""
    text = _ARXIV.sub(" ", _NOT_PROSE.sub(" ", markdown))
    found = []
    for token in _NUMBER.findall(text):
        mantissa = re.split(r"[eE]", token)[0]
        if mantissa.count(".") == 1 and token not in found:  # a decimal; two dots: a version
            found.append(token)
    return found


def _value(token: str) -> float:
    return float(token.replace(",", ""))


def printed_text(nb: dict) -> str:
    """Everything the executed notebook ``nb`` shows as text: its code cells' stdout and their
    results' plain, HTML and markdown representations (printed tables included)."""
    parts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                parts.append(_joined(out.get("text", "")))
            for mime in _PRINTED_MIMES:
                if mime in out.get("data", {}):
                    parts.append(_joined(out["data"][mime]))
    return "\n".join(parts)


def _joined(text: str | list[str]) -> str:
    return "".join(text) if isinstance(text, list) else text


def unprinted_numbers(nb: dict) -> list[str]:
    """The decimal numbers of ``nb``'s markdown cells (:func:`prose_numbers`) that none of its outputs
    prints. A quoted number counts as printed when a printed number rounds to it at the quoted
    precision (prose ``71.6`` for a printed ``71.62``; ``1.0`` for ``1.00``); signs are ignored
    (a printed ``-0.12`` is the prose's ``−0.12``)."""
    markdown = "\n".join(_joined(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "markdown")
    printed = {_value(t) for t in _NUMBER.findall(printed_text(nb)) if re.split(r"[eE]", t)[0].count(".") <= 1}
    missing = []
    for token in prose_numbers(markdown):
        value = _value(token)
        half = 0.5 * 10.0 ** Decimal(token.replace(",", "")).as_tuple().exponent + 1e-9 * max(1.0, value)
        if not any(abs(value - shown) <= half for shown in printed):
            missing.append(token)
    return missing


def drift_line(name: str, missing: list[str]) -> str:
    """The drift check's report for one notebook (``name`` without ``.ipynb``)."""
    if not missing:
        return f"drift: {name}: every decimal number in the prose is printed by a cell"
    return f"drift: {name}: {', '.join(missing)} not printed by any cell"


def write_site(executed_dir: Path, site_dir: Path, runtimes: dict[str, float] | None = None,
               note: str = "", solutions: Path | None = None) -> Path:
    """The book site of the executed notebooks in ``executed_dir``, written to ``site_dir``
    (``tools/book.py``: index, lecture path, one page per
    notebook, the worked ``solutions`` notebooks, TOC, previous/next and search, nothing fetched
    from the network). ``runtimes``: seconds per notebook file name, else
    ``executed_dir/runtimes.json``; ``note``: how they ran, added to the index's line on runtimes.
    Returns the index path."""
    import book  # tools/book.py, beside this script

    return book.build(executed_dir, site_dir, runtimes, note, solutions_dir=solutions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the occfau notebooks in order.")
    parser.add_argument("src", type=Path, help="folder of notebooks")
    parser.add_argument("dst", type=Path, help="folder for the executed copies")
    parser.add_argument("--only", default="", help="run only notebooks whose name contains this")
    parser.add_argument("--site", type=Path, help="also write an HTML site of the executed notebooks here")
    parser.add_argument("--jobs", default="1",
                        help="notebooks at a time, each kernel with cores/jobs threads: a number, or 'auto' "
                             "(2 where there are 2 or more cores); default 1, in file order")
    args = parser.parse_args(argv)
    try:
        jobs = parse_jobs(args.jobs)
    except ValueError as err:
        parser.error(str(err))
    profile = os.environ.setdefault("OCCFAU_PROFILE", "demo")
    notebooks = sorted(p for p in args.src.glob("*.ipynb") if args.only in p.name)
    if not notebooks:
        print(f"no notebooks in {args.src}", file=sys.stderr)
        return 1
    try:  # every notebook readable, every output folder writable, before the first kernel starts
        plans = {path: plan(path) for path in notebooks}
        writable_folder(args.dst, "output folder")
        if args.site is not None:
            writable_folder(args.site, "--site", create=False)
    except (ValueError, OSError) as err:
        print(f"error: {describe(err) if isinstance(err, OSError) else err}", file=sys.stderr)
        return 2
    stored = args.dst / RUNTIMES  # kept across --only runs: each run updates its own notebooks
    runtimes = json.loads(stored.read_text()) if stored.exists() else {}
    threads = None
    if jobs > 1:
        threads = threads_per_job(jobs)
        print(f"[{profile}] {jobs} notebooks at a time, {threads} thread(s) each, longest first", flush=True)
    record, kernels = threading.Lock(), set()

    def say(line: str) -> None:  # one write per line: two lanes print at once
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def run(path: Path) -> None:
        start = time.perf_counter()
        say(f"[{profile}] {path.name} ...")
        executed = run_notebook(path, args.dst / path.name, threads=threads, kernels=kernels)
        with record:  # two lanes may finish at once
            runtimes[path.name] = round(time.perf_counter() - start, 1)
            stored.write_text(json.dumps(runtimes, indent=1, sort_keys=True) + "\n")
        say(f"[{profile}] {path.name} done in {runtimes[path.name]:.0f} s -> {args.dst / path.name}")
        try:  # a report: whatever it finds (or a bug in it) never fails the run
            say(drift_line(path.stem, unprinted_numbers(executed)))
        except Exception as err:  # noqa: BLE001
            say(f"drift: {path.stem}: not checked ({type(err).__name__}: {err})")

    start = time.perf_counter()
    pending, running, done = list(notebooks), {}, set()
    pool = ThreadPoolExecutor(max_workers=jobs)  # one thread per lane; each drives its own kernel
    try:
        while pending or running:
            while pending and len(running) < jobs:  # fill the free lanes (one lane: file order)
                path = pick_next(pending, done, plans) if jobs > 1 else pending[0]
                if path is None:
                    break
                pending.remove(path)
                running[pool.submit(run, path)] = path
            if not running:
                raise ValueError(f"notebooks {[p.name for p in pending]} wait for each other (metadata occfau.after)")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # the first failure (or Ctrl-C) ends the run...
                done.add(running.pop(future).name)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # ...nothing new starts,
        for km in list(kernels):  # and the kernels in flight are killed: each lane's client sees its
            process = getattr(km.provisioner, "process", None)  # kernel die within a second and ends
            if process is not None:
                with contextlib.suppress(OSError):
                    process.kill()
        raise
    finally:
        pool.shutdown(wait=True)
    print(f"[{profile}] {len(notebooks)} notebook(s) in {time.perf_counter() - start:.0f} s", flush=True)
    if args.site is not None:
        note = f" ({jobs} notebooks at a time, {threads} thread(s) each)" if jobs > 1 else ""
        print(f"site: {write_site(args.dst, args.site, runtimes, note, args.src / 'solutions')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
