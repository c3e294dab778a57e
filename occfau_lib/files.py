"""Folders the command lines write to, checked before any work, and OS errors as one line.

Used by the method's command line (:mod:`occfau_lib.cli`: the data folder and ``--out``) and the
notebook runner (``tools/run_notebooks.py``: the output and site folders). Imports no torch, so
the notebook runner stays light.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path


def describe(err: OSError) -> str:
    """An OS error as one line naming its file: ``/data/x: Permission denied``."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def writable_folder(path: str | Path, what: str, create: bool = True) -> Path:
    """``path`` as a folder this process can write into (made, with its parents, when ``create``).

    A path under a file, a folder that is not writable, a name the file system refuses (too long,
    a symlink loop) is a ValueError that starts with ``what`` (the setting it came from) and the
    path, so the user sees which setting to fix instead of a traceback from deep inside a run.
    With ``create=False`` nothing is made: the nearest existing folder is checked instead.
    """
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
