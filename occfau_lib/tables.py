"""Label tables on disk: UTF-8 text and CSV files read with errors that name the file and row, AU
header columns, and the generic CSV dataset (:func:`load_csv`); the BP4D and DISFA loaders use them.

**Any dataset listed in a CSV** (``load_csv(path, image_size)``), one row per image::

    image,subject,AU1,AU2,AU12,part      # "part" (1, 2 or 3) is optional
    faces/a_0001.png,a,1,0,,1            # image path: absolute or relative to the CSV's folder

Labels are 0 or 1, and empty, -1 or 9 for unknown. How AU columns are recognised (``AU12``,
``AU_12``, ``au 12`` ...; OpenFace's ``AU12_r`` is no label; an AU look-alike is an error naming it):
``docs/command-line.md``. Without a ``part`` column, subjects are dealt into three parts by
:func:`data.default_parts`.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .aus import ALL_AUS, au_labels, au_set, parse_au_label
from .data import FileDataset

#: An AU column of a generic CSV (``AU12``, ``AU_12``, ``AU 12``, ``AU-12``), and one with a suffix
#: (OpenFace's ``AU12_r`` intensities and ``AU12_c`` predictions): not labels.
AU_COLUMN = re.compile(r"(?i)au[ _-]?(\d+)")
SUFFIXED_AU_COLUMN = re.compile(r"(?i)au[ _-]?(\d+)[ _-]?[a-z]\w*")
#: Names that look like an AU column but are neither of the above (``AU__12``, ``AU.12``, ``12``).
AU_LOOKALIKE = re.compile(r"(?i)\d+|au[\W_]*\d.*")


def read_text(path: Path) -> str:
    """A label file's UTF-8 text (a byte-order mark accepted); another encoding is a ValueError naming the line."""
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\0" in data:
        raise ValueError(f"{path}: UTF-16 text (or NUL bytes); save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte {data[err.start:err.start + 1]!r}: "
                         "Latin-1 or Windows-1252?); save it as UTF-8") from None


def read_table(path: Path) -> list[tuple[int, list[str]]]:
    """The non-empty rows of a CSV as ``(row number, cells)``."""
    rows = csv.reader(io.StringIO(read_text(path), newline=""))
    return [(n, row) for n, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]


def check_ragged(path: Path, table: list[tuple[int, list[str]]]) -> None:
    width = len(table[0][1])
    for n, row in table[1:]:
        if len(row) != width:
            raise ValueError(f"{path}, row {n}: {len(row)} cells but the header has {width} "
                             "(a missing or extra comma?)")


def au_columns(path: Path, header: Sequence[str], candidates: Sequence[int]) -> dict[int, int]:
    """AU -> column index of the header cells at ``candidates``; two columns for one AU are an error."""
    columns: dict[int, int] = {}
    for j in candidates:
        try:
            au = parse_au_label(header[j])
        except ValueError as err:
            raise ValueError(f"{path}, header: {err}") from None
        if au in columns:
            raise ValueError(f"{path}: columns {header[columns[au]]!r} and {header[j]!r} both label AU{au}; "
                             "keep one")
        columns[au] = j
    return columns


def _csv_label(value: str, where: str) -> int:
    value = value.strip()
    try:
        number = float(value) if value else -1.0
    except ValueError:
        number = None  # not a number: reported just below
    if number not in (0, 1, -1, 9):
        raise ValueError(f"{where}: label {value!r} is not 0, 1 or unknown (empty, -1, 9)")
    return -1 if number in (-1, 9) else int(number)


