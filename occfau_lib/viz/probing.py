"""Latent-space probing: probe curves, per-AU bars, survival heat maps, UMAP views (notebook 02)."""
from __future__ import annotations

import numpy as np

from ..aus import au_labels
from ..metrics import au_row
from ._base import _annotated_heatmap, _colour, _figure


#: Reference lines told apart by colour AND dash pattern, each also named at its right end.
REFERENCE_STYLES = (("black", (0, (1, 1.5))), ("#CC79A7", (0, (6, 2))), ("#009E73", (0, (5, 1.5, 1, 1.5))),
                    ("0.45", (0, (2, 3))))


def _reference_lines(ax, references: dict | None) -> None:
    """A horizontal line per ``references`` entry (a fraction, drawn in percent), named at its right end."""
    for j, ((name, value), (colour, dashes)) in enumerate(zip((references or {}).items(), REFERENCE_STYLES * 3)):
        ax.axhline(100 * value, color=colour, ls=dashes, lw=1.4, label=name)
        ax.annotate(name, (1.0 - 0.24 * (j % 4), 100 * value), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                    textcoords="offset points", ha="right", va="bottom", fontsize=6.5, color=colour)


def probe_by_layer(results: dict[str, list[float]], references: dict[str, float] | None = None, ax=None,
                   ylabel: str = "average F1 (%)"):
    """Probe score per encoder layer (layer 0 = the embeddings), one line per feature space, one
    horizontal line per ``references`` entry; fractions drawn in percent. Notebook 02."""
    if not results:
        raise ValueError("probe_by_layer: no results to draw")
    if ax is None:
        ax = _figure(6.4, 3.4).add_subplot()
    n_layers = max(len(v) for v in results.values())
    for i, (name, values) in enumerate(results.items()):
        values = 100 * np.asarray(values, np.float64)
        style = "--" if "random" in name.lower() else "-"
        ax.plot(np.arange(len(values)), values, style, marker="o", ms=4, color=_colour(i), label=name)
    _reference_lines(ax, references)
    ax.set_xticks(range(n_layers), ["emb"] + [str(k) for k in range(1, n_layers)])
    ax.set(xlabel="encoder layer (emb = patch embeddings, before block 1)", ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def per_au_bars(rows: dict[str, dict[int, float]], aus, ax=None, ylabel: str = "F1 (%)", chance=None):
    """Grouped per-AU bars, one colour per row of ``rows`` ``{name: {au: value}}`` (nan: no bar), and
    ``chance`` ``{au: value}`` as a dotted tick over each group. Notebooks 02-03."""
    aus = tuple(aus)
    if not rows:
        raise ValueError("per_au_bars: no rows to draw")
    if ax is None:
        ax = _figure(max(5.0, 0.55 * len(aus) + 2.5), 3.2).add_subplot()
    width = 0.8 / len(rows)
    x = np.arange(len(aus))
    for i, (name, scores) in enumerate(rows.items()):
        values = 100 * np.array(au_row(scores, aus))  # (n_au,), nan where the row has no score
        ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(values), width, color=_colour(i), label=name)
    if chance is not None:
        floor = 100 * np.array(au_row(chance, aus))  # (n_au,)
        ax.hlines(floor, x - 0.45, x + 0.45, colors="black", linestyles=":", lw=1.5, label="always present")
    ax.set_xticks(x, au_labels(aus), fontsize=8)
    ax.set(ylabel=ylabel, ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def survival_heatmap(matrix, conditions, aus, ax=None, relative: bool = True, title: str | None = None):
    """Heat map per hiding condition (rows) and AU (columns): with ``relative`` the fraction of clean
    F1 retained (:func:`probe.retained`; above 1 coloured as 1), else F1. Notebook 02."""
    return _annotated_heatmap(matrix, conditions, aus, "cividis" if relative else "viridis", (0, 1), ax,
                              title or ("fraction of clean F1 retained" if relative else "F1"))


def gain_heatmap(matrix, conditions, aus, ax=None, title: str = "F1 gain (points)", digits: int = 0):
    """Heat map of a signed difference per condition and AU, e.g. student minus teacher F1 in
    points: blue = gain, red = loss, white = none. Notebook 04."""
    matrix = np.asarray(matrix, np.float64)
    bound = max(1e-9, float(np.nanmax(np.abs(matrix)))) if np.isfinite(matrix).any() else 1.0
    return _annotated_heatmap(matrix, conditions, aus, "RdBu", (-bound, bound), ax, title, digits=digits)


def survival_difference(first, second, conditions, aus, names=("MAE patch tokens", "raw pixels"), ax=None):
    """The fraction of clean F1 ``first`` retains minus that ``second`` retains, per condition and AU
    (blue: ``names[0]`` keeps more). Notebook 02."""
    diff = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    return gain_heatmap(diff, conditions, aus, ax, f"fraction of clean F1 retained: {names[0]} minus {names[1]}",
                        digits=2)


def umap_scatter(emb, values, title: str = "", categorical: bool | None = None, ax=None, max_legend: int = 12):
    """A 2-D embedding (M, 2) coloured by ``values`` (M,): categories (-1 grey, "unknown") with a
    legend of up to ``max_legend``, or continuous values (float, unless ``categorical``) with a
    colour bar. Notebook 02."""
    emb, values = np.asarray(emb), np.asarray(values)
    if emb.ndim != 2 or emb.shape[1] != 2 or len(values) != len(emb):
        raise ValueError(f"umap_scatter: need emb (M, 2) and values (M,); got {emb.shape} and {values.shape}")
    if categorical is None:
        categorical = values.dtype.kind not in "fc"
    if ax is None:
        ax = _figure(5.6, 4.4).add_subplot()
    if categorical:
        cats = np.unique(values)
        from .latent_explorer import separating_colours  # many categories: neighbouring islands differ

        table = separating_colours(values.astype(str), emb)
        for i, cat in enumerate(cats):
            sel = values == cat
            unknown = str(cat) == "-1"
            color = "0.75" if unknown else _colour(i) if len(cats) <= 8 else table[str(cat)]
            ax.scatter(emb[sel, 0], emb[sel, 1], s=5, color=color, label="unknown" if unknown else str(cat),
                       linewidths=0, alpha=0.8)
        if len(cats) <= max_legend:
            ax.legend(fontsize=7, markerscale=2.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            title = f"{title} ({len(cats)} categories)"
    else:
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=values.astype(np.float64), s=5, cmap="coolwarm", linewidths=0)
        ax.figure.colorbar(sc, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set(xlabel="UMAP 1", ylabel="UMAP 2")
    return ax.figure


def umap_view(emb, colourings: dict, colour_by: str):
    """:func:`umap_scatter` coloured by ``colourings[colour_by]``: notebook 02's drop-down widget."""
    if colour_by not in colourings:
        raise ValueError(f"umap_view: no colouring {colour_by!r}; choose one of {list(colourings)}")
    return umap_scatter(emb, colourings[colour_by], title=f"coloured by {colour_by}")


def hiding_curves(curves: dict[str, list[float]], hidden_fractions, references: dict[str, float] | None = None,
                  ax=None, ylabel: str = "average F1 (%)"):
    """Score against the fraction of patches hidden (0 = clean), one line per feature space, one
    horizontal line per ``references`` entry; fractions drawn in percent. Notebook 02."""
    fractions = 100 * np.asarray(hidden_fractions, np.float64)
    if not curves:
        raise ValueError("hiding_curves: no curves to draw")
    if ax is None:
        ax = _figure(5.8, 3.2).add_subplot()
    for i, (name, values) in enumerate(curves.items()):
        if len(values) != len(fractions):
            raise ValueError(f"hiding_curves: {name!r} has {len(values)} values for {len(fractions)} fractions")
        ax.plot(fractions, 100 * np.asarray(values, np.float64), marker="o", ms=4, color=_colour(i), label=name)
    _reference_lines(ax, references)
    ax.set_xticks(fractions)
    ax.set(xlabel="patches hidden at random (%)", ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def regime_curves(regime: dict, chance: float | None = None, ax=None):
    """Notebook 02's data-regime study (its record, from ``benchmarks/bench_regime.py``): the pretrained
    MAE's probe F1 minus the random encoder's against the corpus size, one line per probe and step budget, the
    spread shaded. Above zero, pretraining taught the latent something a random encoder lacks."""
    if ax is None:
        ax = _figure(5.4, 3.2).add_subplot()
    colours = {"linear": "#0072B2", "mlp": "#E69F00"}
    ax.axhline(0, color="black", lw=1, label="random encoder (zero)")
    corpora = sorted({r["corpus"] for r in regime["runs"]})
    for probe, colour in colours.items():
        gains = [r[probe] - regime["random"][probe] for r in regime["runs"]]
        ax.axhspan(min(gains), max(gains), color=colour, alpha=0.12, lw=0)
        for steps, style in zip(sorted({r["steps"] for r in regime["runs"]}), ("-o", "-s", "-^", "-v")):
            runs = sorted((r for r in regime["runs"] if r["steps"] == steps), key=lambda r: r["corpus"])
            ax.plot([r["corpus"] for r in runs], [r[probe] - regime["random"][probe] for r in runs], style,
                    color=colour, ms=4, label=f"{probe} probe, {steps} steps")
        if chance is not None:  # far below the gains: drawn, kept out of view, named in the corner
            ax.plot(corpora[:1] + corpora[-1:], [chance - regime["random"][probe]] * 2, ls=":", color=colour, lw=1,
                    label=f"always present, vs {probe} on random")
    gains = [r[p] - regime["random"][p] for r in regime["runs"] for p in colours]
    ax.set_ylim(min(0, *gains) - 3, max(0, *gains) + 3)
    if chance is not None:
        ax.text(0.01, 0.02, "always present: " + ", ".join(f"{chance - regime['random'][p]:+.0f} ({p})" for p in colours)
                + " points, below the view", transform=ax.transAxes, fontsize=6.5, color="0.35")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("distinct faces in the pretraining corpus")
    ax.set_ylabel("F1 gain over the random encoder (points)")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def budget_curve(record: dict, ax=None):
    """The pretraining-budget curve (``benchmarks/results/mae_budget_<profile>.json``): each snapshot's gain
    over the random encoder, paired by seed, against the MAE's pretraining steps: the student's clean F1, its
    mean F1 under the four large blocks, and the clean linear probe on the same block; bars span ± one
    seed std. Notebook 02."""
    runs = sorted((r for name, r in record["recipes"].items() if name != "random"), key=lambda r: r["steps"])
    if not runs:
        raise ValueError("budget_curve: the record holds no pretrained snapshot")
    if ax is None:
        ax = _figure(5.4, 3.2).add_subplot()
    steps = [0] + [r["steps"] for r in runs]
    ax.axhline(0, color="black", lw=1)
    for field, label, colour, marker, dy in (("blocks", "student, large blocks", "#D55E00", "o", 5),
                                             ("clean", "student, clean", "#0072B2", "s", -5),
                                             ("probe", "linear probe, clean", "0.45", "^", 0)):
        gain = [0.0] + [r[f"{field}_gain"] for r in runs]
        std = [0.0] + [r[f"{field}_gain_std"] for r in runs]
        ax.errorbar(steps, gain, yerr=std, color=colour, marker=marker, ms=4, capsize=2, label=label)
        ax.annotate(f"{gain[-1]:+.1f}", (steps[-1], gain[-1]), xytext=(4, dy), textcoords="offset points",
                    va="center", fontsize=7, color=colour)
    ax.set_xlabel("MAE pretraining steps (batches of 64 faces; 0 = random encoder)")
    ax.set_ylabel("F1 gain over the random encoder (points)")
    ax.set_xlim(-500, steps[-1] * 1.1)
    ax.legend(fontsize=7, loc="upper left")
    return ax.figure
