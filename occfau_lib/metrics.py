"""AU detection metrics and results tables, computed the way the BP4D/DISFA literature does.

Used by notebooks 00-05 (and the benchmarks) to score every model the same way:

* **per-AU F1** of the positive class, with probabilities thresholded at 0.5 and counts accumulated
  over the *whole* test fold (not averaged over batches or subjects);
* **per-AU ROC AUC**, threshold-free, as a complement to F1;
* **3-fold protocol**: each AU's score is averaged over the 3 subject-exclusive folds, and the
  reported "Avg" is the mean of those per-AU means over AUs.

Labels are arrays of shape ``(N, n_au)`` with 1 = present, 0 = absent and -1 = unknown (BP4D
codes "unknown" as 9; dataset loaders map it to -1). Unknown entries are dropped from that AU's
metric only (a mask per column): treating them as negatives would invent absent labels and bias
both F1 and AUC. Arrays may be numpy arrays or torch tensors; columns follow a tuple of AU numbers
(see :mod:`occfau_lib.aus`).

The counting itself is scikit-learn's (``f1_score``, ``roc_auc_score``); this module only adds the
masking, the fold protocol and the table formatting.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from .aus import au_labels

#: Printed in Markdown tables for a metric that is undefined (nan).
MISSING = "–"


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check(labels: Any, probs: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert and validate ``labels`` (N, n_au) in {-1, 0, 1} and ``probs`` of the same shape."""
    y = to_numpy(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must have shape (N, n_au); got shape {y.shape}")
    if not np.isin(y, (-1, 0, 1)).all():
        bad = sorted(set(np.unique(y[~np.isin(y, (-1, 0, 1))]).tolist()))[:5]
        raise ValueError(
            f"labels must be 1 (present), 0 (absent) or -1 (unknown); found {bad} "
            "(map BP4D's unknown code 9 to -1 when loading)"
        )
    y = y.astype(np.int64)
    if probs is None:
        return y, None
    p = to_numpy(probs).astype(np.float64)
    if p.shape != y.shape:
        raise ValueError(f"probs shape {p.shape} does not match labels shape {y.shape}")
    return y, p


def _nanmean(values: Any) -> float:
    """Mean ignoring nan; nan (without numpy's warning) when every value is nan or there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else math.nan


def f1_per_au(labels: Any, probs: Any, threshold: float = 0.5) -> np.ndarray:
    """F1 of the positive class for each AU column, over all kept (non -1) rows.

    ``probs`` are probabilities (predicted present where ``probs >= threshold``) or 0/1
    predictions. An AU with no positive labels and no positive predictions among its kept rows
    scores 0.0 (scikit-learn's ``zero_division=0``, as the literature reports it); an AU whose
    entries are all unknown has no score: nan.
    """
    y, p = _check(labels, probs)  # (N, n_au) each
    pred = (p >= threshold).astype(np.int64)  # (N, n_au)
    out = np.full(y.shape[1], np.nan)  # (n_au,)
    for j in range(y.shape[1]):
        keep = y[:, j] >= 0  # (N,) drop unknowns of this AU only
        if keep.any():
            out[j] = f1_score(y[keep, j], pred[keep, j], labels=[0, 1], pos_label=1,
                              average="binary", zero_division=0)
    return out


def auc_per_au(labels: Any, probs: Any) -> np.ndarray:
    """ROC AUC for each AU column over its kept (non -1) rows; nan where only one class remains.

    AUC ranks the scores, so pass probabilities or logits (0/1 predictions give a coarse AUC).
    """
    y, p = _check(labels, probs)  # (N, n_au) each
    out = np.full(y.shape[1], np.nan)  # (n_au,)
    for j in range(y.shape[1]):
        keep = y[:, j] >= 0  # (N,)
        yj = y[keep, j]
        if yj.size and yj.min() != yj.max():  # both classes present
            out[j] = roc_auc_score(yj, p[keep, j])
    return out


def average_f1(labels: Any, probs: Any, threshold: float = 0.5) -> float:
    """Mean per-AU F1 over AUs, skipping AUs without a score (all entries unknown)."""
    return _nanmean(f1_per_au(labels, probs, threshold))


def evaluate(labels: Any, probs: Any, aus: tuple[int, ...], threshold: float = 0.5) -> dict:
    """Score one test fold: per-AU F1 and AUC keyed by AU number, their averages and counts.

    Returns plain Python types so the result can be written with ``json.dump`` (nan is written
    as ``NaN``; JSON turns the int AU keys into strings, which :func:`aggregate_folds` accepts)::

        {"f1": {au: float}, "auc": {au: float}, "avg_f1": float, "avg_auc": float,
         "n": int (rows), "n_unknown": {au: int (rows labelled -1)}}
    """
    y, p = _check(labels, probs)  # (N, n_au) each
    aus = tuple(int(a) for a in aus)
    if len(aus) != y.shape[1]:
        raise ValueError(f"{len(aus)} AUs given for {y.shape[1]} label columns")
    f1 = f1_per_au(y, p, threshold)  # (n_au,)
    auc = auc_per_au(y, p)  # (n_au,)
    return {
        "f1": {a: float(v) for a, v in zip(aus, f1)},
        "auc": {a: float(v) for a, v in zip(aus, auc)},
        "avg_f1": _nanmean(f1),
        "avg_auc": _nanmean(auc),
        "n": int(y.shape[0]),
        "n_unknown": {a: int(c) for a, c in zip(aus, (y < 0).sum(axis=0))},
    }


def _by_au(scores: dict) -> dict[int, float]:
    """``{au: value}`` with int keys (JSON round trips turn them into strings)."""
    return {int(k): float(v) for k, v in scores.items()}


def aggregate_folds(fold_results: list[dict]) -> dict:
    """Combine :func:`evaluate` results of the folds into the numbers a paper reports.

    Per AU: mean and standard deviation over folds (population std, ``ddof=0``; folds where the
    AU has no score are skipped). ``avg_f1``/``avg_auc`` are the means over AUs of those per-AU
    means, which is how "Avg" is computed in the BP4D/DISFA tables::

        {"f1": {au: mean}, "auc": {au: mean}, "f1_std": {au: std}, "auc_std": {au: std},
         "avg_f1": float, "avg_auc": float, "n_folds": int}
    """
    if not fold_results:
        raise ValueError("aggregate_folds needs at least one fold result")
    out: dict[str, Any] = {}
    for metric in ("f1", "auc"):
        folds = [_by_au(r[metric]) for r in fold_results]
        aus = list(folds[0])
        if any(set(f) != set(aus) for f in folds):
            raise ValueError(f"folds disagree on the AUs scored by {metric!r}: {[sorted(f) for f in folds]}")
        mean, std = {}, {}
        for a in aus:
            v = np.array([f[a] for f in folds])  # (n_folds,)
            v = v[~np.isnan(v)]
            mean[a] = float(v.mean()) if v.size else math.nan
            std[a] = float(v.std()) if v.size else math.nan
        out[metric], out[f"{metric}_std"] = mean, std
        out[f"avg_{metric}"] = _nanmean(list(mean.values()))
    out["n_folds"] = len(fold_results)
    return out


def au_row(row: dict, aus: tuple[int, ...]) -> list[float]:
    """Values of one ``{au: value}`` row in AU order (string keys of a JSON round trip accepted); an
    AU missing from the row is nan."""
    scores = _by_au(row)
    return [scores.get(int(a), math.nan) for a in aus]


def format_table(rows: dict[str, dict[int, float]], aus: tuple[int, ...], digits: int = 1,
                 scale: float = 100, average: bool = True) -> str:
    """GitHub-Markdown table: one row per method/condition, one column per AU, then ``Avg``.

    Values are multiplied by ``scale`` (100: percentages) and printed with ``digits`` decimals;
    nan (or an AU missing from a row) prints as ``–``. ``Avg`` is the mean over the listed AUs,
    ignoring nan. No trailing newline.
    """
    header = ["Method", *au_labels(tuple(aus))] + (["Avg"] if average else [])
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]

    def fmt(v: float) -> str:
        return MISSING if math.isnan(v) else f"{v * scale:.{digits}f}"

    for name, row in rows.items():
        vals = au_row(row, aus)
        if average:
            vals.append(_nanmean(vals))
        lines.append("| " + " | ".join([str(name), *map(fmt, vals)]) + " |")
    return "\n".join(lines)


def format_csv(rows: dict[str, dict[int, float]], aus: tuple[int, ...], digits: int = 4,
               average: bool = True) -> str:
    """The same table as CSV text, for machines: columns ``method, AU1, ..., Avg``.

    Values stay unscaled (fractions in [0, 1], not percentages) with ``digits`` decimals, and
    nan is written as ``nan`` so ``float()`` and pandas read it back. Lines end with ``\\n``.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *au_labels(tuple(aus))] + (["Avg"] if average else []))
    for name, row in rows.items():
        vals = au_row(row, aus)
        if average:
            vals.append(_nanmean(vals))
        w.writerow([name, *("nan" if math.isnan(v) else f"{v:.{digits}f}" for v in vals)])
    return buf.getvalue()


