"""One cache for every expensive artefact: datasets, model checkpoints, cached features.

Taught in notebook 00 (datasets) and used by every later notebook. An artefact lives at a path
that contains the hash of the config that produced it; the file also stores that config. So:
- a config change gives a new path (nothing stale is ever loaded by accident);
- a file whose stored config differs from the one asked for, or that cannot be read, is
  rebuilt with a warning;
- files are written atomically (temporary file + ``os.replace``): an interrupted run never
  leaves a half-written artefact behind.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

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
    """A JSON-ready dict of a (possibly nested) dataclass or mapping."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def config_hash(config: Any, length: int = 12) -> str:
    """Stable short hash of a config: same fields and values -> same hash, on every machine."""
    text = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_or_build(
    path: Path,
    config: Any,
    build: Callable[[], Any],
    save: Callable[[Any, dict, Path], None],
    load: Callable[[Path], tuple[Any, dict]],
) -> Any:
    """Load the artefact at ``path`` if its stored config equals ``config``, else build and save it.

    ``save(obj, config_dict, tmp_path)`` writes the artefact with its config;
    ``load(path) -> (obj, stored_config_dict)`` reads both back.
    """
    path = Path(path)
    wanted = config_dict(config)
    if path.exists():
        try:
            obj, stored = load(path)
        except Exception as err:  # a corrupt or truncated file is rebuilt, never used
            warnings.warn(f"cannot read cached {path.name} ({err}); rebuilding it", stacklevel=2)
        else:
            if stored == wanted:
                return obj
            warnings.warn(f"cached {path.name} was made with a different config; rebuilding it", stacklevel=2)
    obj = build()
    atomic_write(path, lambda tmp: save(obj, wanted, tmp))
    return obj


def save_npz(arrays: dict, config: dict, path: Path) -> None:
    """Write named arrays plus their config to an ``.npz`` (the ``save`` of :func:`load_or_build`)."""
    import numpy as np

    with Path(path).open("wb") as f:
        np.savez(f, config=np.array(json.dumps(config)), **arrays)


def load_npz(path: Path) -> tuple[dict, dict]:
    """Read what :func:`save_npz` wrote: (arrays, config) (the ``load`` of :func:`load_or_build`)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "config"}, json.loads(str(z["config"]))
