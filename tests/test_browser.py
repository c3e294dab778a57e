"""The notebooks' widgets in a real browser: JupyterLab driven by Selenium in headless Chromium.

A JupyterLab server (the venv's python3 kernel, ``OCCFAU_PROFILE=smoke``) serves copies of the
notebooks from a temporary folder (JupyterLab autosaves: the repository's notebooks stay clean).
Each test opens a notebook, runs all cells from the "Run" menu, checks the explorer's controls
render with their labels, moves a slider with the keyboard and checks the figure is redrawn; the
latent explorer (a Bokeh page in an iframe) is hovered and clicked. The book site of ``make demo``
(tools/book.py) is opened from disk with every http(s) request blocked: no page may ask for one, and
its explorer still answers. Screenshots go to build/browser/.

Needs Debian's Chromium and its driver at /usr/bin/chromium and /usr/bin/chromedriver
(``apt-get install chromium chromium-driver``; ``make test`` installs them: tools/browser-deps.sh)
and selenium (test extras).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "browser"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1500,1200")
TOKEN = "occfau-browser-test"
#: JupyterLab settings for the test: no news pop-up, every cell in the DOM (no windowing).
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True}}
FACE_LABELS = [f"AU{a}" for a in (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)] + [
    "identity", "roll", "yaw", "pitch", "from x", "from y", "strength"]
OCCLUDER_LABELS = ["occluder", "face", "seed", "centre x", "centre y", "side"]


def _require_browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"the browser test needs {' and '.join(missing)}: install Chromium and its driver with "
                    "`sudo apt-get update && sudo apt-get install -y chromium chromium-driver` (Debian/Ubuntu; "
                    "`make test` does this first: tools/browser-deps.sh)", pytrace=False)
    if importlib.util.find_spec("selenium") is None:
        pytest.fail("the browser test needs selenium: `.venv/bin/pip install -e '.[test]'` (or `make setup`)",
                    pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a free local port, serving ``root``; its log in ``log``."""

    def __init__(self, root: Path, home: Path):
        self.root, self.log = root, home / "jupyterlab.log"
        self.url = f"http://127.0.0.1:{_free_port()}"
        settings = home / "settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {**os.environ, "OCCFAU_PROFILE": "smoke", "HF_HUB_OFFLINE": "1",
               "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # the tests' Agg would hide figures
               "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
        port = self.url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
               f"--LabApp.workspaces_dir={home / 'workspaces'}", "--MappingKernelManager.default_kernel_name=python3"]
        with open(self.log, "wb") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.tail()}")

    def api(self, path: str, body: dict | None = None, method: str | None = None) -> dict:
        method = method or ("GET" if body is None else "POST")
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def start_kernel(self, notebook: str) -> None:
        """A python3 kernel session for ``notebook``, created before the page opens it: JupyterLab
        attaches to it instead of racing to start (and shut down) kernels of its own."""
        self.api("sessions", {"path": notebook, "type": "notebook", "name": notebook, "kernel": {"name": "python3"}})

    def stop_kernels(self) -> None:
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the server shuts its kernels down
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


#: The occluder explorer's notebook: notebook 03's widget on a few faces with a stand-in detector
#: (the full notebook trains teachers first, too slow here; the widget builder is the same).
OCCLUDER_SETUP = """import numpy as np

from occfau_lib import synthfacs, widgets
from occfau_lib.aus import BP4D_AUS

ids, _ = synthfacs.sample_identities(4, np.random.default_rng(0))
faces = np.stack([synthfacs.render_face(i, {6: 3, 12: 4}, size=64) for i in ids])
labels = np.array([[int(a in (6, 12)) for a in BP4D_AUS]] * len(faces))


def predict(x):  # stand-in detector: AU k's probability follows the brightness of row band k
    bands = np.array_split(x.astype(np.float32).mean(axis=(2, 3)) / 255, len(BP4D_AUS), axis=1)
    return np.stack([b.mean(1) for b in bands], 1)"""
OCCLUDER_CELL = "widgets.occluder_explorer(predict, faces, labels, BP4D_AUS)"


def _occluder_notebook() -> str:
    return _notebook("# Occluder explorer (notebook 03's widget)", OCCLUDER_SETUP, OCCLUDER_CELL)


