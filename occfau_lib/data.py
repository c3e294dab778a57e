"""Every AU dataset behind one interface: SynthFACS in memory, BP4D, DISFA or any CSV on disk.

Taught in notebook 00. Whatever the source, a dataset is an :class:`AUDataset`:

* ``labels``: int8 array ``(N, n_au)``, 1 = present, 0 = absent, -1 = unknown. Unknown labels
  are masked out of losses and metrics, never read as "absent".
* ``aus``: the AU number of each label column (see :mod:`occfau_lib.aus`).
* ``subjects``: the subject id of each sample, and ``parts``: three subject-exclusive lists of
  subjects. ``fold(k)`` gives the standard 3-fold protocol: fold 1 tests part 3, fold 2 tests
  part 2, fold 3 tests part 1, and each trains on the other two parts, so no face is seen in both
  training and testing.
* ``ds[i]`` is ``{"image": float32 (3, S, S) in [0, 1], "labels": float32 (n_au,) of 1/0/-1,
  "subject": str, "index": int}``, ready for a ``torch.utils.data.DataLoader``.

Two storage kinds: :class:`ArrayDataset` keeps uint8 images in memory (SynthFACS), and
:class:`FileDataset` reads image files lazily, checking each one (missing, corrupt, not RGB,
wrong size) with an error that names the file.

BP4D and DISFA are licensed and never shipped; obtain them from their owners, then lay them out
as below and call :func:`load_dataset` (or the loader directly). Images must already be face
crops, square and RGB; pass ``resize=True`` to scale square crops to ``image_size``.

BP4D (``load_bp4d(root)``), the official occurrence files plus one folder of frames per task::

    root/AU_OCC/F001_T1.csv            # <Subject>_<Task>.csv, as distributed with BP4D
    root/images/F001/T1/0001.jpg       # <Subject>/<Task>/<frame>.jpg or .png

  Each CSV has a header row whose first cell names the frame column (usually ``0``) and whose
  other cells are AU numbers (``1,2,4,5,6,7,...``); then one row per frame with 0 (absent),
  1 (present) or 9 (unknown, loaded as -1). Frame file names are the frame number, zero-padded
  or not (``0001.jpg`` and ``1.jpg`` are both frame 1). Labelled frames without an image are
  skipped and counted in ``ds.skipped_frames``.

DISFA (``load_disfa(root)``), the official intensity files plus the left-camera frames::

    root/ActionUnit_Labels/SN001/SN001_au1.txt   # one file per AU, lines "frame,intensity"
    root/images/SN001/0001.jpg                   # <Subject>/<frame>.jpg or .png (left camera)

  Intensities run 0..5; an AU is present when its intensity is at least ``threshold`` (2, the
  usual choice). All AU files of a subject must list the same frames.

Both use the official subject-exclusive parts (``BP4D_PARTS``, ``DISFA_PARTS``), so results
compare with the literature; a tree holding only some subjects gives smaller parts.

Any other dataset (``load_csv(path, image_size)``), one CSV row per image::

    image,subject,AU1,AU2,AU12,part      # "part" (1, 2 or 3) is optional
    faces/a_0001.png,a,1,0,,1            # image path: absolute or relative to the CSV's folder

  AU columns are named ``AU<number>``; values 0 or 1, and empty, -1 or 9 for unknown. Without a
  ``part`` column, subjects are dealt into three parts by :func:`default_parts`.
"""
from __future__ import annotations

import copy
import csv
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .aus import ALL_AUS, BP4D_AUS, DISFA_AUS, au_labels, au_set, parse_au_label
from .config import Profile, get_profile

Parts = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

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

#: Image file types the loaders pick up as frames.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Names accepted by :func:`load_dataset`.
DATASETS = ("synthfacs", "bp4d", "disfa", "csv")


def default_parts(subjects: Sequence[str]) -> Parts:
    """Deal the sorted unique subjects round-robin into 3 parts (for datasets without official ones)."""
    unique = sorted({str(s) for s in subjects})
    return tuple(tuple(unique[j::3]) for j in range(3))


