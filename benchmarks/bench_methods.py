"""The method against its ablations and baselines: average F1 under every occlusion condition.

One run of :func:`occfau_lib.distill.compare_methods` (the harness of notebook 04): teacher,
teacher + occlusion augmentation, reconstruct-then-detect, linear probe on the MAE latent and
the four student ablations, each under clean, random small patches, large blocks, halves and the
realistic occluders, subject-exclusive. Everything trained is cached under data/cache, so a
second run only evaluates. Prints the Markdown table and writes, under ``--out``:

- ``methods_f1.md`` / ``methods_f1.csv``: methods x conditions, average F1
- ``methods_per_au.csv``: per-AU F1 of every method under every condition

Usage: ``python benchmarks/bench_methods.py [--profile demo] [--folds 1 2 3] [--out build/bench]``
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from occfau_lib import distill, mae, metrics, occlusion
from occfau_lib.config import get_profile
from occfau_lib.loaders import load_dataset
from occfau_lib.synthfacs import world_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="default: the profile's distill_folds")
    parser.add_argument("--test-stride", type=int, default=2, help="score every k-th test face")
    parser.add_argument("--out", default="build/bench")
    args = parser.parse_args()

    t0 = time.perf_counter()
    profile = get_profile(args.profile)
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    encoder, _ = mae.mae_for_profile(profile)
    conditions = {**occlusion.protocol_conditions(), **{name: name for name in occlusion.REALISTIC}}
    results = distill.compare_methods(profile, ds, world_key(profile.data), encoder, conditions, args.folds,
                                      args.test_stride)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = metrics.conditions_table(results)
    (out / "methods_f1.md").write_text(table + "\n")
    (out / "methods_f1.csv").write_text(metrics.conditions_table(results, fmt="csv"))
    per_au = {f"{method} / {condition}": r["f1"] for method, rows in results.items() for condition, r in rows.items()}
    (out / "methods_per_au.csv").write_text(metrics.format_csv(per_au, ds.aus))
    folds = args.folds or profile.distill_folds
    print(f"\nprofile {profile.name}, folds {list(folds)}, average F1 (%), every {args.test_stride}. test face; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(table)
    print(f"\nwritten: {out / 'methods_f1.md'}, {out / 'methods_f1.csv'}, {out / 'methods_per_au.csv'}")


if __name__ == "__main__":
    main()