def _notebook(title: str, *code: str) -> str:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(cells=[new_markdown_cell(title), *map(new_code_cell, code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb)


#: The latent explorer of notebooks 02 and 04 on 40 rendered faces, clean and lower half hidden, in two
#: spaces (the notebooks' spaces come from trained models; the explorer is the same).
EXPLORER_SETUP = """import numpy as np

from occfau_lib import explorer, synthfacs
from occfau_lib.aus import BP4D_AUS

ids, _ = synthfacs.sample_identities(5, np.random.default_rng(0))
images = np.stack([synthfacs.render_face(ids[i % 5], {12: 4.0 * (i % 2)}, size=64) for i in range(20)])
seen = explorer.faces_under(images, {"clean": "clean", "lower half": "lower_half"}, 8)
labels = np.array([[int(a == 12 and i % 2) for a in BP4D_AUS] for i in range(20)])
spaces = {"pixels": explorer.pixel_space(seen), "colour": seen.seen.reshape(len(seen), -1, 3).mean(1)}"""
EXPLORER_CELL = ('explorer.explore(spaces, seen, labels, BP4D_AUS, projection="pca", subjects=np.arange(20) % 5, '
                 'title="browser test")')


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    home = tmp_path_factory.mktemp("browser")
    root = home / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_facs_and_synthfacs.ipynb", root)
    (root / "03_occluder_explorer.ipynb").write_text(_occluder_notebook())
    (root / "04_latent_explorer.ipynb").write_text(_notebook("# Latent explorer (notebooks 02 and 04)",
                                                             EXPLORER_SETUP, EXPLORER_CELL))
    server = Lab(root, home)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request, for the site test
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def _server_log(lab):
    """Each test's kernels stopped after it; the server log's new lines printed (pytest shows them
    when the test fails)."""
    start = len(lab.log.read_text(errors="replace")) if lab.log.exists() else 0
    yield
    with contextlib.suppress(OSError):
        lab.stop_kernels()
    print(f"----- JupyterLab log ({lab.log}) -----\n{lab.log.read_text(errors='replace')[start:][-20000:]}")


# ----- helpers -----

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show


def _wait(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.25, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(lambda d: condition(d), message=what)


def _css(node, selector):
    from selenium.webdriver.common.by import By

    return node.find_elements(By.CSS_SELECTOR, selector)


def _kernel_idle(driver) -> bool:
    return any(e.get_attribute("data-status") == "idle" for e in _css(driver, f"{PANEL} .jp-Notebook-ExecutionIndicator"))


def _accept_dialogs(driver) -> bool:
    """Accept a dialog in the way (JupyterLab sometimes asks to confirm the kernel); always False."""
    for button in _css(driver, ".jp-Dialog .jp-mod-accept"):
        button.click()
    return False


def _prompts(driver) -> list[str]:
    return [p.text for p in _css(driver, f"{PANEL} .jp-CodeCell .jp-InputArea-prompt")]


def _errors(driver) -> str:
    outputs = " ".join(o.text for o in _css(driver, f"{PANEL} .jp-OutputArea-output"))
    return outputs[-3000:] if "Traceback (most recent call last)" in outputs else ""


def run_all(driver, lab, name: str, timeout: float):
    """Open ``name``, run all its cells from the Run menu and wait until every code cell ran.

    Run All again if a run stalls (cells left unexecuted, none queued, no error): on a loaded
    machine JupyterLab can swap the kernel under a run that has just started."""
    from selenium.common.exceptions import StaleElementReferenceException

    lab.start_kernel(name)
    driver.get(f"{lab.url}/lab/tree/{name}?reset&token={TOKEN}")  # reset: no tabs restored from the last test
    _wait(driver, lambda d: _accept_dialogs(d) or (_prompts(d) and _kernel_idle(d)), 60, "notebook open, kernel idle")
    deadline = time.monotonic() + timeout
    for _ in range(3):
        stalled_since = None
        next(m for m in _css(driver, ".lm-MenuBar-item") if m.text == "Run").click()
        _wait(driver, lambda d: _css(d, '.lm-Menu-item[data-command="runmenu:run-all"]'), 10, "Run menu").pop().click()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                _accept_dialogs(driver)
                prompts, idle = _prompts(driver), _kernel_idle(driver)
            except StaleElementReferenceException:  # JupyterLab re-rendered a cell while we read it
                continue
            if prompts and all(p[1:-2].isdigit() for p in prompts) and idle:
                assert not _errors(driver), _errors(driver)
                return
            stalled = idle and "[*]:" not in prompts
            stalled_since = (stalled_since or time.monotonic()) if stalled else None
            if stalled_since and time.monotonic() - stalled_since > 5:
                assert not _errors(driver), _errors(driver)
                break  # run again
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"FAILED-{name}.png"))
    raise AssertionError(f"{name}: not every code cell ran (prompts {_prompts(driver)}); see {SHOTS}/FAILED-{name}.png")


def explorer_of(driver, label: str):
    """The explorer box holding the slider labelled ``label``, and that slider."""
    from selenium.webdriver.common.by import By

    slider = _wait(driver, lambda d: [s for s in _css(d, f"{PANEL} .widget-slider")
                                      if _css(s, ".widget-label")[0].text == label], 30, f"a slider {label!r}")[0]
    box = slider.find_element(By.XPATH, "./ancestor::div[.//img[contains(@class, 'widget-image')]][1]")
    return box, slider


def labels(box) -> list[str]:
    return [e.text for e in _css(box, ".widget-slider .widget-label, .widget-dropdown .widget-label")]


def pixels(png: bytes | str):
    """RGB pixels of PNG bytes or of a PNG data URL."""
    import base64
    from io import BytesIO

    import numpy as np
    from PIL import Image

    data = base64.b64decode(png.split(",", 1)[1]) if isinstance(png, str) else png
    return np.asarray(Image.open(BytesIO(data)).convert("RGB"))


@contextlib.contextmanager
def notebook_style():
    """The figure style a notebook's ``config.setup()`` sets, for renders in this process only (its
    seeds and torch's deterministic mode are put back afterwards)."""
    import random

    import matplotlib
    import numpy as np
    import torch

    from occfau_lib import config

    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with matplotlib.rc_context(), contextlib.redirect_stdout(io.StringIO()):
            config.setup(seed=0)
            yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def expected_figure(explorer, **values):
    """What the kernel should show once the controls hold ``values``: the same builder, run here."""
    for name, value in values.items():
        explorer.controls[name].value = value
    assert not explorer.message.value, explorer.message.value
    return pixels(explorer.image.value)


def check_figure(shown, expected, name: str) -> None:
    """Assert the browser shows exactly the expected pixels; keep both images when it does not."""
    import numpy as np
    from PIL import Image

    if shown.shape == expected.shape and np.array_equal(shown, expected):
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(shown).save(SHOTS / f"MISMATCH-{name}-browser.png")
    Image.fromarray(expected).save(SHOTS / f"MISMATCH-{name}-expected.png")
    diff = np.abs(shown.astype(int) - expected).max() if shown.shape == expected.shape else "shapes differ"
    raise AssertionError(f"{name}: the browser shows {shown.shape}, expected {expected.shape}, max difference {diff}")


def figure_png(driver, box) -> str:
    """The explorer's figure as a data URL of its pixels (the <img> src is a blob URL)."""
    img = _wait(driver, lambda d: [i for i in _css(box, "img.widget-image")
                                   if d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)],
                10, "figure loaded")[0]
    return driver.execute_script("const i = arguments[0], c = document.createElement('canvas');"
                                 "c.width = i.naturalWidth; c.height = i.naturalHeight;"
                                 "c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL();", img)