def conditions_table(results: dict[str, dict[str, dict]], metric: str = "avg_f1", fmt: str = "md",
                     digits: int = 1) -> str:
    """Methods x test conditions, from ``{method: evaluate_conditions(...)}``: one row per
    method, one column per condition, the value ``metric`` of each aggregate ("avg_f1",
    "avg_auc"). ``fmt="md"``: Markdown in percent with ``digits`` decimals; ``fmt="csv"``:
    fractions with 4 decimals (nan as ``nan``)."""
    if fmt not in ("md", "csv"):
        raise ValueError(f"fmt must be 'md' or 'csv'; got {fmt!r}")
    conditions = list(next(iter(results.values())))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", *conditions])
        for name, row in results.items():
            w.writerow([name, *(f"{row[c][metric]:.4f}" for c in conditions)])
        return buf.getvalue()
    lines = ["| Method | " + " | ".join(conditions) + " |", "|:---|" + "---:|" * len(conditions)]
    for name, row in results.items():
        vals = [MISSING if math.isnan(row[c][metric]) else f"{100 * row[c][metric]:.{digits}f}" for c in conditions]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def cooccurrence(labels, kind: str = "conditional") -> np.ndarray:
    """AU co-occurrence matrix (n_au, n_au) from labels (N, n_au) of 1/0/-1.

    Each pair (i, j) uses only the rows where both labels are known (-1 is masked pairwise).
    ``kind="conditional"``: entry [i, j] = P(AU j present | AU i present), nan if AU i is never
    present. ``kind="correlation"``: the phi coefficient (Pearson correlation of the 0/1
    labels), nan where either AU is constant. Notebook 00 (drawn by ``viz.cooccurrence_heatmap``).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"cooccurrence: labels must be (N, n_au), got shape {labels.shape}")
    known = (labels >= 0).astype(np.float64)
    present = (labels == 1).astype(np.float64)
    both = present.T @ present  # [i, j]: rows where i and j are present
    i_present_j_known = present.T @ known
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "conditional":
            return both / i_present_j_known
        if kind == "correlation":
            n = known.T @ known  # rows where both are known
            mean_i = i_present_j_known / n
            mean_j = mean_i.T
            cov = both / n - mean_i * mean_j
            return cov / np.sqrt(mean_i * (1 - mean_i) * mean_j * (1 - mean_j))
    raise ValueError(f"cooccurrence: kind must be 'conditional' or 'correlation', got {kind!r}")


def top_pairs(matrix, aus, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` strongest AU pairs of an (N, N) pair matrix, largest first, as ``("AU6+AU12", value)``:
    the brightest off-diagonal cells of a pair heat map, in numbers. A pair's value is the mean of
    its two cells ([i, j] and [j, i]: the teacher's and the student's edges are directed); the
    diagonal (an AU with itself) and nan cells are left out. Notebook 04."""
    m = np.asarray(matrix, np.float64)
    aus = tuple(aus)
    if m.shape != (len(aus), len(aus)):
        raise ValueError(f"top_pairs: matrix is {m.shape}, expected ({len(aus)}, {len(aus)}) for {len(aus)} AUs")
    i, j = np.triu_indices(len(aus), k=1)  # each pair once, above the diagonal
    values = (m[i, j] + m[j, i]) / 2  # (N (N - 1) / 2,)
    known = np.flatnonzero(~np.isnan(values))
    order = known[np.argsort(-values[known], kind="stable")]  # largest first, ties in matrix order
    return [(f"AU{aus[i[n]]}+AU{aus[j[n]]}", float(values[n])) for n in order[:k]]