def _csv_au_columns(csv_path: Path, header: list[str]) -> dict[int, int]:
    """AU -> column of a generic CSV; a column that looks like an AU but is not read is explained, never skipped."""
    plain = [j for j, c in enumerate(header) if AU_COLUMN.fullmatch(c)]
    columns = au_columns(csv_path, header, plain)
    suffixed = [c for c in header if SUFFIXED_AU_COLUMN.fullmatch(c)]
    odd = [c for c in header if AU_LOOKALIKE.fullmatch(c) and not AU_COLUMN.fullmatch(c) and c not in suffixed]
    if odd:
        raise ValueError(f"{csv_path}: column(s) {odd} look like AU labels but are not named like one; name "
                         "them AU<number> (AU12, AU_12 or AU 12)")
    unread = [c for c in suffixed if int(SUFFIXED_AU_COLUMN.fullmatch(c).group(1)) not in columns]
    if unread:
        raise ValueError(
            f"{csv_path}: column(s) {unread} are not occurrence labels. OpenFace-style '_r' columns are "
            "intensities (0-5) and '_c' columns its own predictions: for ground truth, add a column named "
            "like 'AU12' holding 1 (present), 0 (absent) or empty (unknown), e.g. intensity >= 2 -> 1")
    if suffixed:
        warnings.warn(f"{csv_path}: column(s) {suffixed} are not read (the plain AU columns are)", stacklevel=3)
    unknown = [header[j] for a, j in columns.items() if a not in ALL_AUS]
    if unknown:
        raise ValueError(f"{csv_path}: unknown AU column(s) {unknown}; known AUs are {au_labels(ALL_AUS)}")
    if not columns:
        raise ValueError(f"{csv_path}: no AU label column (named like AU12) among {header}")
    return columns


def _image_path(csv_path: Path, image: str, where: str) -> Path:
    try:
        return (csv_path.parent / image).resolve()  # absolute paths survive the join
    except (OSError, RuntimeError) as err:  # a symlink loop, a name too long
        raise ValueError(f"{where}: image {image!r} cannot be resolved ({err})") from None


def load_csv(csv_path: str | Path, image_size: int, aus: str | Sequence[int] | None = None, resize: bool = False,
             name: str | None = None) -> FileDataset:
    """Any dataset listed in a CSV (format in the module docstring); ``aus=None`` keeps every AU column."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV file not found: {csv_path}")
    table = read_table(csv_path)
    if not table:
        raise ValueError(f"{csv_path}: empty file")
    header = [c.strip() for c in table[0][1]]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ValueError(f"{csv_path}: column(s) {repeated} appear more than once in the header")
    for column in ("image", "subject"):
        if column not in header:
            raise ValueError(f"{csv_path}: missing column {column!r}")
    columns = _csv_au_columns(csv_path, header)
    aus = au_set(tuple(a for a in ALL_AUS if a in columns) if aus is None else aus)
    missing = [f"AU{a}" for a in aus if a not in columns]
    if missing:
        raise ValueError(f"{csv_path}: missing label column(s) {missing}")
    if len(table) < 2:
        raise ValueError(f"{csv_path}: no rows")
    check_ragged(csv_path, table)
    col = {c: j for j, c in enumerate(header)}
    paths, subjects, labels, parts_of = [], [], [], []
    row_of: dict[Path, tuple[int, str]] = {}
    for n, row in table[1:]:
        image, subject = row[col["image"]].strip(), row[col["subject"]].strip()
        for what, value in (("image", image), ("subject", subject)):
            if not value:
                raise ValueError(f"{csv_path}, row {n}: empty {what!r} cell")
        path = _image_path(csv_path, image, f"{csv_path}, row {n}")
        if path in row_of:
            first, who = row_of[path]
            leak = f" under subjects {who!r} and {subject!r} (a train/test leak)" if who != subject else ""
            raise ValueError(f"{csv_path}, row {n}: image {image!r} is already listed in row {first}{leak}")
        row_of[path] = (n, subject)
        paths.append(path)
        subjects.append(subject)
        labels.append([_csv_label(row[columns[a]], f"{csv_path}, row {n}, column {header[columns[a]]}") for a in aus])
        if "part" in col:
            parts_of.append(row[col["part"]].strip())
    parts = None
    if parts_of:
        bad = sorted(set(parts_of) - {"1", "2", "3"})
        if bad:
            raise ValueError(f"{csv_path}: column 'part' must be 1, 2 or 3, found {bad}")
        parts = tuple(tuple(sorted({s for s, p in zip(subjects, parts_of) if p == str(k)})) for k in (1, 2, 3))
    return FileDataset(paths, np.array(labels, np.int8).reshape(-1, len(aus)), subjects, aus,
                       name or csv_path.stem, image_size, parts, resize)  # labels (N, n_au)