class AUDataset(torch.utils.data.Dataset):
    """Images with AU occurrence labels, subject ids and three subject-exclusive parts.

    Subclasses store the images and implement ``_image(i)``; everything else (label handling,
    splits, statistics) lives here. ``meta`` holds optional extra per-sample arrays (e.g. AU
    intensities or head pose), each with N rows; they follow every subset.
    """

    #: Attributes with one entry per sample, sliced together by :meth:`subset`.
    _per_sample: tuple[str, ...] = ("labels", "subjects")

    def __init__(
        self,
        labels: np.ndarray,
        subjects: Sequence[str],
        aus: Sequence[int],
        name: str,
        image_size: int,
        parts: Parts | None = None,
        meta: dict[str, np.ndarray] | None = None,
    ):
        self.name = str(name)
        self.aus = au_set(aus)
        self.image_size = int(image_size)
        self.subjects = np.asarray([str(s) for s in subjects], dtype=str)  # (N,)
        self.labels = self._check_labels(labels)  # (N, n_au) int8
        self.parts = self._check_parts(default_parts(self.subjects) if parts is None else parts)
        self.meta = self._check_meta(meta or {})

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        expected = (len(self.subjects), len(self.aus))
        if labels.shape != expected:
            raise ValueError(
                f"{self.name}: labels have shape {labels.shape}, expected {expected} "
                f"(one row per subject id, one column per AU in {au_labels(self.aus)})"
            )
        bad = np.setdiff1d(np.unique(labels), [-1, 0, 1])
        if bad.size:
            raise ValueError(f"{self.name}: label values must be 1, 0 or -1 (unknown), found {bad.tolist()}")
        return labels.astype(np.int8)

    def _check_parts(self, parts: Sequence[Sequence[str]]) -> Parts:
        if len(parts) != 3:
            raise ValueError(f"{self.name}: expected 3 subject-exclusive parts, got {len(parts)}")
        parts = tuple(tuple(str(s) for s in part) for part in parts)
        listed = [s for part in parts for s in part]
        repeated = sorted({s for s in listed if listed.count(s) > 1})
        if repeated:
            raise ValueError(f"{self.name}: subject(s) {repeated} appear in more than one part")
        unplaced = sorted(set(self.subjects.tolist()) - set(listed))
        if unplaced:
            raise ValueError(f"{self.name}: subject(s) {unplaced} belong to none of the dataset's 3 parts")
        return parts

    def _check_meta(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        meta = {key: np.asarray(value) for key, value in meta.items()}
        for key, value in meta.items():
            if len(value) != len(self):
                raise ValueError(f"{self.name}: meta[{key!r}] has {len(value)} rows, expected {len(self)}")
        return meta

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        # torch.tensor copies, so read-only sources (PIL buffers, memory-mapped caches) are fine.
        image = torch.tensor(self._image(i)).permute(2, 0, 1).float().div(255)  # (3, S, S)
        return {
            "image": image,
            "labels": torch.from_numpy(self.labels[i].astype(np.float32)),  # (n_au,)
            "subject": str(self.subjects[i]),
            "index": int(i),
        }

    def _image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 ``(S, S, 3)``."""
        raise NotImplementedError

    def batch_images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images of ``rows`` as one uint8 array ``(len(rows), S, S, 3)`` (a training batch)."""
        return np.stack([self._image(int(i)) for i in rows])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, {len(self)} images of {self.image_size}px, "
            f"{len(np.unique(self.subjects))} subjects, AUs {list(self.aus)})"
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> AUDataset:
        """The same kind of dataset restricted to ``indices`` (positions or a boolean mask).

        ``aus``, ``parts`` and ``name`` are kept, so folds of a subset still line up.
        """
        idx = np.asarray(indices)
        if idx.dtype != bool:
            idx = idx.astype(np.int64)
        new = copy.copy(self)
        for attr in self._per_sample:
            setattr(new, attr, getattr(self, attr)[idx])
        new.meta = {key: value[idx] for key, value in self.meta.items()}
        return new

    def select_aus(self, aus: str | Sequence[int]) -> AUDataset:
        """Keep only the label columns of ``aus``, in that order (``"bp4d"``, ``[12, 1]``, ...)."""
        aus = au_set(aus)
        missing = [a for a in aus if a not in self.aus]
        if missing:
            raise ValueError(
                f"{self.name} has no labels for {au_labels(missing)}; its AUs are {au_labels(self.aus)}"
            )
        new = copy.copy(self)
        new.aus = aus
        new.labels = self.labels[:, [self.aus.index(a) for a in aus]]
        return new

    def with_subjects(self, subjects: Sequence[str]) -> AUDataset:
        """The samples of ``subjects``; raises ValueError("empty split: ...") if there are none."""
        wanted = [subjects] if isinstance(subjects, str) else [str(s) for s in subjects]
        mask = np.isin(self.subjects, wanted)
        if not mask.any():
            raise ValueError(f"empty split: {self.name} has no sample of subject(s) {sorted(wanted)}")
        return self.subset(mask)

    def fold(self, k: int) -> tuple[AUDataset, AUDataset]:
        """``(train, test)`` of subject-exclusive fold ``k``: fold 1 tests part 3, 2 part 2, 3 part 1."""
        if k not in (1, 2, 3):
            raise ValueError(f"fold k must be 1, 2 or 3, got {k!r}")
        test = 3 - k  # index into self.parts
        train_subjects = [s for j, part in enumerate(self.parts) if j != test for s in part]
        return self.with_subjects(train_subjects), self.with_subjects(self.parts[test])

    def positive_rate(self) -> np.ndarray:
        """Fraction of present labels per AU ``(n_au,)``, over known labels only (nan if none known)."""
        known = (self.labels >= 0).sum(axis=0)
        present = (self.labels == 1).sum(axis=0)
        return np.where(known > 0, present / np.maximum(known, 1), np.nan)

    def unknown_count(self) -> np.ndarray:
        """Number of unknown (-1) labels per AU ``(n_au,)``."""
        return (self.labels == -1).sum(axis=0)


class ArrayDataset(AUDataset):
    """Images held in memory as uint8 ``(N, S, S, 3)``: the SynthFACS world.

    Subsets share the original image array (they only keep row numbers), so folds of a large
    world cost no copy; ``images`` gathers a subset's images when asked for.
    """

    _per_sample = AUDataset._per_sample + ("_rows",)

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        subjects: Sequence[str],
        aus: Sequence[int],
        name: str,
        parts: Parts | None = None,
        meta: dict[str, np.ndarray] | None = None,
    ):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"{name}: images must be uint8, got {images.dtype}")
        if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"{name}: images must have shape (N, S, S, 3) (square RGB), got {images.shape}")
        if len(subjects) != len(images):
            raise ValueError(f"{name}: {len(images)} images but {len(subjects)} subject ids")
        self._images = images  # (N_all, S, S, 3), shared by subsets
        self._rows = np.arange(len(images))  # (N,) row of each sample in self._images
        super().__init__(labels, subjects, aus, name, images.shape[1], parts, meta)

    @property
    def images(self) -> np.ndarray:
        """This dataset's images, uint8 ``(N, S, S, 3)``: a copy gathered from the shared array."""
        return self._images[self._rows]

    def _image(self, i: int) -> np.ndarray:
        return self._images[self._rows[i]]

    def batch_images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._images[self._rows[np.asarray(rows, np.int64)]]


