"""The book site of ``make demo``: the executed notebooks as one offline, browsable book.

``python tools/book.py build/notebooks build/site`` renders what ``make demo`` executed (it runs
nothing) into ``build/site/``: an index (what the project is, the README's figures, each notebook's
verdict), the lecture path (``docs/lecture-path.md``), one page per notebook with its summary at the
top, and the worked solutions. Every page has the table of contents, previous/next links and a
search box (a local index, ``search.js``).

The site requests nothing outside the machine: nbconvert's head (require.js, MathJax and Mermaid
from CDNs) is dropped and its styles go into one local ``notebook.css``; widget outputs, which need
a kernel, become their first figure and a line saying to run the notebook in JupyterLab; the latent
explorer is a self-contained page in an ``<iframe srcdoc>`` and keeps working. Plumbing does not
reach the reader: stderr (warnings, progress bars) and the ``[occfau]`` cache lines are dropped, and
the smoke-model scores of notebook 05 (a pipeline check, not a result) fold away under one line.

Hand-made rather than Jupyter Book or Sphinx: the pages are nbconvert's (already a dependency), so
nothing is installed, and no theme default (fonts, MathJax, widget managers from CDNs) has to be
hunted down; the whole build takes seconds.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mistune
import nbformat

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = "runtimes.json"
WIDGET_VIEW, WIDGET_STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"
NO_KERNEL = ("<p class='no-kernel'>Interactive widget: run this notebook in JupyterLab (<code>make lab</code>) "
             "to move the sliders; shown here as it first drew.</p>")
#: Outputs that check the pipeline rather than report a result: (notebook stem, cell id) -> the line shown.
FOLDED = {("05_full_gpu_training", "cell-13"): "the smoke run's scores (2 tiny epochs: a pipeline check, not a result)",
          ("05_full_gpu_training", "cell-14"): "the smoke run's per-AU F1 table (a pipeline check, not a result)"}
markdown = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])


@dataclass
class Page:
    """One page of the book: its file, title, body HTML and sections (id, title) for the TOC."""

    name: str
    title: str
    body: str = ""
    sections: list = field(default_factory=list)
    verdict: str = ""
    runtime: str = ""
    group: str = "notebooks"


# ----- notebooks: clean, then convert -----

def notebook_title(nb, default: str = "") -> str:
    """The text of the first markdown heading of a notebook (``default`` if it has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.lstrip().startswith("#"):
                    return line.lstrip().lstrip("#").strip()
    return default


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "runtime not recorded"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes else f"{s} s"


def _widget_png(state: dict, model_id: str, seen=None) -> str | None:
    """The first image (base64 PNG) inside widget ``model_id`` of a stored widget state."""
    seen = seen or set()
    model = state.get(model_id)
    if model is None or model_id in seen:
        return None
    seen.add(model_id)
    if model.get("model_name") == "ImageModel":
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"]:
                return buffer["data"]
    for child in model.get("state", {}).get("children", []):
        found = _widget_png(state, str(child).removeprefix("IPY_MODEL_"), seen)
        if found:
            return found
    return None


def clean_notebook(nb, stem: str):
    """The notebook as the reader should see it: no stderr, no ``[occfau]`` lines, widget views as
    their first figure plus a line, pipeline checks folded. Returns a new notebook."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                if out.name == "stderr":
                    continue
                out.text = "".join(line for line in out.text.splitlines(True) if not line.startswith("[occfau]"))
                if not out.text.strip():
                    continue
            elif WIDGET_VIEW in out.get("data", {}):
                png = _widget_png(state, out.data[WIDGET_VIEW].get("model_id", ""))
                image = f"<img alt='the widget as it first drew' src='data:image/png;base64,{png}'>" if png else ""
                out = nbformat.v4.new_output("display_data", data={"text/html": NO_KERNEL + image})
            kept.append(out)
        if (stem, cell.get("id")) in FOLDED and kept:
            kept = [fold(kept, FOLDED[(stem, cell.get("id"))])]
        cell.outputs = kept
    return nb


def fold(outputs: list, line: str):
    """One output showing ``line``, the ``outputs`` folded under it (``<details>``)."""
    parts = []
    for out in outputs:
        data = out.get("data", {})
        if "text/html" in data:
            parts.append(data["text/html"])
        elif "text/markdown" in data:
            parts.append(markdown(data["text/markdown"]))
        else:
            parts.append(f"<pre>{html.escape(out.get('text', data.get('text/plain', '')))}</pre>")
    return nbformat.v4.new_output("display_data", data={"text/html": (
        f'<details class="folded"><summary>{html.escape(line)}</summary>{"".join(parts)}</details>')})


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(embed_images=True)


def convert(nb, stem: str, exporter=None) -> tuple[str, str]:
    """(body HTML, styles) of a cleaned notebook via nbconvert's lab template: its ``<main>`` and its
    ``<style>`` blocks; every ``<script>`` of its head (CDN loaders) is left behind."""
    exporter = exporter or _exporter()
    full, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": stem}})
    styles = "\n".join(re.findall(r"<style[^>]*>(.*?)</style>", full, re.S))
    styles = re.sub(r"@import url\([^)]*\);?", "", styles)
    body = re.search(r"<main>(.*)</main>", full, re.S).group(1)
    body = re.sub(r'<script[^>]+src="https?:[^"]*"[^>]*>\s*</script>', "", body)
    return body, styles


def verdict(nb) -> str:
    """The notebook's summary section (its "## Summary" cell) as HTML, without its heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Summary"):
            return markdown(cell.source.split("\n", 1)[1] if "\n" in cell.source else "")
    return ""


def sections(body: str) -> list[tuple[str, str]]:
    """(id, title) of every ``<h2>`` of a converted page."""
    found = re.findall(r'<h2 id="([^"]+)">(.*?)<a class="anchor-link"', body, re.S)
    return [(i, re.sub(r"<[^>]+>", "", t).strip()) for i, t in found]


# ----- the book -----

CSS = """
body { margin:0; font:15px/1.5 system-ui, sans-serif; color:#1a1a1a; }
header.book { position:sticky; top:0; z-index:10; display:flex; gap:16px; align-items:center; padding:6px 16px;
  background:#f6f6f2; border-bottom:1px solid #ddd; }
header.book a.home { font-weight:600; color:#1a1a1a; text-decoration:none; }
#search { width:280px; padding:3px 6px; } #hits { position:absolute; top:38px; left:220px; width:520px; max-height:420px;
  overflow:auto; background:white; border:1px solid #ccc; display:none; } #hits a { display:block; padding:4px 8px; }
#hits small { color:#666; }
.layout { display:flex; } nav.toc { width:250px; flex:none; padding:12px; font-size:13px; border-right:1px solid #eee;
  position:sticky; top:40px; height:calc(100vh - 60px); overflow:auto; }
nav.toc a { display:block; padding:1px 0; color:#1f4e8c; text-decoration:none; } nav.toc a.here { font-weight:700; }
nav.toc .sub { padding-left:12px; font-size:12px; } nav.toc h4 { margin:10px 0 2px; color:#666; font-size:12px; }
article { flex:1; min-width:0; padding:8px 24px 40px; max-width:1250px; }
.verdict { background:#eef4fb; border-left:4px solid #0072B2; padding:6px 14px; margin:10px 0 18px; }
.prevnext { display:flex; justify-content:space-between; margin:10px 0; } .no-kernel { color:#7a4b00; font-style:italic; }
details.folded > summary { color:#555; cursor:pointer; font-style:italic; }
.figures { display:flex; flex-wrap:wrap; gap:14px; } .figures figure { margin:0; max-width:560px; }
.figures img { max-width:100%; border:1px solid #eee; } .card { margin:8px 0 14px; }
"""
SEARCH_JS = """
(function () {
  const box = document.getElementById('search'), hits = document.getElementById('hits');
  box.addEventListener('input', function () {
    const words = box.value.toLowerCase().split(/\\s+/).filter(w => w.length > 1);
    if (!words.length) { hits.style.display = 'none'; return; }
    const found = SEARCH_INDEX.filter(e => words.every(w => e.text.includes(w) || e.title.toLowerCase().includes(w)));
    hits.innerHTML = found.slice(0, 30).map(e => `<a href="${e.href}">${e.title} <small>${e.page}</small></a>`).join('')
      || '<a>nothing found</a>';
    hits.style.display = 'block';
  });
  document.addEventListener('click', e => { if (e.target !== box) hits.style.display = 'none'; });
})();
"""


def _toc(pages: list[Page], here: Page) -> str:
    out, group = [], None
    for page in pages:
        if page.group != group:
            group = page.group
            out.append(f"<h4>{html.escape(group)}</h4>")
        cls = ' class="here"' if page is here else ""
        out.append(f'<a{cls} href="{page.name}">{html.escape(page.title)}</a>')
        if page is here:
            out += [f'<a class="sub" href="#{i}">{html.escape(t)}</a>' for i, t in page.sections]
    return "\n".join(out)


def _prevnext(pages: list[Page], i: int) -> str:
    prev = f'<a rel="prev" href="{pages[i - 1].name}">← {html.escape(pages[i - 1].title)}</a>' if i else "<span></span>"
    nxt = (f'<a rel="next" href="{pages[i + 1].name}">{html.escape(pages[i + 1].title)} →</a>'
           if i + 1 < len(pages) else "<span></span>")
    return f'<div class="prevnext">{prev}{nxt}</div>'


def render(pages: list[Page], i: int) -> str:
    page = pages[i]
    top = (f'<div class="verdict"><b>What you saw</b> (the notebook\'s summary; '
           f'<a href="#Summary">in context</a>){page.verdict}</div>' if page.verdict else "")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(page.title)} · occfau</title>"
            '<link rel="stylesheet" href="notebook.css"><link rel="stylesheet" href="site.css"></head>\n'
            '<body><header class="book"><a class="home" href="index.html">occfau · the book</a>'
            '<input id="search" type="search" placeholder="search the book"><div id="hits"></div></header>\n'
            f'<div class="layout"><nav class="toc">{_toc(pages, page)}</nav>\n'
            f'<article class="jp-Notebook" data-jp-theme-light="true">{_prevnext(pages, i)}{top}{page.body}'
            f"{_prevnext(pages, i)}</article></div>\n"
            '<script src="search.js"></script></body></html>\n')


