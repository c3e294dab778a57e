"""The repository stands alone: no file refers to a path outside it, and every relative link in its
Markdown and notebooks points at a file inside it."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".sh", ""}
#: Paths of the machine this project was built on, or beside the checkout: a clone has none of them.
OUTSIDE = re.compile(r"\.\./shared\b|\bshared/[\w-]+\.md|/work/|\.\./\.library|/root/")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines()
            if Path(line).suffix in TEXT_SUFFIXES and (ROOT / line).is_file()]


def test_no_file_refers_to_a_path_outside_the_repository():
    offenders = []
    for path in tracked():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in OUTSIDE.finditer(text)]
    assert not offenders, "files refer to paths outside the repository:\n" + "\n".join(offenders)


def markdown(path: Path) -> str:
    """A Markdown file's text, or the text of a notebook's Markdown cells."""
    if path.suffix == ".md":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_relative_links_resolve_to_files_in_the_repository():
    broken = []
    for path in tracked():
        if path.suffix not in (".md", ".ipynb"):
            continue
        for link in LINK.findall(markdown(path)):
            if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
                continue
            target = (path.parent / link).resolve()
            if not target.is_relative_to(ROOT) or not target.exists():
                broken.append(f"{path.relative_to(ROOT)} -> {link}")
    assert not broken, "broken or outside links:\n" + "\n".join(broken)


def test_the_checks_catch_what_they_look_for(tmp_path):
    assert OUTSIDE.search("see `shared/paper-notes.md`") and OUTSIDE.search("cd ../shared && ls")
    assert not OUTSIDE.search("occfau_lib/shared.py and data/shared_faces")
    assert LINK.findall("[a](docs/x.md#part) and [b](https://example.org)") == ["docs/x.md", "https://example.org"]
