"""Inference speed: the method's student vs reconstruct-then-detect, on the very same batches.

Usage: ``python benchmarks/bench_inference.py [--profile demo] [--batch 64] [--batches 10] [--spec block:112]``.

Both pipelines see the same occluded faces (``--spec``, fixed seed) and must output AU probabilities:

- **student**: the frozen MAE encodes the visible patches only, the mapping network reads the latent;
- **reconstruct-then-detect**: the MAE encodes the visible patches, its decoder paints the hidden
  ones, the reconstruction is pasted into the visible pixels and the teacher classifies it;
- **teacher alone** (occluder pixels fed in), for scale.

Speed does not depend on the weights, so the models are built with the profile's architectures
(the MAE from the cache when present; the teacher and mapping network freshly initialised) and
nothing is trained (:func:`claims.inference_speed` in ``benchmarks/claims.py``, also used by the claims record). Prints
images/s per pipeline (median of the timed batches after one warm-up; the pipelines take turns on
each batch, so the machine's drift does not move their ratio) and the student's speed-up.
"""
from __future__ import annotations

import argparse

import torch

import claims
from occfau_lib import experiments
from occfau_lib.config import get_profile
from occfau_lib.loaders import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--spec", default="block:112", help="occluder spec (see occfau_lib.occlusion.apply)")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    encoder, _ = experiments.mae_for_profile(profile, progress=False)
    rates = claims.inference_speed(profile, ds, encoder, args.batch, args.batches, args.spec)
    print(f"profile {profile.name}, {ds.image_size} px, batches of {args.batch}, '{args.spec}', "
          f"{torch.get_num_threads()} threads")
    print("| pipeline | images/s |\n|:---|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    print(f"\nstudent / reconstruct-then-detect speed ratio: {rates['student'] / rates['reconstruct-then-detect']:.2f}x")


if __name__ == "__main__":
    main()
