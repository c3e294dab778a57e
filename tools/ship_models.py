"""Models shipped with the repository, so a classroom demo loads instead of training: ``make models``.

:func:`notebook_models` asks for exactly the models the notebooks use on a profile, each
through the one checkpoint-or-train cache (:func:`cache.checkpoint_or_train`): the MAE (notebooks
01-04), one teacher per fold (03), on the distillation folds the occlusion-augmented teacher,
the four student ablations and the student on a random encoder (04). :func:`make_models` records them and writes each one to
``data/models/<kind>-<hash>.safetensors`` with ``manifest.json``: per file its kind, its full cache
key (config, data, code version), sha256, size, the command and the training's seconds. The cache
then loads a shipped file only when the manifest lists it with exactly the key the current code
asks for (:func:`cache.shipped`); anything else trains, saying why in one line.
:func:`missing_models` is the check the tests run: with training forbidden, every model the
notebooks need must come from the shipped files (or the local cache), so a code change that
invalidates them fails until ``make models`` is re-run.

Usage: ``python tools/ship_models.py [--profile demo] [--out data/models] [--half]``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from occfau_lib import cache, experiments
from occfau_lib.files import commit
from occfau_lib.config import get_profile
from occfau_lib.loaders import load_dataset
from occfau_lib.synthfacs import world_key


def notebook_models(profile, progress: bool = True) -> None:
    """Obtain (load or train) every model the notebooks use on ``profile``."""
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d", progress=progress)
    key = world_key(profile.data)
    encoder, _ = experiments.mae_for_profile(profile, progress=progress)
    experiments.teachers_for_profile(profile, ds, key, progress=progress)
    experiments.method_models(profile, ds, key, encoder, profile.distill_folds, progress=progress)
    experiments.method_probes(profile, ds, key, encoder, profile.distill_folds)


def write_safetensors(state: dict, path: Path, half: bool = False) -> None:
    """A checkpoint dict as safetensors: its tensor dicts as tensors ``<group>/<name>`` (float32 in
    fp16 with ``half``; float64 results stay exact), everything else as JSON metadata."""
    tensors, rest = {}, {}
    for group, value in state.items():
        if isinstance(value, dict) and value and all(torch.is_tensor(v) for v in value.values()):
            for name, t in value.items():
                t = t.detach().cpu().contiguous()
                tensors[f"{group}/{name}"] = t.half() if half and t.dtype == torch.float32 else t
        else:
            rest[group] = value
    dtypes = {k: str(v.dtype) for k, v in state.get("model", state.get("head", {})).items()} if half else {}
    save_file(tensors, str(path), metadata={"json": json.dumps(rest), "dtypes": json.dumps(dtypes)})


#: Kinds stored in float32 even with ``--half``: a probe is small (0.7 MB) and its F1 then stays exact.
FULL_PRECISION = ("probe",)


def make_models(profile, out: str | Path | None = None, half: bool = False, progress: bool = True) -> dict:
    """Obtain the notebooks' models and write them to ``out`` (default: the shipped folder) as
    safetensors with a manifest; returns the manifest.

    A model already shipped in ``out`` under exactly the key the current code asks for is kept as
    it is (file and manifest entry: its float32 fingerprint, its training time); every other one
    comes from the training cache (``data/cache``, float32, as trained) or is trained. So after a
    code change only what it invalidated is retrained; with ``OCCFAU_RETRAIN=1`` nothing shipped
    is used and everything is retrained with the committed code. ``half``: fp16 weights (not for
    :data:`FULL_PRECISION` kinds)."""
    out = Path(out or cache.models_root())
    out.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    before = cache.read_manifest(out)
    with cache.recording() as used, cache.models_from(out):
        notebook_models(profile, progress)
    manifest = {}
    for kind, config, path in used:
        name = cache.shipped_name(kind, config)
        target = out / name
        if Path(path).resolve() == target.resolve() and name in before:  # shipped and current: kept
            manifest[name] = before[name]
            continue
        state = cache.read_state(path)
        fp16 = half and kind not in FULL_PRECISION
        cache.atomic_write(target, lambda tmp, state=state, fp16=fp16: write_safetensors(state, tmp, fp16))
        history = cache.read_state(target).get("history", {})  # read back: the file as shipped
        manifest[name] = {"kind": kind, "key": cache.config_dict(config), "sha256": cache.file_sha256(target),
                          "bytes": target.stat().st_size, "command": f"make models (profile {profile.name})",
                          "seconds": round(float(history.get("seconds", 0.0)), 3), "fp16": fp16}
        if isinstance(state.get("model"), dict) and all(torch.is_tensor(t) for t in state["model"].values()):
            manifest[name]["fingerprint"] = cache.state_fingerprint(state["model"])  # as trained: students key on it
    for stale in out.glob("*.safetensors"):  # files of older code: no longer listed, removed
        if stale.name not in manifest:
            stale.unlink()
    manifest = {"profile": profile.name, "commit": commit(), "cpu_seconds": round(time.process_time() - start, 1),
                "files": manifest}
    cache.atomic_write(out / cache.MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1) + "\n"))
    return manifest


def missing_models(profile) -> list[str]:
    """What ``make models`` would have to (re)make: empty when every model the notebooks use on
    ``profile`` is shipped (or cached) under exactly the key the current code asks for."""
    try:
        with cache.forbid_training():
            notebook_models(profile, progress=False)
    except cache.NotShipped as err:
        return [str(err)]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="default: $OCCFAU_PROFILE or demo")
    parser.add_argument("--out", default=None, help="default: data/models (or $OCCFAU_MODELS_DIR)")
    parser.add_argument("--half", action="store_true", help="store the weights in fp16")
    args = parser.parse_args(argv)
    manifest = make_models(get_profile(args.profile), args.out, args.half)
    files = manifest["files"]
    size = sum(f["bytes"] for f in files.values())
    print(f"{len(files)} models, {size / 1e6:.1f} MB, {manifest['cpu_seconds']:.0f} CPU s -> "
          f"{args.out or cache.models_root()}")
    for name, entry in files.items():
        print(f"  {name}  {entry['bytes'] / 1e6:6.2f} MB  trained in {entry['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
