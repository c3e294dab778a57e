"""The student: data flow, method bars, feature spaces, pair heat maps (notebook 04)."""
from __future__ import annotations

import numpy as np

from .. import record as ledger
from ..aus import au_labels
from ._base import _figure


def student_flow():
    """The method as a diagram: teacher on the clean face above, student on the occluded face
    below, the two distillation losses between them. Notebook 04."""
    fig = _figure(10.5, 3.6)
    fig.set_layout_engine("none")  # one hand-placed Axes: constrained layout has nothing to lay out (and warns)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, 10.5), ylim=(0, 3.6))
    ax.axis("off")

    def box(x, y, text, color):
        ax.text(x, y, text, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": color, "edgecolor": "0.3"})

    def arrow(x0, y0, x1, y1, text="", style="-|>"):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": style, "color": "0.3"})
        if text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, text, ha="center", fontsize=7, color="0.25")

    top, bottom = 2.9, 0.7
    box(0.8, top, "clean face", "white")
    box(3.0, top, "teacher backbone\n(CNN tokens)", "#dbe9f6")
    box(5.6, top, "ME-GraphAU head\nnodes (N, C), edges (N, N, C)", "#dbe9f6")
    box(8.9, top, "teacher classifiers\nprototypes + edge classifier", "#dbe9f6")
    box(0.8, bottom, "occluded face\n+ visible patches", "white")
    box(3.0, bottom, "frozen MAE encoder\nvisible patches only", "#e8e8e8")
    box(5.6, bottom, "mapping network\nlatent grid -> nodes, edges", "#fde2c8")
    box(8.9, bottom, "the same classifiers\n(frozen copies) -> AUs", "#fde2c8")
    for y in (top, bottom):
        arrow(1.5, y, 2.1, y)
        arrow(3.9, y, 4.3, y, "tokens")
        arrow(6.95, y, 7.65, y)
    ax.annotate("", (5.6, bottom + 0.45), (5.6, top - 0.45),
                arrowprops={"arrowstyle": "-|>", "color": "C3", "linestyle": "--"})
    ax.text(5.75, 1.8, "node KD + edge KD\n(MSE to the teacher's features)", fontsize=8, color="C3", va="center")
    ax.text(0.8, 1.8, "same face,\nsame labels", ha="center", fontsize=7, color="0.4")
    return fig


#: The method of notebook 04, its ablations (the controls), and the rows that are floors, by name.
METHOD, CONTROL_PREFIX = "student, node + edge KD", "student, "
FLOORS = ("chance: always present", "pixels + logistic regression")


def method_dots(results: dict[str, dict[str, dict]], conditions=None, metric: str = "avg_f1", ax=None,
                chance: float | None = None, errors: dict[str, dict[str, float]] | None = None):
    """The method comparison, one row per test condition, from ``{method: evaluate_conditions(...)}``:
    the method a large dark dot, its ablations small light markers, the strongest other baseline an
    orange diamond named at the right, other baselines grey dots, the floors a grey band; ``errors``
    ``{method: {condition: std}}`` as whiskers. Notebook 04."""
    methods = list(results)
    conditions = list(conditions or next(iter(results.values())))
    value = lambda m, c: 100 * results[m][c][metric]  # noqa: E731
    spread = lambda m, c: None if errors is None or m not in errors else 100 * errors[m][c]  # noqa: E731
    method = METHOD if METHOD in results else methods[-1]
    controls = [m for m in methods if m.startswith(CONTROL_PREFIX) and m != method]
    floors = [m for m in methods if m in FLOORS]
    baselines = [m for m in methods if m not in (method, *controls, *floors)]
    if ax is None:
        ax = _figure(7.8, 0.34 * len(conditions) + 1.6).add_subplot()
    y = np.arange(len(conditions))[::-1]  # the first condition on top
    floor = [max([value(m, c) for m in floors] + [100 * chance if chance is not None else 0]) for c in conditions]
    ax.barh(y, floor, height=0.8, color="0.92", label="floors: " + ", ".join(
        [*(f for f in floors if f != FLOORS[0]), "always present"]) if floors or chance is not None else None)
    if chance is not None:
        ax.axvline(100 * chance, color="0.45", ls=":", lw=1.2, label="always present")
    for m in baselines:
        ax.plot([value(m, c) for c in conditions], y, "o", color="0.7", ms=3.5, zorder=2,
                label="other baselines" if m == baselines[0] else None)
    if baselines:
        best = [max(baselines, key=lambda m: value(m, c)) for c in conditions]
        ax.errorbar([value(m, c) for m, c in zip(best, conditions)], y, fmt="D", color="#E69F00", ms=5, zorder=3,
                    xerr=None if errors is None else [spread(m, c) or 0 for m, c in zip(best, conditions)],
                    elinewidth=0.8, label="strongest baseline (named right)")
        for yi, m in zip(y, best):
            ax.annotate(m, (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=6.5, color="#9a6700")
    for m, marker in zip(controls, ("v", "^", "s", "P")):
        ax.plot([value(m, c) for c in conditions], y, marker, color="#56B4E9", ms=4.5, mfc="none", zorder=3,
                label=m.replace(CONTROL_PREFIX, "control: "))
    ax.errorbar([value(method, c) for c in conditions], y, fmt="o", color="#0072B2", ms=7, zorder=4,
                xerr=None if errors is None else [spread(method, c) or 0 for c in conditions], elinewidth=1.2,
                label=f"the method: {method}")
    ax.set_yticks(y, conditions, fontsize=8)
    ax.set_xlabel({"avg_f1": "average F1 (%)", "avg_auc": "average AUC (%)"}.get(metric, metric))
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.55 / (0.34 * len(conditions) + 0.6)), ncol=2,
              frameon=False)
    return ax.figure


