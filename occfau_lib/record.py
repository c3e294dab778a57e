"""The claims record written by ``benchmarks/claims.py``, read back and shown as tables and a ledger.

Numbers are percentages; ``mean`` is over seeds of the k-fold average, ``std`` the seed-to-seed
spread (``fold_std``: over folds). A difference smaller than the seed spread is not a finding.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: The rows the claims compare.
TEACHER, STUDENT, NO_KD = "teacher", "student, node + edge KD", "student, no KD"
NODE_KD, EDGE_KD, RECONSTRUCT = "student, node KD", "student, edge KD", "reconstruct-then-detect"
AUGMENTED, RANDOM_STUDENT = "teacher + occlusion augmentation", "student, random encoder"
CHANCE, PIXELS = "chance: always present", "pixels + logistic regression"


def spread_name(record: dict) -> str:
    """What a table's ``±`` is: the seed std with several seeds, else the std over folds."""
    return "seed std" if len(record["seeds"]) > 1 else "fold std, one seed"


def cell_std(record: dict, cell: dict, metric: str = "f1") -> float:
    """The ``±`` of one cell (:func:`spread_name`; nan for AUC with one seed)."""
    if len(record["seeds"]) > 1:
        return cell[metric + "_std"]
    return cell["fold_std"] if metric == "f1" else float("nan")


def methods_table(record: dict, metric: str = "f1", conditions=None) -> str:
    """Markdown: methods x conditions, ``mean ± std`` of ``metric`` ("f1" or "auc")."""
    methods = record["methods"]
    conditions = conditions or list(next(iter(methods.values())))
    lines = ["| Method | " + " | ".join(conditions) + " |", "|:---|" + "---:|" * len(conditions)]
    std = lambda cell: cell_std(record, cell, metric)  # noqa: E731
    for method, rows in methods.items():
        cells = [f"{rows[c][metric + '_mean']:.1f} ± {std(rows[c]):.1f}" if not np.isnan(std(rows[c]))
                 else f"{rows[c][metric + '_mean']:.1f}" for c in conditions]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ledger(record: dict) -> str:
    """Markdown: one line per claim, ✓ (holds), ✗ (fails) or ? (undecided), with its numbers."""
    lines = [f"Record of commit `{record['commit']}`, profile {record['profile']}, folds {record['folds']}, "
             f"seeds {record['seeds']}: teacher clean F1 {record['teacher_clean_f1']:.1f}, pixels + logistic "
             f"regression {record['pixel_lr_f1']:.1f}, always present {record['chance_f1']:.1f}.", ""]
    for claim in record["claims"]:
        numbers = ", ".join(f"{k} {v}" for k, v in claim["numbers"].items())
        mark = "?" if claim["holds"] is None else "✓" if claim["holds"] else "✗"
        lines.append(f"- {mark} {claim['name']} — {numbers}")
    return "\n".join(lines)


def read_record(path: str | Path) -> dict:
    """A claims record; a missing key is a ValueError naming it."""
    record = json.loads(Path(path).read_text())
    missing = [k for k in ("commit", "profile", "folds", "seeds", "teacher_clean_f1", "pixel_lr_f1", "chance_f1",
                           "methods", "claims") if k not in record]
    if missing:
        raise ValueError(f"{path}: not a benchmark record, missing {missing}")
    return record


def design_table(record: dict) -> str:
    """Markdown of the student design record (``benchmarks/bench_design.py design``): one row per variant,
    clean / large-block F1 ``mean ± seed std`` for each encoder and KD setting, and the MAE's gain over the
    random encoder under large blocks, paired by seed."""
    settings = [(enc, kd) for enc in ("mae", "random") for kd in ("node + edge KD", "no KD")]
    lines = ["| Variant | " + " | ".join(f"{enc}, {kd}" for enc, kd in settings)
             + " | MAE gain under blocks (KD / no KD) |", "|:---|" + "---:|" * (len(settings) + 1)]
    names = list(dict.fromkeys(row["variant"] for row in record["variants"].values()))
    for name in names:
        cells = []
        for enc, kd in settings:
            row = record["variants"].get(f"{name}, {kd}, {enc} encoder")
            cells.append(f"{row['clean_f1']:.1f} / {row['blocks_f1']:.1f} ± {row['blocks_f1_std']:.1f}" if row else "–")
        gains = [record["mae_gain"].get(f"{name}, {kd}") for kd in ("node + edge KD", "no KD")]
        cells.append(" / ".join(f"{g['blocks_gain']:+.1f} ± {g['blocks_gain_std']:.1f}" if g else "–" for g in gains))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
