"""How hard is SynthFACS? A logistic regression on raw pixels, subject-exclusive 3-fold.

Usage: ``python benchmarks/pixel_baseline.py [--profile demo] [--aus bp4d] [--C 0.001]``.
Prints per-AU F1 for each fold and the 3-fold average, and the chance level (F1 of always
answering "present"). The world must be learnable (every AU above chance) but not trivial
(room left for deep models), or nothing the notebooks show about AUs would be meaningful.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from occfau_lib import metrics
from occfau_lib.aus import au_set
from occfau_lib.config import get_profile
from occfau_lib.loaders import load_dataset


def pixels(ds) -> np.ndarray:
    """Flattened raw pixels (N, S*S*3) as float32 in [0, 1]."""
    return ds.images.reshape(len(ds), -1).astype(np.float32) / 255.0


def fit_fold(train, test, C: float) -> np.ndarray:
    """Probabilities (N_test, n_au) from one logistic regression per AU on standardised pixels."""
    scaler = StandardScaler().fit(pixels(train))
    x_tr, x_te = scaler.transform(pixels(train)), scaler.transform(pixels(test))
    probs = np.zeros(test.labels.shape, np.float32)
    for j in range(len(train.aus)):
        known = train.labels[:, j] >= 0
        y = train.labels[known, j]
        if len(np.unique(y)) < 2:  # an AU never (or always) present in this training fold: a constant
            probs[:, j] = float(y[0]) if len(y) else 0.0
            continue
        clf = LogisticRegression(C=C, max_iter=300, class_weight="balanced")
        probs[:, j] = clf.fit(x_tr[known], y).predict_proba(x_te)[:, 1]
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke | demo | paper (default: $OCCFAU_PROFILE or demo)")
    parser.add_argument("--aus", default="bp4d", help="AU set: bp4d | disfa | all")
    parser.add_argument("--C", type=float, default=1e-3, help="inverse L2 strength of the logistic regression")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    ds = load_dataset("synthfacs", profile=profile, aus=au_set(args.aus))
    print(f"SynthFACS {profile.name}: {len(ds)} images, {ds.image_size} px, {len(set(ds.subjects))} subjects")
    t0 = time.perf_counter()
    folds, chance = [], []
    for k in (1, 2, 3):
        train, test = ds.fold(k)
        folds.append(metrics.evaluate(test.labels, fit_fold(train, test, args.C), ds.aus))
        chance.append(metrics.evaluate(test.labels, np.ones(test.labels.shape), ds.aus))
        print(f"fold {k}: train {len(train)}, test {len(test)}, average F1 {100 * folds[-1]['avg_f1']:.1f}")
    result, base = metrics.aggregate_folds(folds), metrics.aggregate_folds(chance)
    rows = {f"fold {k + 1}": f["f1"] for k, f in enumerate(folds)}
    rows["pixels + logistic regression (3-fold mean)"] = result["f1"]
    rows["chance: always present"] = base["f1"]
    print(metrics.format_table(rows, ds.aus))
    above = [a for a in ds.aus if result["f1"][a] > base["f1"][a]]
    print(f"\n{len(above)}/{len(ds.aus)} AUs above chance; average F1 {100 * result['avg_f1']:.1f} "
          f"vs chance {100 * base['avg_f1']:.1f}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
