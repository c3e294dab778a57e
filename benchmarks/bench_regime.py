"""Notebook 02's data-regime study: when does an MAE's latent beat a random encoder's?

For every corpus size ``N`` and step budget ``T`` (the profile's ``regime_corpora`` x
``regime_steps``) the profile's MAE is pretrained on ``N`` fresh unlabelled faces
(:class:`synthfacs.FaceCorpus`, none of them a labelled subject) for ``T`` steps, then read at the
student's block by a linear and an MLP probe on fold 1's clean faces; the same probes read a
randomly initialised encoder of the same shape. The record, ``benchmarks/results/regime_<profile>.json``
(``{"runs": [{corpus, steps, linear, mlp}, ...], "random": {linear, mlp}, "folds"}``, average F1 in
percent), is what notebook 02 reads. Everything measured goes through the cache (the scores as kind
``"regime"``), so a rerun reads them back.

Usage: ``python benchmarks/bench_regime.py [--profile demo] [--record PATH]``
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from claims import clean_probe_f1
from occfau_lib import mae
from occfau_lib.cache import checkpoint_or_train, config_dict, not_recorded, read_state
from occfau_lib.config import MAE_CONFIGS, get_profile
from occfau_lib.experiments import PROBE_VERSION, dataset_key
from occfau_lib.files import commit, write_json
from occfau_lib.loaders import load_dataset
from occfau_lib.mae import pretrained_mae
from occfau_lib.synthfacs import RENDERER_VERSION, FaceCorpus, world_key

REGIME_VERSION = 1  # bump when the measurement changes: cached results are remade


def data_regime(profile, ds, corpus_sizes=None, steps=None, folds=(1,), hidden: int = 256,
                seed: int = 0, progress: bool = True, data_key: dict | None = None) -> dict:
    """The study (module docstring) for ``corpus_sizes`` x ``steps`` (default: the profile's), with
    an MLP probe of width ``hidden``: ``{"runs": [...], "random": {linear, mlp}, "folds"}``."""
    corpus_sizes = tuple(profile.regime_corpora if corpus_sizes is None else corpus_sizes)
    steps = tuple(profile.regime_steps if steps is None else steps)
    batch = profile.pretrain.batch_size
    cfg = MAE_CONFIGS[profile.mae]
    for n in corpus_sizes:
        for t in steps:
            if n > t * batch or (t * batch) % n:
                raise ValueError(f"a corpus of {n} faces does not divide {t} steps of {batch} faces into whole "
                                 "epochs; choose sizes that divide steps x batch")
    data_key = data_key or dataset_key(ds)
    key = {"version": REGIME_VERSION, "renderer": RENDERER_VERSION, "mae_version": mae.MAE_VERSION,
           "probe_version": PROBE_VERSION, "data": data_key, "aus": list(ds.aus),
           "mae": cfg, "pretrain": profile.pretrain, "corpora": list(corpus_sizes), "steps": list(steps),
           "folds": list(folds), "hidden": hidden, "seed": seed, "depth": profile.distill.depth,
           "probe_epochs": profile.probe_epochs}

    def probed(model) -> dict:
        return {name: clean_probe_f1(ds, model, profile.distill.depth, profile.probe_epochs, folds, seed, width, data_key)
                for name, width in (("linear", 0), ("mlp", hidden))}

    def measure(_partial) -> tuple[dict, dict]:
        start = time.perf_counter()
        torch.manual_seed(seed)
        runs = []
        with not_recorded():
            for n in corpus_sizes:
                for t in steps:
                    corpus = FaceCorpus(n, ds.image_size, seed)
                    pretrain = replace(profile.pretrain, epochs=t * batch // n, warmup_epochs=0)
                    model, _ = pretrained_mae(corpus, cfg, pretrain, corpus.key(), progress=progress)
                    runs.append([n, t, *probed(model).values()])
            random = list(probed(mae.random_encoder(cfg, seed)).values())
        scores = {"runs": torch.tensor(runs, dtype=torch.float64),  # (R, 4): corpus, steps, linear, mlp
                  "random": torch.tensor(random, dtype=torch.float64)}
        return scores, {"seconds": time.perf_counter() - start}

    def save(obj: tuple[dict, dict], config: dict, path) -> None:
        torch.save({"model": obj[0], "history": obj[1], "config": config}, path)

    def load(path) -> tuple[tuple[dict, dict], dict]:
        state = read_state(path)
        return ({k: v.double() for k, v in state["model"].items()}, state.get("history", {})), state["config"]

    result, _ = checkpoint_or_train("regime", config_dict(key), measure, save, load)
    runs = [{"corpus": int(n), "steps": int(t), "linear": round(float(lin), 2), "mlp": round(float(mlp), 2)}
            for n, t, lin, mlp in result["runs"].tolist()]
    lin, mlp = result["random"].tolist()
    return {"runs": runs, "random": {"linear": round(lin, 2), "mlp": round(mlp, 2)}, "folds": list(folds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="default: $OCCFAU_PROFILE or demo")
    parser.add_argument("--record", default=None, help="default: benchmarks/results/regime_<profile>.json")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d")
    regime = data_regime(profile, ds, data_key=world_key(profile.data))
    record = {"commit": commit(), "profile": profile.name, "depth": profile.distill.depth, "hidden": 256, **regime}
    path = Path(args.record or Path(__file__).parent / "results" / f"regime_{profile.name}.json")
    write_json(record, path)
    for run in regime["runs"]:
        print(f"corpus {run['corpus']:>6}, {run['steps']:>5} steps: linear {run['linear']:.1f}, mlp {run['mlp']:.1f}")
    print(f"random encoder: linear {regime['random']['linear']:.1f}, mlp {regime['random']['mlp']:.1f} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
