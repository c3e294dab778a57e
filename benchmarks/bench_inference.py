"""Inference speed: the method's student vs reconstruct-then-detect, on the very same batches.

Usage: ``python benchmarks/bench_inference.py [--profile demo] [--batch 64] [--batches 10] [--spec block:112]``.

Both pipelines see the same occluded faces (``--spec``, fixed seed) and must output AU probabilities:

- **student**: the frozen MAE encodes the visible patches only, the mapping network reads the latent;
- **reconstruct-then-detect**: the MAE encodes the visible patches, its decoder paints the hidden
  ones, the reconstruction is pasted into the visible pixels and the teacher classifies it;
- **teacher alone** (occluder pixels fed in), for scale.

Speed does not depend on the weights, so the models are built with the profile's architectures
(the MAE from the cache when present; the teacher and mapping network freshly initialised) and
nothing is trained. Prints images/s per pipeline (median of the timed batches after one warm-up)
and the student's speed-up.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from occfau_lib import mae, occlusion, student, teacher
from occfau_lib.config import TEACHER_CONFIGS, get_profile
from occfau_lib.loaders import load_dataset


def timed(fn, batches) -> float:
    """Median images/s of ``fn(batch)`` over ``batches`` (the first call is a warm-up)."""
    fn(batches[0])
    rates = []
    for b in batches:
        t0 = time.perf_counter()
        fn(b)
        rates.append(len(b.images) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--spec", default="block:112", help="occluder spec (see occfau_lib.occlusion.apply)")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    encoder, _ = mae.mae_for_profile(profile, progress=False)
    cfg = TEACHER_CONFIGS[profile.teacher]
    torch.manual_seed(0)
    detector = teacher.Teacher(cfg, ds.aus, ds.image_size).eval()
    model = student.Student(encoder, detector, profile.distill.depth, profile.distill.rank,
                            profile.distill.edge_rank).eval()
    n = min(len(ds), args.batch * args.batches)
    images = ds.batch_images(np.arange(n))
    batches = [occlusion.apply(images[i: i + args.batch], args.spec, encoder.config.patch_size, seed=i)
               for i in range(0, n, args.batch)]

    rates = {
        "student (visible latent -> mapping)": timed(
            lambda b: student.predict(model, b.images, b.visible, batch_size=len(b.images)), batches),
        "reconstruct-then-detect (MAE decode + teacher)": timed(
            lambda b: teacher.predict(detector, mae.reconstruct_images(encoder, b.images, b.visible),
                                      batch_size=len(b.images)), batches),
        "teacher alone (occluder pixels fed in)": timed(
            lambda b: teacher.predict(detector, b.images, batch_size=len(b.images)), batches),
    }
    print(f"profile {profile.name}, {ds.image_size} px, batches of {args.batch}, '{args.spec}', "
          f"{torch.get_num_threads()} threads")
    print("| pipeline | images/s |\n|:---|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    first, second = list(rates.values())[:2]
    print(f"\nstudent / reconstruct-then-detect speed ratio: {first / second:.2f}x")


if __name__ == "__main__":
    main()
