"""Tiny BP4D, DISFA and CSV trees laid out as the datasets are distributed, with random pixels.

Nothing licensed: the folder layouts and label formats of the real datasets, filled with noise
images and random labels, so the loaders and the command line can be exercised end to end.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from occfau_lib.aus import BP4D_AUS, DISFA_AUS

#: Two subjects of each official part, so every fold has training and test subjects.
BP4D_SUBJECTS = ("F001", "M007", "M011", "F003", "F007", "F015")
DISFA_SUBJECTS = ("SN001", "SN002", "SN013", "SN018", "SN003", "SN029")


def noise_image(path: Path, size: int, rng: np.random.Generator) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def bp4d_tree(root: Path, size: int = 32, frames: int = 4, tasks=("T1", "T2"), seed: int = 0) -> Path:
    """``root/AUCoding/AU_OCC/<S>_<T>.csv`` (every BP4D occurrence column) and ``root/img/<S>/<T>/<f>.jpg``."""
    rng = np.random.default_rng(seed)
    columns = sorted(set(BP4D_AUS) | {5, 9, 11, 13, 16, 18, 19, 20, 22, 27, 28})  # the files hold more AUs
    for subject in BP4D_SUBJECTS:
        for task in tasks:
            first = int(rng.integers(1, 500))  # BP4D's frames start anywhere in the video
            lines = ["0," + ",".join(str(a) for a in columns)]
            for f in range(first, first + frames):
                lines.append(",".join([str(f)] + [str(v) for v in rng.integers(0, 2, len(columns))]))
                noise_image(root / "img" / subject / task / f"{f}.jpg", size, rng)
            label_file = root / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text("\n".join(lines) + "\n")
    return root


def disfa_tree(root: Path, size: int = 32, frames: int = 8, seed: int = 0) -> Path:
    """``root/ActionUnit_Labels/<S>/<S>_au<k>.txt`` (frames from 1, intensities 0-5) and
    ``root/img/<S>/<i>.png`` numbered from 0 as ME-GraphAU's preprocessing writes them."""
    rng = np.random.default_rng(seed)
    for subject in DISFA_SUBJECTS:
        for au in DISFA_AUS:
            label_file = root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text("".join(f"{f},{int(rng.integers(0, 6))}\n" for f in range(1, frames + 1)))
        for i in range(frames):
            noise_image(root / "img" / subject / f"{i}.png", size, rng)
    return root


def csv_tree(root: Path, size: int = 32, per_subject: int = 8, aus=(1, 2, 4, 6, 12), seed: int = 0) -> Path:
    """``root/labels.csv`` (image, subject, AU columns, part) with images under ``root/faces/``."""
    rng = np.random.default_rng(seed)
    lines = ["image,subject," + ",".join(f"AU{a}" for a in aus) + ",part"]
    for s in range(6):
        for i in range(per_subject):
            name = f"faces/s{s}_{i}.png"
            noise_image(root / name, size, rng)
            labels = ",".join(str(v) for v in rng.integers(0, 2, len(aus)))
            lines.append(f"{name},s{s},{labels},{s % 3 + 1}")
    path = root / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