def move(driver, box, slider, steps: int, readout: str, expected, timeout: float = 30.0) -> None:
    """Press the right arrow ``steps`` times on the focused slider handle; wait for the readout to
    show ``readout`` and the figure to become ``expected`` (pixels; each key press redraws)."""
    import numpy as np
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.keys import Keys

    assert not np.array_equal(pixels(figure_png(driver, box)), expected), "the move should change the figure"
    handle = _css(slider, ".noUi-handle")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
    for _ in range(steps):
        handle.send_keys(Keys.ARROW_RIGHT)
    _wait(driver, lambda d: _css(slider, ".widget-readout")[0].text == readout, timeout, f"readout {readout}")
    try:
        _wait(driver, lambda d: np.array_equal(pixels(figure_png(d, box)), expected), timeout, "")
    except TimeoutException:
        check_figure(pixels(figure_png(driver, box)), expected, f"after-moving-to-{readout}")


def screenshot(driver, box, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", box)
    box.screenshot(str(SHOTS / f"{name}.png"))
    driver.save_screenshot(str(SHOTS / f"{name}-page.png"))
    return SHOTS / f"{name}.png"


# ----- tests -----


def test_face_explorer_of_notebook_00(browser, lab):
    run_all(browser, lab, "00_facs_and_synthfacs.ipynb", timeout=120)
    box, au12 = explorer_of(browser, "AU12")
    assert labels(box) == FACE_LABELS  # no `size` slider; light strength labelled within "light"
    titles = [e.text for e in _css(box, ".widget-html")]
    assert [t for t in titles if t] == ["upper face", "lower face", "identity, head pose", "light"]
    from occfau_lib import widgets

    with notebook_style():  # notebook 00 calls config.setup() before its explorer
        explorer = widgets.face_explorer()
        first, smile = expected_figure(explorer), expected_figure(explorer, au12=4.0)
    check_figure(pixels(figure_png(browser, box)), first, "00_first_frame")
    screenshot(browser, box, "00_face_explorer_before")
    move(browser, box, au12, steps=8, readout="4.00", expected=smile)  # 0.5 a step
    assert not _css(box, ".widget-html")[-1].text  # the error line stays empty
    screenshot(browser, box, "00_face_explorer_after")


def test_occluder_explorer_of_notebook_03(browser, lab):
    run_all(browser, lab, "03_occluder_explorer.ipynb", timeout=90)
    box, side = explorer_of(browser, "side")
    assert labels(box) == OCCLUDER_LABELS
    namespace = {}
    exec(OCCLUDER_SETUP, namespace)  # the notebook's cells, run here too: the expected figure
    explorer = eval(OCCLUDER_CELL, namespace)
    check_figure(pixels(figure_png(browser, box)), expected_figure(explorer), "03_first_frame")
    screenshot(browser, box, "03_occluder_explorer_before")
    move(browser, box, side, steps=4, readout="0.50", expected=expected_figure(explorer, side=0.5))  # 0.30 -> 0.50
    screenshot(browser, box, "03_occluder_explorer_after")


# ----- the latent explorer (a Bokeh page in an iframe) and the book site -----

#: Every element matching a selector, inside Bokeh's shadow roots too.
DEEP = """function deep(root, sel, out) { out = out || [];
  root.querySelectorAll(sel).forEach(e => out.push(e));
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, sel, out); });
  return out; }
"""


def _deep(driver, selector: str):
    return driver.execute_script(DEEP + "return deep(document, arguments[0]);", selector)


def _deep_text(driver, selector: str) -> str:
    return driver.execute_script(DEEP + "return deep(document, arguments[0]).map(e => e.innerText).join(' ');", selector)


#: Where row ``arguments[1]`` of the explorer's data is drawn in the view named ``arguments[0]``:
#: the view's canvas element and the point's offset from its centre (BokehJS's own scales).
POINT = """const doc = Bokeh.documents[0], fig = doc.get_model_by_name(arguments[0]);
const view = Bokeh.index.find_one(fig), data = doc.get_model_by_name('explorer-source').data;
const space = arguments[0].slice('explorer-'.length), i = arguments[1];
const el = view.canvas_view.el, r = el.getBoundingClientRect();
return [el, view.frame.x_scale.compute(data['x:' + space][i]) - r.width / 2,
        view.frame.y_scale.compute(data['y:' + space][i]) - r.height / 2];"""


def drive_explorer(driver, frame, name: str, view: str = "explorer-pixels") -> None:
    """Inside the explorer ``frame``: hover a point of ``view`` until its face shows, click it and
    wait for its nearest neighbours; screenshots ``name``-hover/-click."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", frame)
    driver.switch_to.frame(frame)
    try:
        _wait(driver, lambda d: d.execute_script("return window.Bokeh && Bokeh.documents.length && "
                                                 "Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name("
                                                 "arguments[0])) != null", view), 60, "the explorer drawn")
        canvas, dx, dy = driver.execute_script(POINT, view, 0)
        ActionChains(driver).move_to_element_with_offset(canvas, round(dx), round(dy)).perform()
        _wait(driver, lambda d: _deep(d, ".face-pair .face"), 10, "hovering a point shows its face")
        assert "labelled:" in _deep_text(driver, ".bk-clearfix")
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"{name}-hover.png"))
        ActionChains(driver).click().perform()  # on the point just hovered
        _wait(driver, lambda d: len(_deep(d, ".thumb .face")) >= 3, 20, "nearest neighbours listed")
        assert "in the full" in _deep_text(driver, ".bk-clearfix")
        driver.save_screenshot(str(SHOTS / f"{name}-click.png"))
    finally:
        driver.switch_to.default_content()


def test_latent_explorer_in_jupyterlab(browser, lab):
    run_all(browser, lab, "04_latent_explorer.ipynb", timeout=120)
    frame = _wait(browser, lambda d: _css(d, f"{PANEL} iframe.occfau-explorer"), 30, "the explorer's iframe")[0]
    drive_explorer(browser, frame, "04_latent_explorer")


def _executed_explorer_notebook():
    """An executed notebook as `make demo` leaves it: the explorer's output, plumbing on stdout and
    stderr, a widget view, a summary."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    namespace = {}
    exec(EXPLORER_SETUP, namespace)
    page = eval(EXPLORER_CELL, namespace)._repr_html_()
    cell = new_code_cell(EXPLORER_CELL, execution_count=1, outputs=[
        new_output("stream", name="stdout", text="[occfau] no shipped teacher model matches: training it\n"),
        new_output("stream", name="stderr", text="UserWarning: plumbing\n"),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                         "text/plain": "Explorer()"}),
        new_output("execute_result", data={"text/html": page, "text/plain": "Exploration"}, execution_count=1)])
    return new_notebook(cells=[new_markdown_cell("# 04 · Explorer page\n\n## Explore"), cell,
                               new_markdown_cell("## Summary\n\n- the explorer works offline")])


