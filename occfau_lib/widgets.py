"""The notebooks' interactive explorers: ipywidgets controls wired to a pure ``viz`` function.

An :class:`Explorer` lays out named controls in titled columns, calls a plotting function with
their values and shows the Figure as a PNG, redrawn when a control is released. Unlike
``ipywidgets.interact`` only the arguments meant to move get a control. Headless too: set a
control's ``value`` and ``explorer.image.value`` holds the new PNG.
"""
from __future__ import annotations

import html
import io

import ipywidgets as W

from . import occlusion, viz
from .aus import ALL_AUS, AUS

_STYLE = {"description_width": "64px"}


def slider(description: str, lo, hi, step, value, tip: str = ""):
    """An Int- or FloatSlider (ints when every bound is an int) that reports on release."""
    cls = W.IntSlider if all(isinstance(v, int) for v in (lo, hi, step, value)) else W.FloatSlider
    return cls(value=value, min=lo, max=hi, step=step, description=description, tooltip=tip or description,
               continuous_update=False, style=_STYLE, layout=W.Layout(width="280px"))


def choice(description: str, options, value=None, tip: str = ""):
    """A Dropdown; ``options`` a list of values or of (label, value) pairs."""
    options = list(options)
    first = options[0][1] if isinstance(options[0], tuple) else options[0]
    return W.Dropdown(options=options, value=first if value is None else value, description=description,
                      tooltip=tip or description, style=_STYLE, layout=W.Layout(width="280px"))


class Explorer(W.VBox):
    """``render(**control values, **fixed)`` drawn below its controls, redrawn when one changes.
    ``groups``: ``{title: {argument: widget}}``, one column each or stacked as ``columns`` says;
    ``message`` shows the error of a failed render (the previous figure stays)."""

    def __init__(self, render, groups: dict[str, dict[str, W.ValueWidget]], fixed: dict | None = None,
                 columns: list[list[str]] | None = None, dpi: int = 80):
        self._render, self._fixed, self._dpi = render, dict(fixed or {}), dpi
        self.controls = {name: w for group in groups.values() for name, w in group.items()}
        boxes = {title: [W.HTML(f"<b>{html.escape(title)}</b>"), *group.values()] for title, group in groups.items()}
        columns = [W.VBox([w for title in titles for w in boxes[title]]) for titles in columns or [[t] for t in groups]]
        self.image = W.Image(format="png", layout=W.Layout(align_self="flex-start"))  # natural size, not stretched
        self.message = W.HTML()
        controls = W.HBox(columns, layout=W.Layout(flex_flow="row wrap", grid_gap="0px 16px"))
        super().__init__([controls, self.message, self.image])
        for w in self.controls.values():
            w.observe(self.redraw, names="value")
        self.redraw()

    def arguments(self) -> dict:
        """The keyword arguments the next render gets."""
        return {**{name: w.value for name, w in self.controls.items()}, **self._fixed}

    def redraw(self, change=None) -> None:
        try:
            fig = self._render(**self.arguments())
        except Exception as e:  # noqa: BLE001 -- shown to the learner instead of a silent dead widget
            self.message.value = f"<span style='color:#b00020'>{type(e).__name__}: {html.escape(str(e))}</span>"
            return
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self._dpi, facecolor="white")  # readable on dark themes too
        self.image.value, self.message.value = buf.getvalue(), ""


def face_explorer(size: int = 128) -> Explorer:
    """Notebook 00: :func:`viz.face_explorer`: upper- and lower-face AU sliders, identity, pose, light."""
    au = {f"au{a}": slider(f"AU{a}", 0.0, 5.0, 0.5, 0.0, f"AU{a} {AUS[a].name} (intensity 0-5)") for a in ALL_AUS}
    groups = {
        "upper face": {k: w for k, w in au.items() if int(k[2:]) < 9},
        "lower face": {k: w for k, w in au.items() if int(k[2:]) >= 9},
        "identity, head pose": {
            "identity_seed": slider("identity", 0, 30, 1, 0, "0: the average face; k > 0: random identity k"),
            "roll": slider("roll", -20.0, 20.0, 1.0, 0.0, "head roll (degrees)"),
            "yaw": slider("yaw", -1.0, 1.0, 0.1, 0.0, "head turn left/right"),
            "pitch": slider("pitch", -1.0, 1.0, 0.1, 0.0, "head tilt up/down")},
        "light": {
            "light_x": slider("from x", -0.8, 0.8, 0.1, -0.3, "light direction, left/right"),
            "light_y": slider("from y", -0.8, 0.8, 0.1, -0.4, "light direction, up/down"),
            "light_strength": slider("strength", 0.0, 1.0, 0.1, 0.6, "how strongly the light shades the face")},
    }
    columns = [["upper face"], ["lower face"], ["identity, head pose", "light"]]
    return Explorer(viz.face_explorer, groups, fixed={"size": size}, columns=columns)


def occluder_explorer(predict, images, labels, aus, occluders=None) -> Explorer:
    """Notebook 03: :func:`viz.occluder_explorer` on ``images[face]``; the block sliders are enabled
    for ``occluder="block"`` only, the seed for the others."""
    occluders = occluders or ["block", *occlusion.REALISTIC, *occlusion.REGION_BLOCKS, "patches:0.5"]

    def render(occluder, face, cx, cy, side, seed):
        return viz.occluder_explorer(predict, images[face], labels[face], aus, occluder, cx, cy, side, seed)

    groups = {
        "occluder": {"occluder": choice("occluder", occluders), "face": slider("face", 0, len(images) - 1, 1, 0),
                     "seed": slider("seed", 0, 9, 1, 0, "draws the random occluders (patches, hand ...)")},
        "block": {"cx": slider("centre x", -0.8, 0.8, 0.05, 0.0, "x right, the image spans -1..1"),
                  "cy": slider("centre y", -0.8, 0.9, 0.05, 0.45, "y down, the image spans -1..1"),
                  "side": slider("side", 0.05, 0.6, 0.05, 0.3, "side of the square, fraction of the image")},
    }
    box = Explorer(render, groups)

    def enable(change=None):
        block = box.controls["occluder"].value == "block"
        for name in ("cx", "cy", "side"):
            box.controls[name].disabled = not block
        box.controls["seed"].disabled = block

    box.controls["occluder"].observe(enable, names="value")
    enable()
    return box
