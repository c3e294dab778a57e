"""Labelled faces on disk: BP4D, DISFA and any CSV, read, validated and returned as a FileDataset.

BP4D and DISFA are licensed and never shipped: point a loader at the folder you have. Each
loader takes the layout the dataset is distributed in, the one ME-GraphAU's preprocessing leaves,
or explicit ``labels=`` / ``images=`` paths. Images are square RGB face crops (``resize=True``
scales other square sizes). Every label file is checked first, a problem an error naming the file
and row; frames with a label but no image (or the reverse) are counted in a warning.

**BP4D** (``load_bp4d(root)``): occurrence files ``<Subject>_<Task>.csv`` and frames per task::

    root/AUCoding/AU_OCC/F001_T1.csv   # as distributed (or root/AU_OCC/, or labels=...)
    root/img/F001/T1/2440.jpg          # <Subject>/<Task>/<frame>.jpg|.png (or root/images/, images=...)

  Each CSV has a header row whose first cell names the frame column (usually ``0``) and whose
  other cells are AU numbers; then one row per frame with 0 (absent), 1 (present) or 9 (unknown,
  loaded as -1). Image names are the frame numbers of the CSV, zero-padded or not.

**DISFA** (``load_disfa(root)``): intensity files per subject and AU, and the left-camera frames::

    root/ActionUnit_Labels/SN001/SN001_au1.txt   # lines "frame,intensity", frames counted from 1
    root/img/SN001/0.png                         # <Subject>/<n>.png|.jpg (or root/images/, images=...)

  ``numbering``: ``0`` maps label frame f to image f-1 (ME-GraphAU's preprocessing), ``1`` to f,
  ``"auto"`` (default) picks per subject the rule under which more frames line up (a tie is
  0-based; the 1-based rule is announced in a warning). An AU is present from intensity
  ``threshold`` (default 2).

**Any other dataset** (``load_csv(path, image_size)``): :mod:`occfau_lib.tables`.

Both licensed datasets use the official subject-exclusive parts (``BP4D_PARTS``, ``DISFA_PARTS``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from . import synthfacs
from .aus import BP4D_AUS, DISFA_AUS, au_labels, au_set
from .config import Profile, get_profile
from .data import IMAGE_SUFFIXES, AUDataset, FileDataset, Parts
from .tables import au_columns, check_ragged, load_csv, read_table, read_text

#: Official BP4D subject-exclusive parts (41 subjects) used by the 3-fold protocol.
BP4D_PARTS: Parts = (
    ("F001", "M007", "F018", "F008", "F002", "M004", "F010",
     "F009", "M012", "M001", "F016", "M014", "F023", "M008"),
    ("M011", "F003", "M010", "M002", "F005", "F022", "M018",
     "M017", "F013", "M016", "F020", "F011", "M013", "M005"),
    ("F007", "F015", "F006", "F019", "M006", "M009", "F012",
     "M003", "F004", "F021", "F017", "M015", "F014"),
)
#: Official DISFA subject-exclusive parts (27 subjects) used by the 3-fold protocol.
DISFA_PARTS: Parts = (
    ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
)
DATASETS = ("synthfacs", "bp4d", "disfa", "csv")
#: Where the loaders look when ``labels=`` / ``images=`` are not given, first match first.
BP4D_LABEL_DIRS = ("AU_OCC", "AUCoding/AU_OCC")
DISFA_LABEL_DIRS = ("ActionUnit_Labels",)
IMAGE_DIRS = ("images", "img")


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} directory not found: {path}")
    return path


def _sub_dir(root: Path, given: str | Path | None, candidates: Sequence[str], what: str) -> Path:
    """``given`` (relative to ``root`` or absolute), else the first existing candidate under ``root``."""
    if given is not None:
        return _require_dir(root / given, what)  # an absolute ``given`` replaces root
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    tried = ", ".join(str(root / name) for name in candidates)
    raise FileNotFoundError(f"{what} directory not found: tried {tried} (or pass its path explicitly)")


def frame_files(directory: Path) -> dict[int, Path]:
    """Frame number -> image file in ``directory``; ``0001.jpg`` and ``1.png`` are both frame 1."""
    frames: dict[int, Path] = {}
    if not directory.is_dir():
        return frames
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isdigit():
            frame = int(path.stem)
            if frame in frames:
                raise ValueError(f"two images for frame {frame}: {frames[frame]} and {path}")
            frames[frame] = path
    return frames


def _frame_range(frames) -> str:
    frames = sorted(frames)
    return f"{len(frames)} (frames {frames[0]}..{frames[-1]})" if frames else "0"


def _read_bp4d_file(csv_path: Path, aus: tuple[int, ...]) -> dict[int, list[int]]:
    """Frame -> labels (1/0/-1 for ``aus``) of one ``<Subject>_<Task>.csv``, every row checked."""
    table = read_table(csv_path)
    if not table:
        raise ValueError(f"{csv_path}: empty label file")
    check_ragged(csv_path, table)
    header = table[0][1]
    columns = au_columns(csv_path, header, range(1, len(header)))
    missing = [a for a in aus if a not in columns]
    if missing:
        raise ValueError(f"{csv_path}: no column for {au_labels(missing)}")
    out: dict[int, list[int]] = {}
    first_row: dict[int, int] = {}
    for n, row in table[1:]:
        if not row[0].strip().isdigit():
            raise ValueError(f"{csv_path}, row {n}: expected a frame number in the first cell, got {row[0]!r}")
        frame = int(row[0])
        if frame in out:
            raise ValueError(f"{csv_path}, row {n}: frame {frame} is labelled twice (first in row {first_row[frame]})")
        values = [row[columns[a]].strip() for a in aus]
        for a, value in zip(aus, values):
            if value not in ("0", "1", "9"):
                raise ValueError(f"{csv_path}, row {n}, column AU{a}: label {value!r} is not 0, 1 or 9")
        out[frame], first_row[frame] = [-1 if v == "9" else int(v) for v in values], n
    return out


def load_bp4d(root: str | Path, image_size: int = 224, aus: str | Sequence[int] = BP4D_AUS, resize: bool = False,
              labels: str | Path | None = None, images: str | Path | None = None) -> FileDataset:
    """BP4D: ``<labels>/<Subject>_<Task>.csv`` and ``<images>/<Subject>/<Task>/<frame>``."""
    root = _require_dir(Path(root), "BP4D root")
    aus = au_set(aus)
    label_dir = _sub_dir(root, labels, BP4D_LABEL_DIRS, "BP4D label (AU_OCC)")
    image_dir = _sub_dir(root, images, IMAGE_DIRS, "BP4D image")
    label_files = sorted(label_dir.glob("*.csv"))
    if not label_files:
        raise FileNotFoundError(f"no BP4D label files (<Subject>_<Task>.csv) in {label_dir}")
    paths, rows, subjects = [], [], []
    no_image, no_label = [], []
    frames_per_subject: dict[str, int] = {}
    for csv_path in label_files:
        subject, _, task = csv_path.stem.partition("_")
        if not task:
            raise ValueError(f"{csv_path}: label file name must be <Subject>_<Task>.csv")
        labelled = _read_bp4d_file(csv_path, aus)
        frames = frame_files(image_dir / subject / task)
        frames_per_subject[subject] = frames_per_subject.get(subject, 0) + len(frames)
        no_image += [f"{subject}/{task}/{f}" for f in labelled if f not in frames]
        no_label += [f"{subject}/{task}/{f}" for f in frames if f not in labelled]
        for frame, values in labelled.items():
            if frame in frames:
                paths.append(frames[frame])
                rows.append(values)
                subjects.append(subject)
    for subject, n_images in frames_per_subject.items():
        if n_images == 0:
            raise FileNotFoundError(
                f"BP4D subject {subject} has labels but no frame images under {image_dir / subject}")
    _warn_unmatched("BP4D", no_image, no_label)
    dataset = FileDataset(paths, np.array(rows, np.int8).reshape(-1, len(aus)), subjects, aus, "BP4D", image_size,
                          BP4D_PARTS, resize)  # labels (N, n_au)
    dataset.skipped_frames = len(no_image)
    return dataset


def _warn_unmatched(name: str, no_image: list[str], no_label: list[str]) -> None:
    if not no_image and not no_label:
        return
    parts = []
    if no_image:
        parts.append(f"{len(no_image)} labelled frame(s) have no image (skipped; first: {no_image[:3]})")
    if no_label:
        parts.append(f"{len(no_label)} image(s) have no label (unused; first: {no_label[:3]})")
    warnings.warn(f"{name}: " + "; ".join(parts), stacklevel=3)


def read_intensities(path: Path) -> dict[int, int]:
    """Frame -> intensity (0..5) of one DISFA ``<Subject>_au<k>.txt`` file, every line checked."""
    if not path.is_file():
        raise FileNotFoundError(f"DISFA label file not found: {path}")
    out: dict[int, int] = {}
    first_line: dict[int, int] = {}
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            frame, intensity = (int(v) for v in line.split(","))
        except ValueError:
            raise ValueError(f"{path}, line {n}: expected 'frame,intensity', got {line!r}") from None
        if not 0 <= intensity <= 5:
            raise ValueError(f"{path}, line {n}: intensity {intensity} is outside 0..5")
        if frame in out:
            raise ValueError(f"{path}, line {n}: frame {frame} is labelled twice (first on line {first_line[frame]})")
        out[frame], first_line[frame] = intensity, n
    return out


def image_offset(label_frames, image_frames, numbering: int | str) -> int:
    """``image number - label frame`` for one DISFA subject under ``numbering`` (0, 1 or "auto")."""
    if numbering in (0, 1):
        return int(numbering) - 1
    if numbering != "auto":
        raise ValueError(f"DISFA numbering must be 0, 1 or 'auto'; got {numbering!r}")
    labels, images = set(label_frames), set(image_frames)
    from0 = len({f - 1 for f in labels} & images)  # ME-GraphAU: label frame f -> (f-1).png
    from1 = len(labels & images)  # label frame f -> f.png
    return 0 if from1 > from0 else -1


def load_disfa(root: str | Path, image_size: int = 224, aus: str | Sequence[int] = DISFA_AUS, resize: bool = False,
               threshold: int = 2, labels: str | Path | None = None, images: str | Path | None = None,
               numbering: int | str = "auto") -> FileDataset:
    """DISFA (layouts and ``numbering``: the module docstring); present from intensity ``threshold``."""
    if isinstance(threshold, bool) or threshold not in range(1, 6):
        raise ValueError(f"DISFA threshold must be an intensity 1..5 (2 is usual); got {threshold!r}")
    root = _require_dir(Path(root), "DISFA root")
    aus = au_set(aus)
    label_root = _sub_dir(root, labels, DISFA_LABEL_DIRS, "DISFA label (ActionUnit_Labels)")
    image_root = _sub_dir(root, images, IMAGE_DIRS, "DISFA image")
    subject_dirs = sorted(p for p in label_root.iterdir() if p.is_dir())
    if not subject_dirs:
        raise FileNotFoundError(f"no DISFA subject folders (e.g. SN001/) in {label_root}")
    paths, rows, subjects = [], [], []
    no_image, no_label, from1 = [], [], []
    for subject_dir in subject_dirs:
        subject = subject_dir.name
        columns, frames = [], None
        for a in aus:
            label_file = subject_dir / f"{subject}_au{a}.txt"
            intensity = read_intensities(label_file)
            if frames is None:
                frames, first_file = sorted(intensity), label_file
            elif sorted(intensity) != frames:
                raise ValueError(f"{label_file}: frames do not match those of {first_file}")
            columns.append([intensity[f] for f in frames])
        present = (np.array(columns).T >= threshold).astype(np.int8)  # (n_frames, n_au)
        image_of = frame_files(image_root / subject)
        if not image_of:
            raise FileNotFoundError(f"DISFA subject {subject} has labels but no frame images in {image_root / subject}")
        offset = image_offset(frames, image_of, numbering)
        if numbering == "auto" and offset == 0:
            from1.append(subject)
        matched = {f + offset for f in frames} & set(image_of)
        if not matched:
            raise ValueError(f"DISFA {subject}: no label frame has an image under the "
                             f"{offset + 1}-based rule: label frames {_frame_range(frames)}, "
                             f"images {_frame_range(image_of)} in {image_root / subject}")
        no_image += [f"{subject}/{f}" for f in frames if f + offset not in image_of]
        labelled = set(frames)
        no_label += [f"{subject}/{image_of[i].name}" for i in sorted(image_of) if i - offset not in labelled]
        for frame, label in zip(frames, present):
            if frame + offset in image_of:
                paths.append(image_of[frame + offset])
                rows.append(label)
                subjects.append(subject)
    if from1:
        warnings.warn(f"DISFA: the images of {len(from1)} subject(s) ({', '.join(from1[:5])}) are numbered from 1 "
                      "like the label frames, so label frame f -> f.png (detected: more frames line up that way "
                      "than under ME-GraphAU's 0-based rule f -> (f-1).png); pass numbering=1 to say so and silence "
                      "this, or numbering=0 to force the 0-based rule", stacklevel=2)
    _warn_unmatched("DISFA", no_image, no_label)
    dataset = FileDataset(paths, np.array(rows, np.int8).reshape(-1, len(aus)), subjects, aus, "DISFA", image_size,
                          DISFA_PARTS, resize)  # labels (N, n_au)
    dataset.skipped_frames = len(no_image)
    return dataset


def load_dataset(name: str, root: str | Path | None = None, profile: str | Profile | None = None,
                 **kwargs) -> AUDataset:
    """``"synthfacs"``, ``"bp4d"``, ``"disfa"`` or ``"csv"`` (``root``: the CSV file). ``profile`` sizes
    the SynthFACS world and sets a file dataset's ``image_size`` unless given; ``kwargs`` go to the loader."""
    key = name.lower()
    if key == "synthfacs":
        return synthfacs.build_dataset(profile, **kwargs)
    loaders = {"bp4d": load_bp4d, "disfa": load_disfa, "csv": load_csv}
    if key not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if root is None:
        raise ValueError(f"dataset {name!r} needs root (its folder, or for 'csv' the CSV file)")
    if profile is not None and "image_size" not in kwargs:
        resolved = profile if isinstance(profile, Profile) else get_profile(profile)
        kwargs["image_size"] = resolved.data.img_size
    return loaders[key](root, **kwargs)