def test_book_site_offline(browser, tmp_path):
    """The site opened from disk with http(s) blocked: no page requests anything outside the machine,
    the search finds a section, widgets say to use JupyterLab, and the explorer answers."""
    import nbformat

    import run_notebooks as notebooks

    executed = tmp_path / "executed"
    executed.mkdir()
    nbformat.write(_executed_explorer_notebook(), executed / "04_explorer.ipynb")
    index = notebooks.write_site(executed, tmp_path / "site", solutions=ROOT / "notebooks" / "solutions")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"]})
    browser.get("about:blank")  # leave JupyterLab (an earlier test's page keeps polling its server)
    time.sleep(0.5)
    browser.get_log("performance")  # start with an empty log
    try:
        for page in sorted(p.name for p in index.parent.glob("*.html")):
            browser.get(index.parent.joinpath(page).as_uri())
            _wait(browser, lambda d: d.execute_script("return document.readyState") == "complete", 30, page)
        browser.get((index.parent / "04_explorer.html").as_uri())
        text = browser.find_element("css selector", "article").text
        assert "run this notebook in JupyterLab" in text and "[occfau]" not in text and "UserWarning" not in text
        assert "What you saw" in text and "the explorer works offline" in text
        drive_explorer(browser, browser.find_element("css selector", "iframe.occfau-explorer"), "site_explorer")
        browser.find_element("css selector", "#search").send_keys("explore")
        _wait(browser, lambda d: _css(d, "#hits a[href*='04_explorer.html']"), 10, "a search hit")
        browser.get(index.as_uri())
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "site_index.png"))
        requested = {json.loads(entry["message"])["message"]["params"]["request"]["url"]
                     for entry in browser.get_log("performance")
                     if '"Network.requestWillBeSent"' in entry["message"]}
        outside = sorted(u for u in requested if not u.startswith(("file:", "data:", "blob:", "about:")))
        assert requested and not outside, f"the site asked for {outside}"
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
