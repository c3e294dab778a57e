"""Files and folders: atomic writes, JSON records, folders checked before any work, OS errors as one line.

Imports no torch, so the notebook runner (``tools/run_notebooks.py``) stays light.
"""
from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Callable

_TMP = re.compile(r"^\..+\.(\d+)\.tmp$")  # the temporary name atomic_write uses: .<name>.<pid>.tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


def remove_stale_tmp(folder: Path) -> int:
    """Delete the temporary files that killed writers left in ``folder``; returns how many."""
    stale = [tmp for tmp in Path(folder).glob(".*.tmp") if (m := _TMP.match(tmp.name))
             and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1)))]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp_path)``, then the result moved onto ``path`` in one step: a killed run never
    leaves a half-written file (and the next write removes its temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(record: dict, path: str | Path) -> Path:
    """A record as indented JSON, written atomically."""
    text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def read_json(path: str | Path) -> dict:
    """What :func:`write_json` wrote; anything but a JSON object is a ValueError naming the file."""
    try:
        record = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def commit() -> str:
    """The checked-out commit, ``+dirty`` if tracked files were changed (``unknown`` outside git)."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    try:
        head, dirty = git("rev-parse", "--short=12", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def describe(err: OSError) -> str:
    """An OS error as one line naming its file: ``/data/x: Permission denied``."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def writable_folder(path: str | Path, what: str, create: bool = True) -> Path:
    """``path`` as a folder this process can write into (made when ``create``; else the nearest
    existing folder is checked). Anything in the way is a ValueError starting with ``what`` (the
    setting it came from) and the path."""
    path = Path(path)
    try:
        existing = path
        while not existing.exists() and existing.parent != existing:  # where it would be made
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder", str(existing))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable", str(existing))
        if create:
            path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror if err.filename == str(path) else describe(err)
        raise ValueError(f"{what} {path}: {reason}") from None
    return path
