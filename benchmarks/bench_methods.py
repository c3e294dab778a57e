"""The method against its ablations, baselines and floors, over folds and seeds: the claims record.

Runs :func:`claims.run_benchmark` (``benchmarks/claims.py``): every method of notebook 04 (teacher, teacher +
occlusion augmentation, reconstruct-then-detect, linear probe on the MAE latent, the four student
ablations, and the floors "always present" and "pixels + logistic regression") under clean faces,
random small patches, large blocks, halves and the realistic occluders, for every subject-exclusive
fold and every training seed (test occlusions fixed), plus the probe gain of the trained MAE over a
random one and the inference speeds; then checks the paper's claims (a)-(e). Prints the tables
(mean ± seed std; ± fold std with one seed) and the ✓/✗/? ledger.

It works one (seed, fold) at a time (training ~30 min, scoring ~5 min each on the demo profile, 2
CPU cores) and writes each finished run to ``--runs`` (default: the record's path without
``.json``, e.g. ``benchmarks/results/methods_demo/seed1-fold2.json``); a run already there with the
same setup is read, not redone. Commit those files as they come: the data/cache of one session does
not survive to the next, so a 3 x 3 benchmark longer than a session is finished in several, with
``--runs-only`` for the ones cut short. Everything trained also goes through the cache. Writes:

- ``--record`` (default ``benchmarks/results/methods_<profile>.json``): the machine-readable record
  (commit, profile, folds, seeds, floors, methods -> condition -> F1/AUC mean and std, claims, and
  the commit of every run), unless ``--runs-only``;
- under ``--out``: ``methods_f1.md``, ``methods_auc.md`` and ``methods_per_au.csv`` (per-AU F1 of
  every method and condition, seed 0).

Usage: ``python benchmarks/bench_methods.py [--profile demo] [--folds 1 2 3] [--seeds 0 1 2] [--runs-only]``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import claims
from occfau_lib import experiments, metrics, occlusion
from occfau_lib import record as ledger
from occfau_lib.files import write_json
from occfau_lib.config import get_profile
from occfau_lib.loaders import load_dataset
from occfau_lib.synthfacs import world_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="teacher/student training seeds")
    parser.add_argument("--test-stride", type=int, default=2, help="score every k-th test face")
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--record", default=None, help="default: benchmarks/results/methods_<profile>.json")
    parser.add_argument("--runs", default=None, help="one file per (seed, fold); default: the record's path without .json")
    parser.add_argument("--runs-only", action="store_true", help="do (or read) the runs, write no record")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    encoder, _ = experiments.mae_for_profile(profile)
    conditions = {**occlusion.protocol_conditions(), **{name: name for name in occlusion.REALISTIC}}
    record_path = Path(args.record or Path(__file__).parent / "results" / f"methods_{profile.name}.json")
    runs = Path(args.runs) if args.runs else record_path.with_suffix("")
    record, per_seed = claims.run_benchmark(profile, ds, world_key(profile.data), encoder, conditions, args.folds,
                                            args.seeds, args.test_stride, runs, args.runs_only)
    if record is None:
        print(f"runs done: seeds {args.seeds}, folds {args.folds}, in {runs}; no record written (--runs-only)")
        return
    path = write_json(record, record_path)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "methods_f1.md").write_text(ledger.methods_table(record) + "\n")
    (out / "methods_auc.md").write_text(ledger.methods_table(record, "auc") + "\n")
    first = per_seed[args.seeds[0]]
    per_au = {f"{method} / {condition}": r["f1"] for method, rows in first.items() for condition, r in rows.items()}
    (out / "methods_per_au.csv").write_text(metrics.format_csv(per_au, ds.aus))
    print(f"\nprofile {profile.name}, folds {args.folds}, seeds {args.seeds}, every {args.test_stride}. test face; "
          f"average F1 % (mean ± {ledger.spread_name(record)}); {record['seconds']['total']:.0f} s\n")
    print(ledger.methods_table(record))
    print(f"\nAUC % (mean ± {ledger.spread_name(record)})\n")
    print(ledger.methods_table(record, "auc"))
    print("\n" + ledger.ledger(record))
    print(f"\nREADME block: python benchmarks/claims.py {path} --readme README.md")
    print(f"written: {path}, {out / 'methods_f1.md'}, {out / 'methods_auc.md'}, {out / 'methods_per_au.csv'}")


if __name__ == "__main__":
    main()
