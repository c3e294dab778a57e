"""The conda environment and pyproject.toml name the same packages; torch is pinned once; the
transformers declared is the major version installed and tested; `make test` installs the browser
test's Chromium itself (tools/browser-deps.sh, its logic run here with fake commands)."""
import os
import re
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}


def _pip_names(requirements):
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = _pip_names(project["dependencies"]) | _pip_names(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {CONDA_TO_PIP.get(d.split("=")[0], d.split("=")[0]) for d in env["dependencies"] if isinstance(d, str)}
    conda -= {"python", "pip"}
    assert conda == pip


def test_environment_yml_pins_major_minor_with_a_comment_each():
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s+- ([a-z0-9-]+)=(\S+)", line)
        if m and m.group(1) != "python":
            assert re.fullmatch(r"\d+\.\d+", m.group(2)), line
            assert "#" in line, f"no comment saying who needs it: {line}"


def test_torch_pair_is_pinned_exactly_once():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in text and '"torchvision==0.29.1"' in text
    installers = [ROOT / "Makefile", ROOT / ".ci" / "run", *ROOT.glob("requirements*.txt")]
    assert not [p.name for p in installers if "torch" in p.read_text()], "install torch through pyproject.toml only"


def test_transformers_is_declared_as_the_major_version_tested():
    """The MAE code runs 5.x's ViT layers (attention mask argument, tensor results): 4.x would break it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [r for r in project["dependencies"] if r.startswith("transformers")]
    major = version("transformers").split(".")[0]
    assert spec == f"transformers>={major},<{int(major) + 1}"
    env = (ROOT / "environment.yml").read_text()
    assert re.search(rf"^  - transformers={major}\.\d+ ", env, re.M)


def test_make_test_sets_up_the_browser_itself():
    make = (ROOT / "Makefile").read_text()
    recipe = make[make.index("\ntest: setup"):].split("\n\n")[0]
    assert recipe.index("bash tools/browser-deps.sh") < recipe.index("pytest")
    assert "apt-get" not in (ROOT / ".ci" / "run").read_text() and "make test" in (ROOT / ".ci" / "run").read_text()


FAKE = {  # fake commands: each logs how it was called, then behaves as named
    "id": 'echo "$FAKE_UID"',
    "sudo": 'echo "sudo $*" >> "$LOG"; exec "$@"',
    "apt-get": 'echo "apt-get $*" >> "$LOG"; [ "$1" = install ] && for f in "$CHROMIUM" "$CHROMEDRIVER"; do '
               ': > "$f"; /bin/chmod +x "$f"; done; exit "${APT_FAILS:-0}"',
}


def browser_deps(tmp_path, uid="0", commands=("id", "sudo", "apt-get"), installed=False, **env):
    """tools/browser-deps.sh with PATH holding only ``env`` and the fake ``commands``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    os.symlink("/usr/bin/env", bin_dir / "env")
    for name in commands:
        (bin_dir / name).write_text(f"#!/bin/bash\n{FAKE[name]}\n")
        (bin_dir / name).chmod(0o755)
    chromium, driver = tmp_path / "chromium", tmp_path / "chromedriver"
    if installed:
        for f in (chromium, driver):
            f.write_text("")
            f.chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    done = subprocess.run(["/bin/bash", str(ROOT / "tools" / "browser-deps.sh")], capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "FAKE_UID": uid, "LOG": str(log), "CHROMIUM": str(chromium),
                               "CHROMEDRIVER": str(driver), **env}, timeout=30)
    return done.returncode, done.stderr.strip().splitlines(), log.read_text().splitlines()


INSTALL = ["apt-get update -qq", "apt-get install -y -qq chromium chromium-driver"]


@pytest.mark.parametrize("case, expected_log", [
    ({"installed": True}, []),  # nothing to do
    ({"uid": "0"}, INSTALL),  # root: apt-get itself
    ({"uid": "1000"}, ["sudo apt-get update -qq", INSTALL[0],  # a user: through sudo
                       "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver",
                       INSTALL[1]]),
])
def test_browser_deps_installs_what_is_missing(tmp_path, case, expected_log):
    code, _, log = browser_deps(tmp_path, **case)
    assert code == 0 and log == expected_log


@pytest.mark.parametrize("case", [
    {"uid": "1000", "commands": ("id", "apt-get")},  # no sudo
    {"commands": ("id",)},  # not Debian: no apt-get
    {"APT_FAILS": "100"},  # apt-get failed
])
def test_browser_deps_says_what_to_install_where_it_cannot(tmp_path, case):
    code, err, _ = browser_deps(tmp_path, **case)
    assert code == 1 and err[-1].startswith("make test: tests/test_browser.py needs Chromium at ")
    assert "apt-get install -y chromium chromium-driver" in err[-1] and len(err) <= 2
