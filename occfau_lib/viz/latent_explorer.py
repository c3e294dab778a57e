"""The latent explorer as one self-contained HTML page (notebooks 02 and 04, and the static site).

Bokeh draws one scatter per feature space from ONE shared data source, so a selection in any space
highlights the same faces in all (linked views). JavaScript callbacks work without a kernel: hover
shows a face clean and as the model saw it, a click its nearest neighbours in the FULL feature space,
a box or lasso selection its mean face and AU rates, and a menu recolours every view. Faces travel as
JPEG sprite sheets and BokehJS is inlined, so the page requests nothing from the network; notebooks
show it in an ``<iframe srcdoc>`` (:func:`iframe`), which needs no JupyterLab extension.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

#: Okabe-Ito colours (safe for colour-blind readers) for the fixed categories.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FIXED = {"present": "#D55E00", "absent": "#0072B2", "unknown": "#BBBBBB",
         "correct: present": "#0072B2", "correct: absent": "#A6CEE3",  # right answers in blues, errors stand out
         "wrong: missed": "#E69F00", "wrong: false alarm": "#CC79A7"}
#: Many categories (subjects): 20 colours of matplotlib's tab20 + tab20b, given out so that
#: neighbouring clusters differ (:func:`separating_colours`).
MANY = tuple(to_hex(colormaps["tab20"](i)) for i in range(20)) + tuple(
    to_hex(colormaps["tab20b"](i)) for i in range(0, 20, 2))
THUMB = 64  # px of a face in the panels


def separating_colours(values: np.ndarray, xy: np.ndarray, palette=MANY) -> dict[str, str]:
    """A colour per category of ``values`` (M,) such that categories close together in ``xy`` (M, 2)
    differ: each category, largest first, takes the colour whose nearest use is farthest away."""
    cats = list(dict.fromkeys(values.tolist()))
    if len(cats) <= len(palette):
        return dict(zip(cats, palette))
    centre = {c: xy[values == c].mean(0) for c in cats}
    given: dict[str, str] = {}
    for cat in sorted(cats, key=lambda c: -(values == c).sum()):
        def clearance(colour):
            others = [centre[c] for c, col in given.items() if col == colour]
            return min((float(np.linalg.norm(centre[cat] - o)) for o in others), default=np.inf)
        given[cat] = max(palette, key=clearance)
    return given


def colour_column(values: np.ndarray, xy: np.ndarray) -> tuple[list[str], str]:
    """Hex colours (M,) for a colouring and its legend as HTML: floats on the cividis scale,
    categories from the fixed Okabe-Ito map, the Okabe-Ito list, or :func:`separating_colours`."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (values - lo) / (hi - lo or 1.0)
        cmap = colormaps["cividis"]
        stops = ", ".join(to_hex(cmap(t)) for t in np.linspace(0, 1, 6))
        legend = (f"<span>{lo:.2g}</span> <span style='display:inline-block;width:120px;height:10px;"
                  f"background:linear-gradient(to right, {stops})'></span> <span>{hi:.2g}</span>")
        return [to_hex(cmap(t)) for t in np.nan_to_num(scaled)], legend
    cats = list(dict.fromkeys(values.tolist()))
    if all(c in FIXED for c in cats):
        table = {c: FIXED[c] for c in FIXED if c in cats}
    elif len(cats) <= len(OKABE_ITO):
        table = dict(zip(sorted(cats), OKABE_ITO))
    else:
        table = separating_colours(values, xy)
    shown = list(table.items())[:12]
    legend = " ".join(f"<span style='white-space:nowrap'><span style='color:{c}'>&#9679;</span> "
                      f"{html.escape(str(k))}</span>" for k, c in shown)
    if len(table) > len(shown):
        legend += f" … ({len(table)} in all; neighbouring groups get different colours)"
    return [table[v] for v in values.tolist()], legend


def jpeg_sprite(images: np.ndarray, cols: int) -> str:
    """The faces (M, S, S, 3) tiled ``cols`` per row, as a JPEG data URL."""
    from PIL import Image

    from ..explorer import sprite

    buf = io.BytesIO()
    Image.fromarray(sprite(images, cols)).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


