"""Renderer throughput: SynthFACS faces per second at several sizes and batch sizes.

Usage: ``python benchmarks/bench_render.py [--n 2048] [--sizes 64 128 224]``.
Target (issue 2): at least 1,000 faces/s at 64 px on 2 CPU cores. Inputs are random identities,
expressions and nuisances drawn by the same samplers the datasets use, so the timing is the
real workload; the first batch is rendered once untimed (allocator warm-up).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from occfau_lib import synthfacs as sf


def random_scenes(n: int, seed: int = 0):
    """n (identity, AU, nuisance, seed) rows as the dataset generator would draw them."""
    rng = np.random.default_rng(seed)
    ids, _ = sf.sample_identities(n, rng)
    frames = 40
    aus = np.concatenate([sf.sample_sequence(frames, rng)[1] for _ in range(-(-n // frames))])[:n]
    nus = np.concatenate([sf.sample_nuisances(frames, rng, np.zeros(3), sf.sample_session(rng)) for _ in range(-(-n // frames))])[:n]
    return ids, aus, nus, np.arange(n)


def faces_per_second(scenes, size: int, batch: int) -> float:
    ids, aus, nus, seeds = scenes
    sf.render_faces(ids[:batch], aus[:batch], nus[:batch], seeds[:batch], size)  # warm-up
    start = time.perf_counter()
    for i in range(0, len(ids), batch):
        j = slice(i, i + batch)
        sf.render_faces(ids[j], aus[j], nus[j], seeds[j], size)
    return len(ids) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="faces per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--batches", type=int, nargs="*", default=[], help="default: render_batch_size(size)")
    args = parser.parse_args()
    scenes = random_scenes(args.n)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} faces per cell\n")
    print("| size (px) | batch | faces/s |")
    print("|---:|---:|---:|")
    for size in args.sizes:
        n = args.n if size <= 64 else max(256, args.n * 64 * 64 // (size * size))
        sub = tuple(x[:n] for x in scenes)
        for batch in args.batches or [sf.render_batch_size(size)]:
            print(f"| {size} | {batch} | {faces_per_second(sub, size, batch):,.0f} |")


if __name__ == "__main__":
    main()