def search_entries(page: Page) -> list[dict]:
    """One search entry per section of a page: its title, link and lower-cased text."""
    parts = re.split(r'(?=<h[23] id=")', page.body)
    out = []
    for part in parts:
        m = re.match(r'<h[23] id="([^"]+)">(.*?)<a class="anchor-link"', part, re.S)
        title, href = (re.sub(r"<[^>]+>", "", m.group(2)).strip(), f"{page.name}#{m.group(1)}") if m else (
            page.title, page.name)
        text = re.sub(r"<style.*?</style>|<[^>]+>|srcdoc=\"[^\"]*\"", " ", part, flags=re.S)
        text = html.unescape(re.sub(r"\s+", " ", text)).lower()[:4000]
        out.append({"page": page.title, "title": title, "href": href, "text": text})
    return out


def index_page(pages: list[Page], note: str, profile: str) -> Page:
    readme = (ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else ""
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[-1]
    intro = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?(\*[^\n]*\n?[^\n]*\*)?", "", intro)  # the figure goes below
    intro = re.sub(r"\[([^\]]+)\]\((?!https?:|#)[^)]+\)", r"\1", intro)  # repository links: plain text here
    figures = sorted((ROOT / "docs" / "figures").glob("*.png"))
    strip = "".join(
        f"<figure><img alt='{f.stem}' src='data:image/png;base64,{base64.b64encode(f.read_bytes()).decode()}'>"
        f"<figcaption>{html.escape(f.stem.replace('-', ' '))}</figcaption></figure>" for f in figures)
    cards = "".join(
        f'<div class="card"><h3><a href="{p.name}">{html.escape(p.title)}</a> <small>({html.escape(p.runtime)})'
        f"</small></h3>{_first_item(p.verdict)}</div>" for p in pages if p.group == "notebooks")
    body = (f"<h1>occfau notebooks</h1>{markdown(intro)}"
            f"<p>Executed on the <code>{html.escape(profile)}</code> profile; runtime = wall time of the whole "
            f"notebook{html.escape(note)}. Teaching it? Start with the <a href='lecture.html'>lecture path</a>.</p>"
            f"<h2 id='notebooks'>The notebooks<a class='anchor-link' href='#notebooks'></a></h2>{cards}"
            f"<h2 id='figures'>Key figures<a class='anchor-link' href='#figures'></a></h2>"
            f"<div class='figures'>{strip}</div>")
    return Page("index.html", "occfau · overview", body, [("notebooks", "The notebooks"), ("figures", "Key figures")],
                group="start")


def _first_item(verdict_html: str) -> str:
    """The index card's line: the summary's "What you saw" box when it has one, else its first bullet."""
    box = re.search(r"<blockquote>\s*(.*?)\s*</blockquote>", verdict_html, re.S)
    if box:
        return box.group(1) if box.group(1).startswith("<p>") else f"<p>{box.group(1)}</p>"
    m = re.search(r"<li>(.*?)</li>", verdict_html, re.S)
    return f"<p>{m.group(1)}</p>" if m else ""


def lecture_page() -> Page | None:
    path = ROOT / "docs" / "lecture-path.md"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    body = markdown(text)
    body = re.sub(r"<h([23])>(.*?)</h\1>", lambda m: (
        f'<h{m.group(1)} id="{_slug(m.group(2))}">{m.group(2)}<a class="anchor-link" href="#{_slug(m.group(2))}"></a>'
        f"</h{m.group(1)}>"), body)
    title = re.search(r"^#\s+(.*)$", text, re.M)
    page = Page("lecture.html", title.group(1) if title else "Lecture path", body, group="start")
    page.sections = sections(body)
    return page


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", re.sub(r"<[^>]+>", "", text)).strip("-")


def build(executed_dir: Path, site_dir: Path, runtimes: dict | None = None, note: str = "",
          solutions_dir: Path | None = ROOT / "notebooks" / "solutions") -> Path:
    """Write the book for the executed notebooks in ``executed_dir`` into ``site_dir``; returns the index."""
    executed_dir, site_dir = Path(executed_dir), Path(site_dir)
    if runtimes is None:
        stored = executed_dir / RUNTIMES
        runtimes = json.loads(stored.read_text()) if stored.exists() else {}
    paths = sorted(executed_dir.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"site: no executed notebooks in {executed_dir}")
    site_dir.mkdir(parents=True, exist_ok=True)
    exporter, styles, pages = _exporter(), "", []
    sources = [(p, "notebooks", p.stem) for p in paths]
    if solutions_dir is not None and Path(solutions_dir).is_dir():
        sources += [(p, "solutions", f"solutions-{p.stem}") for p in sorted(Path(solutions_dir).glob("*.ipynb"))]
    for path, group, stem in sources:
        raw = nbformat.read(path, as_version=4)
        body, styles = convert(clean_notebook(raw, path.stem), path.stem, exporter)
        title = notebook_title(raw, path.stem)
        page = Page(f"{stem}.html", title, body, sections(body), verdict(raw) if group == "notebooks" else "",
                    duration(runtimes.get(path.name)), group)
        pages.append(page)
    start = [index_page(pages, note, os.environ.get("OCCFAU_PROFILE", "demo"))]
    lecture = lecture_page()
    pages = start + ([lecture] if lecture else []) + pages
    (site_dir / "notebook.css").write_text(styles, encoding="utf-8")
    (site_dir / "site.css").write_text(CSS, encoding="utf-8")
    entries = [e for page in pages for e in search_entries(page)]
    (site_dir / "search.js").write_text(f"const SEARCH_INDEX = {json.dumps(entries)};\n{SEARCH_JS}", encoding="utf-8")
    for i, page in enumerate(pages):
        (site_dir / page.name).write_text(render(pages, i), encoding="utf-8")
    return site_dir / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the offline book site of the executed notebooks.")
    parser.add_argument("executed", type=Path, help="folder of executed notebooks (make demo: build/notebooks)")
    parser.add_argument("site", type=Path, help="output folder (make demo: build/site)")
    args = parser.parse_args(argv)
    print(f"site: {build(args.executed, args.site)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
