"""Every AU dataset behind one interface: SynthFACS in memory, BP4D, DISFA or any CSV on disk.

An :class:`AUDataset` has ``labels`` (int8 ``(N, n_au)``: 1 present, 0 absent, -1 unknown, masked
out of losses and metrics), ``aus`` (the AU of each column), ``subjects`` and three
subject-exclusive ``parts``: ``fold(k)`` tests part 4-k and trains on the other two, so no face is
in both. ``ds[i]`` is ``{"image": float32 (3, S, S) in [0, 1], "labels", "subject", "index"}``.
:class:`ArrayDataset` keeps uint8 images in memory (SynthFACS); :class:`FileDataset` reads image
files lazily, each checked with an error naming the file. The loaders live in
:mod:`occfau_lib.loaders` and :mod:`occfau_lib.synthfacs`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .aus import au_labels, au_set
from .patches import to_tensor

Parts = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def default_parts(subjects: Sequence[str]) -> Parts:
    """Deal the sorted unique subjects round-robin into 3 parts (for datasets without official ones)."""
    unique = sorted({str(s) for s in subjects})
    return tuple(tuple(unique[j::3]) for j in range(3))


class AUDataset(torch.utils.data.Dataset):
    """Images with AU labels, subject ids and three subject-exclusive parts. Subclasses store the
    images (``_image(i)``); ``meta`` holds extra per-sample arrays that follow every subset."""

    _per_sample: tuple[str, ...] = ("labels", "subjects")

    def __init__(self, labels: np.ndarray, subjects: Sequence[str], aus: Sequence[int], name: str, image_size: int,
                 parts: Parts | None = None, meta: dict[str, np.ndarray] | None = None):
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
            raise ValueError(f"{self.name}: labels have shape {labels.shape}, expected {expected} "
                             f"(one row per subject id, one column per AU in {au_labels(self.aus)})")
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
        image = to_tensor(self._image(i))  # (3, S, S)
        return {
            "image": image,
            "labels": torch.from_numpy(self.labels[i].astype(np.float32)),  # (n_au,)
            "subject": str(self.subjects[i]),
            "index": int(i),
        }

    def _image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def batch_images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 ``(len(rows), S, S, 3)``."""
        return np.stack([self._image(int(i)) for i in rows])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, {len(self)} images of {self.image_size}px, "
                f"{len(np.unique(self.subjects))} subjects, AUs {list(self.aus)})")

    def subset(self, indices: Sequence[int] | np.ndarray) -> AUDataset:
        """The same kind of dataset restricted to ``indices`` (positions or a mask); parts are kept."""
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
            raise ValueError(f"{self.name} has no labels for {au_labels(missing)}; its AUs are {au_labels(self.aus)}")
        new = copy.copy(self)
        new.aus = aus
        new.labels = self.labels[:, [self.aus.index(a) for a in aus]]
        return new

    def with_subjects(self, subjects: Sequence[str]) -> AUDataset:
        """The samples of ``subjects`` (none: ValueError "empty split")."""
        wanted = [subjects] if isinstance(subjects, str) else [str(s) for s in subjects]
        mask = np.isin(self.subjects, wanted)
        if not mask.any():
            raise ValueError(f"empty split: {self.name} has no sample of subject(s) {sorted(wanted)}")
        return self.subset(mask)

    def fold_rows(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions ``(train, test)`` of fold ``k``: fold 1 tests part 3, fold 2 part 2, fold 3 part 1."""
        if k not in (1, 2, 3):
            raise ValueError(f"fold k must be 1, 2 or 3, got {k!r}")
        test_part = 3 - k  # index into self.parts
        train_subjects = [s for j, part in enumerate(self.parts) if j != test_part for s in part]
        train = np.flatnonzero(np.isin(self.subjects, train_subjects))
        test = np.flatnonzero(np.isin(self.subjects, list(self.parts[test_part])))
        if not len(train) or not len(test):
            raise ValueError(f"empty split: fold {k} of {self.name} has {len(train)} training and {len(test)} "
                             "test rows")
        return train, test

    def fold(self, k: int) -> tuple[AUDataset, AUDataset]:
        """``(train, test)`` datasets of subject-exclusive fold ``k`` (rows: :meth:`fold_rows`)."""
        train, test = self.fold_rows(k)
        return self.subset(train), self.subset(test)

    def positive_rate(self) -> np.ndarray:
        """Fraction of present labels per AU over known ones (nan if none is known)."""
        known = (self.labels >= 0).sum(axis=0)
        present = (self.labels == 1).sum(axis=0)
        return np.where(known > 0, present / np.maximum(known, 1), np.nan)

    def unknown_count(self) -> np.ndarray:
        return (self.labels == -1).sum(axis=0)


class ArrayDataset(AUDataset):
    """uint8 images ``(N, S, S, 3)`` in memory, shared by subsets (they keep row numbers only)."""

    _per_sample = AUDataset._per_sample + ("_rows",)

    def __init__(self, images: np.ndarray, labels: np.ndarray, subjects: Sequence[str], aus: Sequence[int], name: str,
                 parts: Parts | None = None, meta: dict[str, np.ndarray] | None = None):
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
        return self._images[self._rows]

    def _image(self, i: int) -> np.ndarray:
        return self._images[self._rows[i]]

    def batch_images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._images[self._rows[np.asarray(rows, np.int64)]]


class FileDataset(AUDataset):
    """Images read from files on access: each must exist, decode, be RGB (never converted) and
    ``image_size`` square after its EXIF orientation (other square sizes resized with ``resize``).
    ``skipped_frames`` counts labelled frames a loader dropped for lack of an image."""

    _per_sample = AUDataset._per_sample + ("paths",)

    def __init__(self, paths: Sequence[str | Path], labels: np.ndarray, subjects: Sequence[str], aus: Sequence[int],
                 name: str, image_size: int, parts: Parts | None = None,
                 resize: bool = False, meta: dict[str, np.ndarray] | None = None):
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
                ImageOps.exif_transpose(img, in_place=True)  # upright as viewers show it (EXIF orientation)
                if img.mode != "RGB":
                    raise ValueError(f"{path}: expected a 3-channel RGB image, found mode {img.mode!r} "
                                     f"with {len(img.getbands())} channel(s)")
                width, height = img.size
                if width != height:
                    raise ValueError(f"{path}: expected a square {size}x{size} image, found {width}x{height}")
                if width != size:
                    if not self.resize:
                        raise ValueError(f"{path}: expected {size}x{size} image, found {width}x{height} "
                                         "(pass resize=True to resize square images)")
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)  # (S, S, 3)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.name}: image file not found: {path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{path}: image file is corrupt or cannot be decoded ({err})") from err

    def key(self) -> dict:
        """This dataset in the cache keys of what is trained on it: fingerprints of the labels and
        of every file's path, size and modification time, so changed data is never reused."""
        labels = hashlib.sha256(self.labels.tobytes())
        labels.update(json.dumps([list(self.aus), self.subjects.tolist(), self.parts]).encode())
        files = hashlib.sha256()
        for path in self.paths:
            st = os.stat(path)
            files.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"dataset": self.name, "n": len(self), "image_size": self.image_size, "resize": bool(self.resize),
                "labels": labels.hexdigest()[:16], "images": files.hexdigest()[:16]}

    def batch_images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode a batch's files on :data:`LOAD_WORKERS` threads (PIL releases the GIL), in order."""
        from concurrent.futures import ThreadPoolExecutor

        rows = [int(i) for i in rows]
        if LOAD_WORKERS <= 1 or len(rows) < 2:
            return super().batch_images(rows)
        with ThreadPoolExecutor(min(LOAD_WORKERS, len(rows))) as pool:
            return np.stack(list(pool.map(self._image, rows)))


LOAD_WORKERS = min(8, os.cpu_count() or 1)
