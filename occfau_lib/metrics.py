"""AU detection metrics and results tables, computed the way the BP4D/DISFA literature does.

Per-AU F1 of the positive class (probabilities thresholded at 0.5, counts over the whole test
fold) and ROC AUC, each AU averaged over the 3 subject-exclusive folds, "Avg" the mean over AUs.
Labels are ``(N, n_au)`` arrays of 1 / 0 / -1 (unknown); unknown entries are dropped from their
AU's metric only, never read as absent. The counting itself is scikit-learn's.
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
    """``x`` as a numpy array (a torch tensor detached and moved to the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check(labels: Any, probs: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
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
    """Mean ignoring nan; nan (without a warning) when nothing is left."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else math.nan


def f1_per_au(labels: Any, probs: Any, threshold: float = 0.5) -> np.ndarray:
    """F1 of the positive class per AU over its known rows (present where ``probs >= threshold``).
    No positives and no positive predictions score 0.0, as the literature reports it; an AU with
    only unknown labels is nan."""
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
    """ROC AUC per AU over its known rows; nan where only one class remains."""
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
    """One test fold, in plain Python types: ``{"f1": {au: float}, "auc": {au: float}, "avg_f1",
    "avg_auc", "n": rows, "n_unknown": {au: rows labelled -1}}``."""
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
    return {int(k): float(v) for k, v in scores.items()}


def aggregate_folds(fold_results: list[dict]) -> dict:
    """The folds' :func:`evaluate` results as a paper reports them: per AU the mean and std
    (``ddof=0``) over folds, ``avg_f1`` / ``avg_auc`` the mean over AUs of the per-AU means::

        {"f1", "auc", "f1_std", "auc_std": {au: value}, "avg_f1", "avg_auc", "n_folds"}
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
    """One ``{au: value}`` row in AU order (string keys accepted, a missing AU nan)."""
    scores = _by_au(row)
    return [scores.get(int(a), math.nan) for a in aus]


def format_table(rows: dict[str, dict[int, float]], aus: tuple[int, ...], digits: int = 1,
                 scale: float = 100, average: bool = True) -> str:
    """Markdown: one row per method, one column per AU, then ``Avg`` (ignoring nan); values times
    ``scale``, nan as ``–``."""
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
    """The same table as CSV (``method, AU1, ..., Avg``), fractions, nan as ``nan``."""
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
    """Methods x conditions from ``{method: evaluate_conditions(...)}``, the value ``metric``:
    Markdown in percent (``fmt="md"``) or CSV fractions (``fmt="csv"``)."""
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
    """AU co-occurrence (n_au, n_au) from labels (N, n_au), each pair over the rows where both are
    known: ``"conditional"`` [i, j] = P(AU j | AU i), or ``"correlation"`` (phi coefficient)."""
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
    """The ``k`` strongest AU pairs of an (N, N) matrix as ``("AU6+AU12", value)``, largest first; a
    pair's value is the mean of its two (directed) cells, the diagonal and nan left out."""
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
    """``record`` as one line of a JSON-lines log, in one ``write``; after a torn last line (no
    final newline) the record starts a line of its own."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines log; a line that is not a JSON object (torn by a killed writer,
    edited by hand) is skipped with a warning naming the file and line."""
    records = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                record = err.msg
            if isinstance(record, dict):
                records.append(record)
            else:
                warnings.warn(f"{path}, line {i}: not a JSON record ({str(record)[:40]}); skipped", stacklevel=2)
    return records