def feature_spaces(embeddings: dict[str, np.ndarray], present, occluded, title: str = ""):
    """2-D embeddings (M, 2) of the same faces in several feature spaces side by side: colour = AU
    present / absent / unknown, marker = clean (o) or occluded (x). Notebook 04's UMAP widget."""
    present, occluded = np.asarray(present), np.asarray(occluded, bool)
    fig = _figure(4.0 * len(embeddings) + 1.2, 3.9)
    axes = fig.subplots(1, len(embeddings))
    axes = np.atleast_1d(axes)
    colours = {1: "C3", 0: "C0", -1: "0.75"}
    for ax, (name, emb) in zip(axes, embeddings.items()):
        emb = np.asarray(emb)
        if emb.shape != (len(present), 2):
            raise ValueError(f"feature_spaces: {name!r} embedding is {emb.shape}, expected ({len(present)}, 2)")
        for value, colour in colours.items():
            for occ, marker in ((False, "o"), (True, "x")):
                sel = (present == value) & (occluded == occ)
                if sel.any():
                    label = f"{'present' if value == 1 else 'absent' if value == 0 else 'unknown'}, " \
                            f"{'occluded' if occ else 'clean'}"
                    ax.scatter(emb[sel, 0], emb[sel, 1], s=7 if occ else 5, marker=marker, color=colour,
                               linewidths=0.6 if occ else 0, alpha=0.7, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(fontsize=7, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    return fig


def pair_heatmaps(matrices: dict[str, np.ndarray], aus, vmax: float | None = None):
    """(N, N) AU-pair matrices side by side on one scale from 0 to ``vmax`` (default: their maximum;
    docs/decisions.md, "Smaller choices"), e.g. the rate of "both present" and the teacher's and
    student's predictions of it. Notebook 04."""
    aus = tuple(aus)
    if vmax is None:
        vmax = max(float(np.nanmax(np.asarray(m, np.float64))) for m in matrices.values()) or 1.0
    fig = _figure(3.6 * len(matrices) + 0.8, 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (name, m) in zip(axes, matrices.items()):
        m = np.asarray(m, np.float64)
        if m.shape != (len(aus), len(aus)):
            raise ValueError(f"pair_heatmaps: {name!r} is {m.shape}, expected ({len(aus)}, {len(aus)})")
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=vmax)
        ax.set_xticks(range(len(aus)), au_labels(aus), fontsize=6, rotation=90)
        ax.set_yticks(range(len(aus)), au_labels(aus), fontsize=6)
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig


def record_dots(record: dict, conditions=None, metric: str = "f1", ax=None):
    """A claims record as :func:`method_dots` with ± :func:`record.cell_std` whiskers: notebook 04
    and the README figure."""
    key = f"avg_{metric}"
    means = {m: {c: {key: cell[metric + "_mean"] / 100} for c, cell in rows.items()}
             for m, rows in record["methods"].items()}
    errors = {m: {c: np.nan_to_num(ledger.cell_std(record, cell, metric)) / 100 for c, cell in rows.items()}
              for m, rows in record["methods"].items()}
    chance = record["chance_f1"] / 100 if metric == "f1" else None
    fig = method_dots(means, conditions, key, ax, chance, errors)
    (ax or fig.axes[0]).set_title(f"{record['profile']} profile, folds {record['folds']}, seeds {record['seeds']}: "
                                  f"mean ± {ledger.spread_name(record)}", fontsize=9)
    return fig