JS_COMMON = """
const d = source.data, aus = meta.aus, S = meta.size;
function face(kind, i, scale) {  // a row's face as seen, or the clean face of its face index
  const cols = meta.cols[kind], k = kind == 'clean' ? d.face[i] : i;
  const r = Math.floor(k / cols), c = k % cols, w = S * scale;
  return `<span class="face ${kind}" style="width:${w}px;height:${w}px;background-size:${cols * w}px auto;` +
         `background-position:-${c * w}px -${r * w}px"></span>`;
}
"""
HOVER_JS = JS_COMMON + """
const hit = cb_data.index.indices;
if (!hit.length) return;
const i = hit[0];
info.text = `<div class="face-pair">${face('clean', i, 2)} ${face('seen', i, 2)}</div>` +
  `<div><b>face ${d.face[i]}</b>, ${d.condition[i]}, subject ${d.subject[i]}</div>` +
  `<div>labelled: ${d.truth[i]}</div>` + (d.predicted[i] ? `<div>predicted: ${d.predicted[i]}</div>` : '') +
  `<div class="hint">left: clean; right: as the model saw it</div>`;
info.tags = [i];
"""
TAP_JS = JS_COMMON + """
const xs = d['x:' + space], ys = d['y:' + space];
const sx = xr.end - xr.start, sy = yr.end - yr.start;
let best = -1, dist = 0.03 * 0.03;
for (let i = 0; i < xs.length; i++) {
  const dx = (xs[i] - cb_obj.x) / sx, dy = (ys[i] - cb_obj.y) / sy, q = dx * dx + dy * dy;
  if (q < dist) { dist = q; best = i; }
}
if (best < 0) return;
const nn = d['nn:' + space][best];
let out = `<div><b>nearest ${nn.length} to face ${d.face[best]}</b> in the full ${space} space ` +
          `(${meta.dims[space]} dimensions), nearest first:</div><div class="thumbs">`;
for (const j of nn) out += `<span class="thumb" data-row="${j}">${face('seen', j, 1)}` +
                           `<small>${d.condition[j]}<br>${d.truth[j]}</small></span>`;
neighbours.text = out + '</div>';
neighbours.tags = [best, ...nn];
source.selected.indices = [best, ...nn];
"""
SELECT_JS = JS_COMMON + """
const rows = source.selected.indices;
if (!rows.length) { selection.text = '<i>box or lasso select points to see their mean face</i>'; return; }
if (!window._occfauSprite) {
  const url = sheet.css.match(/\\.clean\\s*\\{[^}]*url\\(([^)]*)\\)/)[1];
  const img = new Image();
  window._occfauSprite = new Promise(ok => { img.onload = () => {
    const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0); ok(g.getImageData(0, 0, img.width, img.height)); };
    img.src = url; });
}
window._occfauSprite.then(px => {
  const sum = new Float64Array(S * S * 3);
  const cols = meta.cols.clean;
  for (const i of rows) {
    const r = Math.floor(d.face[i] / cols), c = d.face[i] % cols;
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      const o = ((r * S + y) * px.width + c * S + x) * 4, t = (y * S + x) * 3;
      sum[t] += px.data[o]; sum[t + 1] += px.data[o + 1]; sum[t + 2] += px.data[o + 2];
    }
  }
  const c = document.createElement('canvas'); c.width = S; c.height = S;
  const g = c.getContext('2d'), im = g.createImageData(S, S);
  for (let p = 0; p < S * S; p++) { for (let k = 0; k < 3; k++) im.data[p * 4 + k] = sum[p * 3 + k] / rows.length;
                                    im.data[p * 4 + 3] = 255; }
  g.putImageData(im, 0, 0);
  let bars = '';
  for (let a = 0; a < aus.length; a++) {
    let n = 0, k = 0;
    for (const i of rows) { const y = d.labels[i][a]; if (y >= 0) { k++; n += y; } }
    const rate = k ? n / k : 0, all = meta.rates[a];
    bars += `<div class="bar"><span class="au">${aus[a]}</span><span class="track">` +
            `<span class="fill" style="width:${100 * rate}%"></span>` +
            `<span class="mark" style="left:${100 * all}%"></span></span> ${(100 * rate).toFixed(0)}%</div>`;
  }
  selection.text = `<div><b>${rows.length} faces selected</b>: mean clean face and AU rates ` +
    `(bar: selection, tick: all faces)</div><div class="sel"><img class="mean" src="${c.toDataURL()}">` +
    `<div>${bars}</div></div>`;
});
"""
RECOLOUR_JS = """
source.data.color = source.data['c:' + cb_obj.value];
legend.text = legends[cb_obj.value];
source.change.emit();
"""
CSS = """
.face { display:inline-block; image-rendering:pixelated; border:1px solid #ccc; margin:1px; }
.clean { background-image:url(%s); } .seen { background-image:url(%s); }
.thumbs { display:flex; flex-wrap:wrap; gap:4px; } .thumb { display:inline-flex; flex-direction:column;
  width:%dpx; font-size:10px; line-height:1.1; }
.hint { color:#666; font-size:11px; } .sel { display:flex; gap:10px; align-items:flex-start; }
.mean { width:128px; height:128px; image-rendering:pixelated; border:1px solid #ccc; }
.bar { font-size:11px; display:flex; align-items:center; gap:4px; } .au { width:40px; }
.track { position:relative; display:inline-block; width:120px; height:9px; background:#eee; }
.fill { position:absolute; left:0; top:0; bottom:0; background:#0072B2; }
.mark { position:absolute; top:-2px; bottom:-2px; width:2px; background:#000; }
"""