def append_jsonl(path, record: dict) -> None:
    """Append ``record`` to a JSON-lines log as one line, in one ``write`` (a killed run never
    leaves half of it). A log whose last line was torn by a run killed mid-write (no final
    newline) gets a newline first, so the new record starts a line of its own."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)


def _record_after_a_torn_one(line: str) -> dict | None:
    """The complete record at the end of ``line`` when a torn one precedes it (written on the
    same line by an older version of :func:`append_jsonl`), else None."""
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(line) if c == "{" and i > 0):
        try:
            record, end = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and not line[end:].strip():
            return record
    return None


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines log (one JSON object per line, e.g. a run's ``metrics.jsonl``),
    in order. A line that is not a JSON object (torn by a killed writer, edited by hand) is
    skipped with a warning naming the file and line, so one bad line never hides the others; a
    complete record written onto the end of a torn one is kept, and the warning says so."""
    records = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                record = err.msg
            if not isinstance(record, dict):
                kept = _record_after_a_torn_one(line)
                if kept is not None:
                    warnings.warn(f"{path}, line {i}: a torn record ({line[:40]}...) is followed by a complete "
                                  "one on the same line; the torn part is skipped, the record kept", stacklevel=2)
                    records.append(kept)
                    continue
                warnings.warn(f"{path}, line {i}: not a JSON record ({str(record)[:40]}); skipped", stacklevel=2)
                continue
            records.append(record)
    return records
