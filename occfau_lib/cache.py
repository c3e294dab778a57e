"""One cache for every expensive artefact: datasets, model checkpoints, cached features.

An artefact lives at a path holding the hash of the config that made it, and the file stores that
config too: a config change gives a new path, and a file whose stored config differs, or that
cannot be read, is rebuilt with a warning. Files are written atomically, so an interrupted run
never leaves half an artefact. Models shipped with the repository (``data/models/``: safetensors
plus a manifest of keys and sha256) come first, used only when their key matches exactly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .files import atomic_write

DATA_ENV = "OCCFAU_DATA_DIR"
MODELS_ENV = "OCCFAU_MODELS_DIR"
#: ``OCCFAU_RETRAIN=1``: ignore the shipped models and train everything with the committed code.
RETRAIN_ENV = "OCCFAU_RETRAIN"
MANIFEST = "manifest.json"
REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """``$OCCFAU_DATA_DIR``, else the repository's ``data/`` (``~/.cache/occfau`` outside a checkout)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return REPO / "data" if (REPO / "pyproject.toml").exists() else Path.home() / ".cache" / "occfau"


def config_dict(config: Any) -> dict:
    """A JSON-ready dict of a (nested) dataclass or mapping, without the settings that are None
    (None means "off", so an optional setting added later leaves every existing key as it was)."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)

    def without_none(value):
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        return [without_none(v) for v in value] if isinstance(value, list) else value

    return without_none(json.loads(json.dumps(config, sort_keys=True, default=str)))


def config_hash(config: Any, length: int = 12) -> str:
    """Stable short hash of a config: same fields and values, same hash, on every machine."""
    return hashlib.sha256(json.dumps(config_dict(config), sort_keys=True).encode()).hexdigest()[:length]


class CorruptFile(ValueError):
    """A checkpoint that cannot be read; the message names it."""


def read_state(path: str | Path) -> dict:
    """The dict saved at ``path`` (``torch.save`` read with ``weights_only=True``, or safetensors),
    on the CPU. Anything unreadable is a :class:`CorruptFile` naming the file."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, random bytes, an unpickler refusing the content...
        reason = (str(err).strip().splitlines() or [""])[0][:120]
        raise CorruptFile(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise CorruptFile(f"{path}: expected a checkpoint dict, found {type(state).__name__}")
    return state


def load_or_build(path: Path, config: Any, build: Callable[[], Any], save: Callable[[Any, dict, Path], None],
                  load: Callable[[Path], tuple[Any, dict]]) -> Any:
    """The artefact at ``path`` if its stored config equals ``config``, else ``build()``, saved.

    ``save(obj, config_dict, tmp_path)`` writes it with its config, ``load(path) -> (obj, config)``
    reads both back; a file ``load`` cannot read is rebuilt with a warning.
    """
    path, wanted = Path(path), config_dict(config)
    if path.exists():  # the common case, without a lock: files are only ever replaced whole
        with contextlib.suppress(Exception):
            obj, stored = load(path)
            if stored == wanted:
                return obj
    with build_lock(path):  # another process building the same artefact finishes first; we then load it
        if path.exists():
            try:
                obj, stored = load(path)
            except Exception as err:
                detail = str(err).removeprefix(f"{path}: ")
                warnings.warn(f"cannot read cached {path} ({detail}); rebuilding it", stacklevel=2)
            else:
                if stored == wanted:
                    return obj
                warnings.warn(f"cached {path.name} was made with a different config; rebuilding it", stacklevel=2)
        obj = build()
        atomic_write(path, lambda tmp: save(obj, wanted, tmp))
    return obj


@contextlib.contextmanager
def build_lock(path: Path):
    """An exclusive ``flock`` on ``.<name>.lock`` beside ``path`` while it is checked, built and saved.

    Two notebook kernels (or test workers) on one data folder may ask for the same artefact at
    once: the second waits, then loads what the first saved. The holder removes the lock file
    before releasing it, and a waiter that wakes up on a removed file locks the new one. No lock
    under torchrun (``WORLD_SIZE`` > 1), whose ranks build each model together in lockstep, nor
    where ``fcntl`` does not exist (Windows).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        fcntl = None
    if fcntl is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    lock = Path(path).with_name(f".{Path(path).name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                break  # we hold the lock file that is on disk
        handle.close()  # its holder removed it while we waited: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before unlocking, so every waiter retries on a fresh file
        handle.close()


def checkpoint_path(kind: str, config: Any) -> Path:
    """``data/cache/<kind>-<hash>.pt``: where a model of ``kind`` with this config is cached."""
    return data_root() / "cache" / f"{kind}-{config_hash(config)}.pt"


class NotShipped(RuntimeError):
    """Raised inside :func:`forbid_training` when a model would have to be trained."""


_NOW: dict = {"record": None, "forbid": False, "models": None}  # what the context managers below set


@contextlib.contextmanager
def _setting(key: str, value):
    before, _NOW[key] = _NOW[key], value
    try:
        yield value
    finally:
        _NOW[key] = before


def recording():
    """Collect ``(kind, config, path)`` of every model :func:`checkpoint_or_train` returns in the
    block (how ``make models`` learns what the notebooks use)."""
    return _setting("record", [])


def not_recorded():
    """Collect nothing in the block (models a shipped result is computed from)."""
    return _setting("record", None)


def forbid_training():
    """In the block a model neither shipped nor cached raises :class:`NotShipped` instead of training."""
    return _setting("forbid", True)


def models_from(root: str | Path):
    """In the block shipped models are looked up in ``root`` (``make models --out``)."""
    return _setting("models", Path(root))


def checkpoint_or_train(kind: str, config: dict, train: Callable[[Path], Any], save: Callable[[Any, dict, Path], None],
                        load: Callable[[Path], tuple[Any, dict]], resume: bool = True) -> Any:
    """The one checkpoint-or-train of every model: the shipped model (:func:`shipped`), else the
    cached one (:func:`load_or_build`), else ``train(partial_path)``, which writes an epoch
    checkpoint that an interrupted run continues from unless ``resume=False``. A model loaded from
    a shipped fp16 file keeps the fingerprint of its float32 weights (:func:`model_fingerprint`),
    so what is keyed by it (students by their teacher) finds the shipped files too."""
    path = checkpoint_path(kind, config)
    ready = shipped(kind, config)
    if ready is not None:
        result, _ = load(ready)
        trained = read_manifest().get(ready.name, {}).get("fingerprint")
        model = result[0] if isinstance(result, tuple) else result
        if trained and isinstance(model, torch.nn.Module):
            model._occfau_shipped_from = (trained, state_fingerprint(model.state_dict()))
    else:
        if _NOW["forbid"] and not path.exists():
            raise NotShipped(f"{kind} {config_hash(config)} is neither shipped nor cached; run `make models`")
        partial = path.with_name(path.stem + ".partial.pt")
        if not resume:
            partial.unlink(missing_ok=True)
        result = load_or_build(path, config, lambda: train(partial), save, load)
        partial.unlink(missing_ok=True)
    if _NOW["record"] is not None:
        _NOW["record"].append((kind, config, ready or path))
    return result


# Models shipped with the repository: data/models/*.safetensors + manifest.json
def models_root() -> Path:
    """``$OCCFAU_MODELS_DIR``, else the repository's ``data/models`` (inside :func:`models_from`, its folder)."""
    if _NOW["models"] is not None:
        return _NOW["models"]
    return Path(os.environ[MODELS_ENV]) if os.environ.get(MODELS_ENV) else REPO / "data" / "models"


def shipped_name(kind: str, config: Any) -> str:
    return f"{kind}-{config_hash(config)}.safetensors"


def read_manifest(root: Path | None = None) -> dict:
    """``{file name: {kind, key, sha256, bytes, command, seconds, fp16}}`` of the shipped models."""
    path = Path(root or models_root()) / MANIFEST
    return json.loads(path.read_text()).get("files", {}) if path.exists() else {}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_SAID: set = set()  # kinds whose "no shipped model matches" line was printed


def shipped(kind: str, config: dict) -> Path | None:
    """The shipped file of this model if the manifest lists it with exactly ``config`` as its key
    and its sha256 matches; else None, saying why once per kind. None with ``OCCFAU_RETRAIN=1``."""
    if os.environ.get(RETRAIN_ENV, "") not in ("", "0"):
        if "retrain" not in _SAID:
            _SAID.add("retrain")
            print(f"[occfau] {RETRAIN_ENV}={os.environ[RETRAIN_ENV]}: shipped models ignored, training with this code")
        return None
    manifest, name = read_manifest(), shipped_name(kind, config)
    entry, path = manifest.get(name), models_root() / name
    why = None
    if entry is None:
        if any(e.get("kind") == kind for e in manifest.values()) and kind not in _SAID:
            why = f"no shipped {kind} model matches this code and config"
    elif entry.get("key") != config_dict(config):
        why = f"shipped {name} was made with another config"
    elif not path.exists() or file_sha256(path) != entry.get("sha256"):
        why = f"shipped {name} is missing or does not match its sha256"
    else:
        return path
    if why:
        _SAID.add(kind)
        print(f"[occfau] {why}: training it instead (run `make models` to remake the shipped models)")
    return None


def _read_safetensors(path: Path) -> dict:
    """What ``tools/ship_models.py`` wrote: tensors ``<group>/<name>`` plus JSON metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        state = json.loads(meta.get("json", "{}"))
        for key in f.keys():
            group, name = key.split("/", 1)
            state.setdefault(group, {})[name] = f.get_tensor(key)
    dtypes = json.loads(meta.get("dtypes", "{}"))
    for group in state.values():  # fp16 shipped weights come back in the dtype they were trained in
        if isinstance(group, dict):
            for name, t in group.items():
                if torch.is_tensor(t) and name in dtypes:
                    group[name] = t.to(getattr(torch, dtypes[name].removeprefix("torch.")))
    return state


def array_fingerprint(array: np.ndarray) -> str:
    """Short content hash of an array (shape, dtype, bytes): the key of anything computed from it."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    h.update(array.tobytes())
    return h.hexdigest()[:16]


def state_fingerprint(state: dict) -> str:
    """Short content hash of a state dict (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}{tuple(tensor.shape)}{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Short content hash of a model's weights: the key of anything computed from the model. A
    model loaded from a shipped fp16 file, unchanged since, answers with the fingerprint of the
    float32 weights it was trained as, so what was keyed by those is found."""
    actual = state_fingerprint(model.state_dict())
    trained, loaded = getattr(model, "_occfau_shipped_from", (None, None))
    return trained if trained and loaded == actual else actual


def save_npz(arrays: dict, config: dict, path: Path) -> None:
    """Named arrays plus their config as ``.npz`` (a ``save`` for :func:`load_or_build`)."""
    with Path(path).open("wb") as f:
        np.savez(f, config=np.array(json.dumps(config)), **arrays)


def load_npz(path: Path) -> tuple[dict, dict]:
    """``(arrays, config)`` as :func:`save_npz` wrote them."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "config"}, json.loads(str(z["config"]))


def save_model(obj: tuple[torch.nn.Module, dict], config: dict, path: Path) -> None:
    """``(model, history)`` with its config as ``{"model", "history", "config"}``."""
    model, history = obj
    torch.save({"model": model.state_dict(), "history": history, "config": config}, path)