def page(ex) -> str:
    """The explorer of an :class:`occfau_lib.explorer.Exploration` as a standalone HTML document."""
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import (BoxSelectTool, ColumnDataSource, CustomJS, Div, HoverTool, InlineStyleSheet,
                              LassoSelectTool, Select)
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    faces, names = ex.faces, list(ex.coords)
    first = ex.coords[names[0]]
    data = {"face": faces.face.tolist(), "condition": faces.condition.tolist(), "truth": ex.truth,
            "predicted": ex.predicted, "labels": ex.labels.astype(int).tolist(),
            "subject": ex.colourings.get("subject", np.full(len(faces), "?")).tolist()}
    legends = {}
    for name, values in ex.colourings.items():
        data[f"c:{name}"], legends[name] = colour_column(values, first)
    data["color"] = data[f"c:{ex.default_colour}"]
    for name in names:
        data[f"x:{name}"], data[f"y:{name}"] = ex.coords[name][:, 0].tolist(), ex.coords[name][:, 1].tolist()
        data[f"nn:{name}"] = ex.neighbours[name].tolist()
    source = ColumnDataSource(data, name="explorer-source")
    clean = np.zeros((faces.face.max() + 1, *faces.clean.shape[1:]), np.uint8)
    clean[faces.face] = faces.clean  # one tile per face: a face under several conditions is one clean face
    cols = {"clean": int(np.ceil(np.sqrt(len(clean)))), "seen": int(np.ceil(np.sqrt(len(faces))))}
    known = ex.labels >= 0
    meta = {"aus": [f"AU{a}" for a in ex.aus], "cols": cols, "size": int(faces.clean.shape[1]), "dims": ex.dims,
            "rates": ((ex.labels == 1).sum(0) / np.maximum(known.sum(0), 1)).tolist()}
    sheet = InlineStyleSheet(css=CSS % (jpeg_sprite(clean, cols["clean"]), jpeg_sprite(faces.seen, cols["seen"]), THUMB + 4))
    info = Div(text="<i>hover a point to see its face</i>", width=300, name="explorer-info", stylesheets=[sheet])
    neighbours = Div(text="<i>click a point to list its nearest neighbours</i>", width=440,
                     name="explorer-neighbours", stylesheets=[sheet])
    selection = Div(text="<i>box or lasso select points to see their mean face</i>", width=360,
                    name="explorer-selection", stylesheets=[sheet])
    args = {"source": source, "meta": meta}
    select_cb = CustomJS(args={**args, "selection": selection, "sheet": sheet}, code=SELECT_JS)
    source.selected.js_on_change("indices", select_cb)
    plots = []
    for name in names:
        fig = figure(width=360, height=340, title=f"{name} · {ex.projection.upper()}", name=f"explorer-{name}",
                     tools="pan,wheel_zoom,reset", toolbar_location="above")
        dots = fig.scatter(f"x:{name}", f"y:{name}", source=source, color="color", size=5, alpha=0.8,
                           nonselection_alpha=0.12, selection_line_color="black", selection_alpha=1.0)
        fig.add_tools(BoxSelectTool(renderers=[dots]), LassoSelectTool(renderers=[dots]),
                      HoverTool(renderers=[dots], tooltips=None,
                                callback=CustomJS(args={**args, "info": info}, code=HOVER_JS)))
        fig.js_on_event("tap", CustomJS(args={**args, "neighbours": neighbours, "space": name, "xr": fig.x_range,
                                               "yr": fig.y_range}, code=TAP_JS))
        fig.axis.visible = False
        fig.grid.visible = False
        plots.append(fig)
    legend = Div(text=legends[ex.default_colour], width=700, name="explorer-legend")
    menu = Select(title="colour by", value=ex.default_colour, options=list(ex.colourings), width=220,
                  name="explorer-colour")
    menu.js_on_change("value", CustomJS(args={"source": source, "legend": legend, "legends": legends},
                                        code=RECOLOUR_JS))
    title = Div(text=f"<b>{html.escape(ex.title)}</b> {len(faces)} points; hover: face · click: nearest "
                     "neighbours in the full space · box/lasso: mean face (linked across views)", width=1000)
    layout = column(title, row(menu, legend), row(*plots), row(info, neighbours, selection))
    return file_html(layout, resources=INLINE, title=ex.title or "latent explorer")


def iframe(document: str, height: int = 900) -> str:
    """``document`` in an ``<iframe srcdoc>``: its scripts run in their own frame, in JupyterLab
    (trusted output) and in a static HTML page alike."""
    return (f'<iframe class="occfau-explorer" srcdoc="{html.escape(document, quote=True)}" '
            f'style="width:100%;height:{height}px;border:1px solid #ddd"></iframe>')
