"""The conda environment and pyproject.toml name the same packages; torch is pinned once."""
import re
import tomllib
from pathlib import Path

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