class FileDataset(AUDataset):
    """Images read from files on each access, checked so a bad file fails loudly and by name.

    Every file must exist when the dataset is built (FileNotFoundError otherwise). On access a
    file must decode, be 3-channel RGB (grayscale or RGBA is an error, never converted silently)
    and be ``image_size`` square; with ``resize=True`` other square sizes are resized (bilinear,
    antialiased), while non-square images are always an error. ``skipped_frames`` counts labelled
    frames a loader dropped because their image was absent.
    """

    _per_sample = AUDataset._per_sample + ("paths",)

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: np.ndarray,
        subjects: Sequence[str],
        aus: Sequence[int],
        name: str,
        image_size: int,
        parts: Parts | None = None,
        resize: bool = False,
        meta: dict[str, np.ndarray] | None = None,
    ):
        self.paths = np.asarray([str(p) for p in paths], dtype=str)  # (N,)
        if len(self.paths) != len(subjects):
            raise ValueError(f"{name}: {len(self.paths)} image paths but {len(subjects)} subject ids")
        missing = [p for p in self.paths if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"{name}: {len(missing)} image file(s) not found, first: {missing[0]}")
        self.resize = resize
        self.skipped_frames = 0
        super().__init__(labels, subjects, aus, name, image_size, parts, meta)

    def _image(self, i: int) -> np.ndarray:
        path = self.paths[i]
        size = self.image_size
        try:
            with Image.open(path) as img:
                img.load()
                if img.mode != "RGB":
                    raise ValueError(
                        f"{path}: expected a 3-channel RGB image, found mode {img.mode!r} "
                        f"with {len(img.getbands())} channel(s)"
                    )
                width, height = img.size
                if width != height:
                    raise ValueError(f"{path}: expected a square {size}x{size} image, found {width}x{height}")
                if width != size:
                    if not self.resize:
                        raise ValueError(
                            f"{path}: expected {size}x{size} image, found {width}x{height} "
                            "(pass resize=True to resize square images)"
                        )
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)  # (S, S, 3)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.name}: image file not found: {path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{path}: image file is corrupt or cannot be decoded ({err})") from err

    def batch_images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode a batch's files on :data:`LOAD_WORKERS` threads (PIL releases the GIL while it
        decodes), in ``rows`` order: the same array as one by one, several times faster on many
        cores. The first bad file raises its own error."""
        from concurrent.futures import ThreadPoolExecutor

        rows = [int(i) for i in rows]
        if LOAD_WORKERS <= 1 or len(rows) < 2:
            return super().batch_images(rows)
        with ThreadPoolExecutor(min(LOAD_WORKERS, len(rows))) as pool:
            return np.stack(list(pool.map(self._image, rows)))


#: Threads that decode image files for one batch (:meth:`FileDataset.batch_images`).
LOAD_WORKERS = min(8, os.cpu_count() or 1)


def _frame_files(directory: Path) -> dict[int, Path]:
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


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} directory not found: {path}")
    return path


def load_bp4d(
    root: str | Path, image_size: int = 224, aus: str | Sequence[int] = BP4D_AUS, resize: bool = False
) -> FileDataset:
    """BP4D from the layout in the module docstring: AU_OCC/*.csv labels, images/<Subject>/<Task>/ frames."""
    root = _require_dir(Path(root), "BP4D root")
    aus = au_set(aus)
    label_files = sorted(_require_dir(root / "AU_OCC", "BP4D label").glob("*.csv"))
    if not label_files:
        raise FileNotFoundError(f"no BP4D label files (<Subject>_<Task>.csv) in {root / 'AU_OCC'}")
    paths, rows, subjects = [], [], []
    skipped = 0
    frames_per_subject: dict[str, int] = {}
    for csv_path in label_files:
        subject, _, task = csv_path.stem.partition("_")
        if not task:
            raise ValueError(f"{csv_path}: label file name must be <Subject>_<Task>.csv")
        with open(csv_path, newline="") as f:
            table = [row for row in csv.reader(f) if row]
        if not table:
            raise ValueError(f"{csv_path}: empty label file")
        columns = {parse_au_label(cell): j for j, cell in enumerate(table[0]) if j > 0}
        missing = [a for a in aus if a not in columns]
        if missing:
            raise ValueError(f"{csv_path}: no column for {au_labels(missing)}")
        images = _frame_files(root / "images" / subject / task)
        frames_per_subject[subject] = frames_per_subject.get(subject, 0) + len(images)
        for r, row in enumerate(table[1:], start=2):
            if len(row) != len(table[0]) or not row[0].strip().isdigit():
                raise ValueError(
                    f"{csv_path}, row {r}: expected a frame number and {len(table[0]) - 1} labels, got {row}"
                )
            values = [row[columns[a]].strip() for a in aus]
            for a, value in zip(aus, values):
                if value not in ("0", "1", "9"):
                    raise ValueError(f"{csv_path}, row {r}, column AU{a}: label {value!r} is not 0, 1 or 9")
            image = images.get(int(row[0]))
            if image is None:
                skipped += 1
                continue
            paths.append(image)
            rows.append([-1 if v == "9" else int(v) for v in values])
            subjects.append(subject)
    for subject, n_images in frames_per_subject.items():
        if n_images == 0:
            raise FileNotFoundError(
                f"BP4D subject {subject} has labels but no frame images under {root / 'images' / subject}"
            )
    labels = np.array(rows, dtype=np.int8).reshape(-1, len(aus))  # (N, n_au)
    dataset = FileDataset(paths, labels, subjects, aus, "BP4D", image_size, BP4D_PARTS, resize)
    dataset.skipped_frames = skipped
    return dataset


def _read_intensities(path: Path) -> tuple[list[int], list[int]]:
    """Frames and intensities (0..5) of one DISFA ``<Subject>_au<k>.txt`` file."""
    if not path.is_file():
        raise FileNotFoundError(f"DISFA label file not found: {path}")
    frames, intensities = [], []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            frame, intensity = (int(v) for v in line.split(","))
        except ValueError:
            raise ValueError(f"{path}, line {n}: expected 'frame,intensity', got {line!r}") from None
        if not 0 <= intensity <= 5:
            raise ValueError(f"{path}, line {n}: intensity {intensity} is outside 0..5")
        frames.append(frame)
        intensities.append(intensity)
    return frames, intensities


def load_disfa(
    root: str | Path,
    image_size: int = 224,
    aus: str | Sequence[int] = DISFA_AUS,
    resize: bool = False,
    threshold: int = 2,
) -> FileDataset:
    """DISFA from the layout in the module docstring; an AU is present iff its intensity >= ``threshold``."""
    root = _require_dir(Path(root), "DISFA root")
    aus = au_set(aus)
    label_root = _require_dir(root / "ActionUnit_Labels", "DISFA label")
    subject_dirs = sorted(p for p in label_root.iterdir() if p.is_dir())
    if not subject_dirs:
        raise FileNotFoundError(f"no DISFA subject folders (e.g. SN001/) in {label_root}")
    paths, rows, subjects = [], [], []
    skipped = 0
    for subject_dir in subject_dirs:
        subject = subject_dir.name
        columns, frames = [], None
        for a in aus:
            label_file = subject_dir / f"{subject}_au{a}.txt"
            au_frames, intensities = _read_intensities(label_file)
            if frames is None:
                frames, first_file = au_frames, label_file
            elif au_frames != frames:
                raise ValueError(f"{label_file}: frames do not match those of {first_file}")
            columns.append(intensities)
        present = (np.array(columns).T >= threshold).astype(np.int8)  # (n_frames, n_au)
        images = _frame_files(root / "images" / subject)
        if not images:
            raise FileNotFoundError(
                f"DISFA subject {subject} has labels but no frame images in {root / 'images' / subject}"
            )
        for frame, label in zip(frames, present):
            if frame not in images:
                skipped += 1
                continue
            paths.append(images[frame])
            rows.append(label)
            subjects.append(subject)
    labels = np.array(rows, dtype=np.int8).reshape(-1, len(aus))  # (N, n_au)
    dataset = FileDataset(paths, labels, subjects, aus, "DISFA", image_size, DISFA_PARTS, resize)
    dataset.skipped_frames = skipped
    return dataset


def _csv_label(value: str, where: str) -> int:
    """One generic-CSV label cell: 0/1, and empty, -1 or 9 for unknown (-1)."""
    value = value.strip()
    try:
        number = float(value) if value else -1.0
    except ValueError:
        number = None  # not a number: reported just below
    if number not in (0, 1, -1, 9):
        raise ValueError(f"{where}: label {value!r} is not 0, 1 or unknown (empty, -1, 9)")
    return -1 if number in (-1, 9) else int(number)


def load_csv(
    csv_path: str | Path,
    image_size: int,
    aus: str | Sequence[int] | None = None,
    resize: bool = False,
    name: str | None = None,
) -> FileDataset:
    """Any dataset listed in a CSV (format in the module docstring); ``aus=None`` keeps every AU column."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV file not found: {csv_path}")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        table = list(reader)
    for column in ("image", "subject"):
        if column not in header:
            raise ValueError(f"{csv_path}: missing column {column!r}")
    au_columns = {parse_au_label(c): c for c in header if re.fullmatch(r"(?i)au\d+", c.strip())}
    unknown = [au_columns[a] for a in au_columns if a not in ALL_AUS]
    if unknown:
        raise ValueError(f"{csv_path}: unknown AU column(s) {unknown}; known AUs are {au_labels(ALL_AUS)}")
    if aus is None:
        aus = tuple(a for a in ALL_AUS if a in au_columns)
    aus = au_set(aus)
    missing = [f"AU{a}" for a in aus if a not in au_columns]
    if missing:
        raise ValueError(f"{csv_path}: missing label column(s) {missing}")
    if not table:
        raise ValueError(f"{csv_path}: no rows")
    labels = np.array(
        [[_csv_label(row[au_columns[a]] or "", f"{csv_path}, row {r}, column {au_columns[a]}") for a in aus]
         for r, row in enumerate(table, start=2)],
        dtype=np.int8,
    )  # (N, n_au)
    paths = [csv_path.parent / row["image"] for row in table]  # absolute paths survive the join
    subjects = [row["subject"] for row in table]
    parts = None
    if "part" in header:
        part_of = [row["part"].strip() for row in table]
        bad = sorted(set(part_of) - {"1", "2", "3"})
        if bad:
            raise ValueError(f"{csv_path}: column 'part' must be 1, 2 or 3, found {bad}")
        parts = tuple(tuple(sorted({s for s, p in zip(subjects, part_of) if p == str(k)})) for k in (1, 2, 3))
    return FileDataset(paths, labels, subjects, aus, name or csv_path.stem, image_size, parts, resize)


def load_dataset(
    name: str, root: str | Path | None = None, profile: str | Profile | None = None, **kwargs
) -> AUDataset:
    """One entry point: ``"synthfacs"``, ``"bp4d"``, ``"disfa"`` or ``"csv"`` (``root`` = the CSV file).

    ``profile`` (a name or a :class:`~occfau_lib.config.Profile`) sizes the SynthFACS world, which
    needs no ``root``; for file datasets it sets ``image_size`` (unless given), so real images
    match what the profile's models expect. ``kwargs`` go to the loader.
    """
    key = name.lower()
    if key == "synthfacs":
        from occfau_lib import synthfacs

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
