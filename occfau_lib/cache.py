"""One cache for every expensive artefact: datasets, model checkpoints, cached features.

Taught in notebook 00 (datasets) and used by every later notebook. An artefact lives at a path
that contains the hash of the config that produced it; the file also stores that config. So:
- a config change gives a new path (nothing stale is ever loaded by accident);
- a file whose stored config differs from the one asked for, or that cannot be read, is
  rebuilt with a warning;
- files are written atomically (:func:`files.atomic_write`): an interrupted run never leaves a
  half-written artefact behind;
- every checkpoint is read by :func:`read_state` (``weights_only`` torch files, or safetensors): a
  file it cannot read is a :class:`CorruptFile` error naming it, which the cache turns into
  "rebuilt with a warning" and which reaches the user as is when the file was theirs;
- models shipped with the repository (``data/models/``, safetensors + a manifest of keys and
  sha256) come first, used only when their key matches the current code and config exactly.
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


def data_root() -> Path:
    """Where generated data and checkpoints live: ``$OCCFAU_DATA_DIR``, else the repo's ``data/``.

    Outside a source checkout (a plain ``pip install``) it falls back to ``~/.cache/occfau``.
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / "data"
    return Path.home() / ".cache" / "occfau"


def config_dict(config: Any) -> dict:
    """A JSON-ready dict of a (possibly nested) dataclass or mapping, without the settings that are
    None: None means "off", so an optional setting added later leaves every existing key as it was."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return _without_none(json.loads(json.dumps(config, sort_keys=True, default=str)))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def config_hash(config: Any, length: int = 12) -> str:
    """Stable short hash of a config: same fields and values -> same hash, on every machine."""
    text = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class CorruptFile(ValueError):
    """A checkpoint that cannot be read (truncated, not a PyTorch file, not a dict); the message names it."""


def read_state(path: str | Path) -> dict:
    """The dict saved at ``path`` with ``torch.save``, loaded onto the CPU with ``weights_only=True``
    (no code is ever unpickled). Anything unreadable raises :class:`CorruptFile` naming the file."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, random bytes, an unpickler refusing the content...
        reason = (str(err).strip().splitlines() or [""])[0][:120]  # torch's messages run to paragraphs
        raise CorruptFile(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise CorruptFile(f"{path}: expected a checkpoint dict, found {type(state).__name__}")
    return state


def load_or_build(
    path: Path,
    config: Any,
    build: Callable[[], Any],
    save: Callable[[Any, dict, Path], None],
    load: Callable[[Path], tuple[Any, dict]],
) -> Any:
    """Load the artefact at ``path`` if its stored config equals ``config``, else build and save it.

    ``save(obj, config_dict, tmp_path)`` writes the artefact with its config;
    ``load(path) -> (obj, stored_config_dict)`` reads both back (checkpoints through
    :func:`read_state`); a file ``load`` cannot read is rebuilt with a warning.
    """
    path = Path(path)
    wanted = config_dict(config)
    if path.exists():  # the common case, without a lock: files are only ever replaced whole
        try:
            obj, stored = load(path)
        except Exception:  # dealt with (warned about, rebuilt) under the lock below
            pass
        else:
            if stored == wanted:
                return obj
    with build_lock(path):  # another process building the same artefact finishes first; we then load it
        if path.exists():
            try:
                obj, stored = load(path)
            except Exception as err:  # a corrupt or truncated file is rebuilt, never used
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
    """Hold an exclusive lock on ``path``'s artefact while it is checked, built and saved.

    Two processes on one data folder (two notebooks open in JupyterLab, or ``make demo`` running
    two notebooks at a time) may ask for the same dataset or model at once: without the lock both
    would build it, and two trainings would share one epoch checkpoint. With it the second waits,
    then loads what the first saved. The lock is an advisory ``flock`` on ``.<name>.lock`` beside the
    artefact (released by the kernel if its holder dies), removed by its holder when done, so no
    file is left behind; a waiter that wakes up holding a removed file takes the new one instead.
    Nested builds lock other paths (a student's lock is taken before its teacher's, never the
    reverse), so no two processes wait on each other. No lock under ``torchrun`` (``WORLD_SIZE`` >
    1): its ranks build every model together, each step an all-reduce, and a rank waiting for the
    lock of another that waits for it in the all-reduce would never return. Nor where ``fcntl`` does
    not exist (Windows).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        fcntl = None
    if fcntl is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    while True:
        handle = open(lock, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break  # we hold the lock file that is on disk
        handle.close()  # its holder removed it while we waited: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before unlocking, so every waiter retries on a fresh file
        handle.close()  # closing releases the lock


def checkpoint_path(kind: str, config: Any) -> Path:
    """Where a model of ``kind`` ("mae", "teacher", "student") with this config lives:
    ``data/cache/<kind>-<hash>.pt``."""
    return data_root() / "cache" / f"{kind}-{config_hash(config)}.pt"


class NotShipped(RuntimeError):
    """Raised inside :func:`forbid_training` when a model would have to be trained."""


_RECORD: list | None = None  # (kind, config, local path) of every model obtained, while recording
_FORBIDDEN = False


@contextlib.contextmanager
def recording():
    """Collect ``(kind, config, cache path)`` of every model :func:`checkpoint_or_train` returns
    inside the block (how ``make models`` learns what the notebooks use)."""
    global _RECORD
    before, _RECORD = _RECORD, []
    try:
        yield _RECORD
    finally:
        _RECORD = before


@contextlib.contextmanager
def not_recorded():
    """Inside the block nothing is collected by an enclosing :func:`recording` (models a result is
    computed from, when only the result is shipped)."""
    global _RECORD
    before, _RECORD = _RECORD, None
    try:
        yield
    finally:
        _RECORD = before


@contextlib.contextmanager
def forbid_training():
    """Inside the block a model that is neither shipped nor cached raises :class:`NotShipped`
    instead of training (the test that every shipped model still matches the code)."""
    global _FORBIDDEN
    before, _FORBIDDEN = _FORBIDDEN, True
    try:
        yield
    finally:
        _FORBIDDEN = before


def checkpoint_or_train(
    kind: str,
    config: dict,
    train: Callable[[Path], Any],
    save: Callable[[Any, dict, Path], None],
    load: Callable[[Path], tuple[Any, dict]],
    resume: bool = True,
) -> Any:
    """The one checkpoint-or-train of every model (MAE, teacher, student).

    First a model shipped with the repository (:func:`shipped`: ``data/models/``, listed in its
    manifest with this exact config and sha256) is loaded. Else the model stored under
    :func:`checkpoint_path` is loaded when its stored config equals ``config`` (a corrupt or
    stale file is rebuilt with a warning: :func:`load_or_build`); otherwise ``train(partial_path)``
    trains it, writing an epoch checkpoint to ``<kind>-<hash>.partial.pt`` that an interrupted run
    continues from (:class:`train.EpochCheckpoint`) unless ``resume=False``, which starts over. The
    finished model is saved atomically and its epoch checkpoint removed. A model loaded from a
    shipped fp16 file remembers the fingerprint of its float32 weights (``_occfau_shipped_from``,
    read by :func:`model_fingerprint`), so what is keyed by it (students by their teacher, probes by
    their encoder) finds the shipped files too.
    """
    path = checkpoint_path(kind, config)
    ready = shipped(kind, config)
    if ready is not None:
        result, _ = load(ready)
        trained = read_manifest().get(ready.name, {}).get("fingerprint")
        model = result[0] if isinstance(result, tuple) else result
        if trained and isinstance(model, torch.nn.Module):  # fp16 on disk: keep the float32 identity
            model._occfau_shipped_from = (trained, state_fingerprint(model.state_dict()))
    else:
        if _FORBIDDEN and not path.exists():
            raise NotShipped(f"{kind} {config_hash(config)} is neither shipped nor cached; run `make models`")
        partial = path.with_name(path.stem + ".partial.pt")
        if not resume:
            partial.unlink(missing_ok=True)
        result = load_or_build(path, config, lambda: train(partial), save, load)
        partial.unlink(missing_ok=True)
    if _RECORD is not None:
        _RECORD.append((kind, config, ready or path))
    return result


# --------------------------------------------------------------------------------------------
# Models shipped with the repository: data/models/*.safetensors + manifest.json
# --------------------------------------------------------------------------------------------
MODELS_ENV = "OCCFAU_MODELS_DIR"
#: ``OCCFAU_RETRAIN=1``: ignore the shipped models and train everything with the committed code (what
#: you train is still cached in ``data/cache``, so a second run, or an interrupted one, continues).
RETRAIN_ENV = "OCCFAU_RETRAIN"
MANIFEST = "manifest.json"


def models_root() -> Path:
    """Where shipped models live: ``$OCCFAU_MODELS_DIR``, else the repository's ``data/models``
    (inside :func:`models_from`, its folder)."""
    if _MODELS_ROOT is not None:
        return _MODELS_ROOT
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return Path(__file__).resolve().parent.parent / "data" / "models"


def shipped_name(kind: str, config: Any) -> str:
    """The file name a shipped model of ``kind`` with this config has in the models folder."""
    return f"{kind}-{config_hash(config)}.safetensors"


def read_manifest(root: Path | None = None) -> dict:
    """``{file name: {kind, key, sha256, bytes, command, seconds, fp16}}`` of the shipped models
    (the manifest's ``files``; it also records the profile, commit and CPU time of ``make models``)."""
    path = Path(root or models_root()) / MANIFEST
    return json.loads(path.read_text()).get("files", {}) if path.exists() else {}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_SAID: set = set()  # kinds whose "no shipped model matches" line was printed
_MODELS_ROOT: Path | None = None  # set by models_from


@contextlib.contextmanager
def models_from(root: str | Path):
    """Inside the block shipped models are looked up in ``root`` (``make models --out``)."""
    global _MODELS_ROOT
    before, _MODELS_ROOT = _MODELS_ROOT, Path(root)
    try:
        yield
    finally:
        _MODELS_ROOT = before


def shipped(kind: str, config: dict) -> Path | None:
    """The shipped file of this model when the manifest lists it with exactly ``config`` as its
    key and the file's sha256 matches; else None, with one line saying why when shipped models
    of this kind exist (they were made with other code or settings: ``make models`` remakes them).
    With ``OCCFAU_RETRAIN=1`` nothing shipped is used (:data:`RETRAIN_ENV`)."""
    if os.environ.get(RETRAIN_ENV, "") not in ("", "0"):
        if "retrain" not in _SAID:
            _SAID.add("retrain")
            print(f"[occfau] {RETRAIN_ENV}={os.environ[RETRAIN_ENV]}: shipped models ignored, training with this code")
        return None
    manifest = read_manifest()
    name = shipped_name(kind, config)
    entry = manifest.get(name)
    path = models_root() / name
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


def write_safetensors(state: dict, path: Path, half: bool = False) -> None:
    """Write a checkpoint dict as safetensors: its tensor dicts (``model``, ``head`` ...) as
    tensors named ``<group>/<name>`` (float32 weights in fp16 with ``half``; float64 results such as
    the data-regime scores stay exact), everything else as JSON metadata."""
    from safetensors.torch import save_file

    tensors, rest = {}, {}
    for group, value in state.items():
        if isinstance(value, dict) and value and all(torch.is_tensor(v) for v in value.values()):
            for name, t in value.items():
                t = t.detach().cpu().contiguous()
                tensors[f"{group}/{name}"] = t.half() if half and t.dtype == torch.float32 else t  # weights only
        else:
            rest[group] = value
    dtypes = {k: str(v.dtype) for k, v in state.get("model", state.get("head", {})).items()} if half else {}
    save_file(tensors, str(path), metadata={"json": json.dumps(rest), "dtypes": json.dumps(dtypes)})


def _read_safetensors(path: Path) -> dict:
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
    """Short content hash of an array (its shape, dtype and bytes): the cache key of anything
    computed from it (features of these rows, an embedding of these features)."""
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
    """Short content hash of a model's weights (names, shapes and values): the cache key of
    anything computed from the model, so retrained or swapped weights are never confused.

    A model loaded from a shipped fp16 file answers with the fingerprint of the float32 weights
    it was trained as (recorded by ``make models``), as long as its weights are still exactly the
    ones loaded: the students distilled from a teacher are keyed by the teacher as trained, and a
    fresh clone finds them instead of retraining because its copy of the teacher is rounded."""
    actual = state_fingerprint(model.state_dict())
    trained, loaded = getattr(model, "_occfau_shipped_from", (None, None))
    return trained if trained and loaded == actual else actual


def save_npz(arrays: dict, config: dict, path: Path) -> None:
    """Write named arrays plus their config to an ``.npz`` (the ``save`` of :func:`load_or_build`)."""
    with Path(path).open("wb") as f:
        np.savez(f, config=np.array(json.dumps(config)), **arrays)


def load_npz(path: Path) -> tuple[dict, dict]:
    """Read what :func:`save_npz` wrote: (arrays, config) (the ``load`` of :func:`load_or_build`)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "config"}, json.loads(str(z["config"]))



def save_model(obj: tuple[torch.nn.Module, dict], config: dict, path: Path) -> None:
    """Write ``(model, history)`` with its config as ``{"model", "history", "config"}`` (the ``save``
    of :func:`load_or_build` for a trained model; read back with :func:`read_state`)."""
    model, history = obj
    torch.save({"model": model.state_dict(), "history": history, "config": config}, path)
