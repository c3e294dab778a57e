"""The repository stands alone: no file refers to a path outside it, and every relative link in its
Markdown and notebooks points at a file inside it."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".sh", ""}
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def tracked(root: Path = ROOT) -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [root / line for line in out.splitlines()
            if Path(line).suffix in TEXT_SUFFIXES and (root / line).is_file()]


def outside_references(root: Path, files: list[Path]) -> list[str]:
    """Mentions of what lies beside ``root`` on this machine: its parent folder's absolute path, or a
    sibling's file written as ``../sibling/...`` or ``sibling/...`` that the repository does not hold.
    A clone elsewhere has none of them. The patterns come from the folders around ``root``, so this
    file names no machine's paths itself."""
    parent = root.parent
    siblings = [p.name for p in parent.iterdir() if p != root and not (root / p.name).exists()]
    patterns = [re.escape(str(parent) + "/") + r"[\w./-]*"] if parent != Path(parent.anchor) else []
    patterns += [rf"(?<![\w.-])(?:\.\./)?{re.escape(s)}/[\w./-]+" for s in siblings]
    if not patterns:
        return []
    found = re.compile("|".join(patterns))
    offenders = []
    for path in files:
        for m in found.finditer(path.read_text(errors="ignore")):
            target = m.group(0).removeprefix("../")
            if target.startswith(str(parent)) or (parent / target).exists() or m.group(0).startswith("../"):
                offenders.append(f"{path.relative_to(root)}: {m.group(0)!r}")
    return offenders


def test_no_file_refers_to_a_path_outside_the_repository():
    offenders = outside_references(ROOT, tracked())
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
    repo, notes = tmp_path / "repo", tmp_path / "notes"
    (repo / "docs").mkdir(parents=True)
    notes.mkdir()
    (notes / "method.md").write_text("x")
    (repo / "docs" / "method.md").write_text("x")
    bad = repo / "bad.md"
    bad.write_text(f"see notes/method.md, ../notes/method.md and {tmp_path}/notes/method.md")
    good = repo / "good.md"
    good.write_text("see docs/method.md and footnotes/method.md")
    assert len(outside_references(repo, [bad])) == 3 and outside_references(repo, [good]) == []
    assert LINK.findall("[a](docs/x.md#part) and [b](https://example.org)") == ["docs/x.md", "https://example.org"]
