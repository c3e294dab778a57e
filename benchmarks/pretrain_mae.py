"""Pretrain an MAE at a long budget, once, resumably, keeping the encoder after every epoch.

The run goes through the one cache (:func:`occfau_lib.mae.pretrained_mae`): killed and started again with
the same arguments, it continues from its last epoch checkpoint, and the finished MAE is the cache entry
whose key the arguments name. A recipe is written as in ``bench_design.py mae`` (``NAME[:FIELD=VALUE,...]``,
fields of ``MAEConfig`` or ``PretrainConfig``, or ``mask_ratios=LOW-HIGH``).

After every epoch the encoder's weights are copied to ``--snapshots/step-NNNNNN.pt`` (with the architecture
and the step), so the gain over a random encoder can be measured as a function of pretraining steps
(``bench_design.py mae --recipes NAME@PATH``, :func:`bench_design.load_snapshot`). Snapshots are taken mid-schedule: a snapshot at step ``s`` of a
long cosine schedule is not the MAE a short schedule of ``s`` steps would give (its learning rate has not
decayed), which the budget curve states.

Writes ``--record`` (JSON): recipe, corpus, steps, threads, seconds, images/s, the loss every 50 steps and
the snapshots taken.

Usage::

    python benchmarks/pretrain_mae.py --recipe vary:mask_ratios=0.25-0.75 --steps 30000 --corpus 192000
"""
from __future__ import annotations

import argparse
import threading
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from occfau_lib import cache, mae, synthfacs
from occfau_lib.config import MAE_CONFIGS, get_profile

from bench_design import _recipe, write_record  # noqa: E402 (the scripts sit side by side)


class Rendered:
    """A :class:`synthfacs.FaceCorpus` rendered once into ``<data>/synthfacs/corpus-<hash>.npy`` and read from
    there: a long pretraining passes over its corpus many times, and rendering is a quarter of a CPU step.
    Same faces, same :meth:`key`, so the MAE it trains is the one the corpus itself would train."""

    def __init__(self, corpus: synthfacs.FaceCorpus, chunk: int = 1024):
        self.corpus = corpus
        path = cache.data_root() / "synthfacs" / f"corpus-{cache.config_hash(corpus.key())}.npy"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)

            def write(tmp: Path) -> None:
                out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(corpus), corpus.size, corpus.size, 3))
                for i in tqdm(range(0, len(corpus), chunk), desc="rendering the corpus"):
                    out[i: i + chunk] = corpus.batch_images(range(i, min(i + chunk, len(corpus))))
                out.flush()

            cache.atomic_write(path, write)
        self.faces = np.load(path, mmap_mode="r")  # (N, S, S, 3) uint8

    def __len__(self) -> int:
        return len(self.corpus)

    def key(self) -> dict:
        return self.corpus.key()

    def batch_images(self, rows) -> np.ndarray:
        return np.asarray(self.faces[np.asarray(rows)])


def keep(folder: Path, weights: dict, step: int, mae_cfg) -> Path:
    """The MAE's weights after ``step`` steps as ``folder/step-NNNNNN.pt`` (once per step), with its architecture."""
    target = folder / f"step-{step:06d}.pt"
    if not target.exists():
        cache.atomic_write(target, lambda tmp: torch.save({"model": weights, "step": step, "mae": asdict(mae_cfg)}, tmp))
    return target


def snapshot(partial: Path, folder: Path, mae_cfg) -> Path | None:
    """Keep the encoder + decoder weights of the latest epoch checkpoint (:func:`keep`)."""
    try:
        state = cache.read_state(partial)
    except (FileNotFoundError, cache.CorruptFile):
        return None
    return keep(folder, {k.removeprefix("mae."): v for k, v in state["model"].items()}, state["step"], mae_cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--recipe", default="base")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--corpus", type=int, default=192_000, help="fresh unlabelled faces")
    parser.add_argument("--warmup", type=float, default=0.05, help="share of the steps spent warming up")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--render-once", action="store_true", help="render the corpus into a file first (Rendered)")
    parser.add_argument("--snapshots", default="build/mae-snapshots")
    parser.add_argument("--record", default=None, help="default: benchmarks/results/mae_pretrain_<profile>.json")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    batch = profile.pretrain.batch_size
    if (args.steps * batch) % args.corpus:
        raise SystemExit(f"{args.steps} steps of {batch} faces are not whole epochs of a {args.corpus}-face corpus")
    epochs = args.steps * batch // args.corpus
    schedule = replace(profile.pretrain, epochs=epochs, warmup_epochs=args.warmup * epochs)
    name, mae_cfg, pretrain, ratios = _recipe(args.recipe, MAE_CONFIGS[profile.mae], schedule)
    corpus = synthfacs.FaceCorpus(args.corpus, profile.data.img_size)
    faces = Rendered(corpus) if args.render_once else corpus
    key = mae.mae_key(mae_cfg, pretrain, corpus.key(), mask_ratios=ratios)
    path = cache.checkpoint_path("mae", key)
    partial = path.with_name(path.stem + ".partial.pt")
    folder = Path(args.snapshots) / f"{name}-{cache.config_hash(key)}"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{args.recipe}: {args.steps} steps of {batch} faces over {args.corpus} faces ({epochs} epochs), "
          f"cache {path.name}, snapshots in {folder}", flush=True)

    done = threading.Event()

    def watch():  # an epoch checkpoint appears every epoch: keep its weights
        while not done.wait(30):
            snapshot(partial, folder, mae_cfg)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    model, history = mae.pretrained_mae(faces, mae_cfg, pretrain, corpus.key(), mask_ratios=ratios)
    done.set()
    watcher.join()
    keep(folder, model.state_dict(), args.steps, mae_cfg)
    record = {"profile": profile.name, "recipe": args.recipe, "key": cache.config_hash(key), "corpus": args.corpus,
              "steps": args.steps, "epochs": epochs, "batch_size": batch, "threads": torch.get_num_threads(),
              "device": "cpu", "seconds": round(history.get("seconds", 0.0)),
              "images_per_s": round(history.get("images_per_s", 0.0), 1),
              "loss": {"step": history["step"], "loss": [round(v, 5) for v in history["loss"]]},
              "snapshots": sorted(p.name for p in folder.glob("step-*.pt"))}
    print(f"done: {record['seconds']} s, {record['images_per_s']} images/s")
    write_record(record, args.record, f"mae_pretrain_{profile.name}.json")


if __name__ == "__main__":
    main()
