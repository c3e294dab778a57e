"""Tests for occfau_lib.data and occfau_lib.loaders: the dataset interface, splits, and every loader on tiny
fake trees laid out as the datasets are distributed."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from occfau_lib import data, loaders
from occfau_lib.aus import BP4D_AUS, DISFA_AUS

S = 16  # image side of every fake tree
RNG = np.random.default_rng(0)


def write_image(path: Path, size: tuple[int, int] = (S, S), mode: str = "RGB") -> Path:
    """A small random image; the format follows the suffix (.jpg or .png)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    if channels == 1:
        pixels = pixels[..., 0]
    Image.fromarray(pixels, mode).save(path)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def array_dataset(n_subjects: int = 6, per_subject: int = 4, **kwargs) -> data.ArrayDataset:
    n = n_subjects * per_subject
    images = RNG.integers(0, 256, (n, S, S, 3), dtype=np.uint8)
    labels = RNG.integers(-1, 2, (n, 3)).astype(np.int8)
    subjects = [f"s{i // per_subject}" for i in range(n)]
    return data.ArrayDataset(images, labels, subjects, (1, 2, 12), "toy", **kwargs)


# ----- BP4D fake tree: F001 (part 1), M011 (part 2), F007 (part 3) -----

BP4D_HEADER = "0,1,2,4,5,6,7,9,10,11,12,13,14,15,16,17,18,19,20,22,23,24,27,28"


def bp4d_row(frame: int, au1: int = 0, au12: int = 0, other: int = 0) -> str:
    """A BP4D occurrence row: AU1 and AU12 set explicitly, every other AU column = ``other``."""
    values = {1: au1, 12: au12}
    return ",".join([str(frame)] + [str(values.get(int(a), other)) for a in BP4D_HEADER.split(",")[1:]])


@pytest.fixture
def bp4d_root(tmp_path: Path) -> Path:
    root = tmp_path / "bp4d"
    occ = root / "AU_OCC"
    # F001, two tasks, zero-padded jpg frames; frame 3 of T1 has no image (skipped).
    write_lines(occ / "F001_T1.csv", [BP4D_HEADER, bp4d_row(1, au1=1), bp4d_row(2, au12=9), bp4d_row(3)])
    write_lines(occ / "F001_T2.csv", [BP4D_HEADER, bp4d_row(10, au12=1)])
    for frame in ("0001", "0002"):
        write_image(root / "images" / "F001" / "T1" / f"{frame}.jpg")
    write_image(root / "images" / "F001" / "T2" / "0010.jpg")
    # M011: unpadded png frames.
    write_lines(occ / "M011_T1.csv", [BP4D_HEADER, bp4d_row(1, au1=1, au12=1, other=1), bp4d_row(2)])
    for frame in (1, 2):
        write_image(root / "images" / "M011" / "T1" / f"{frame}.png")
    # F007: one frame.
    write_lines(occ / "F007_T1.csv", [BP4D_HEADER, bp4d_row(5, au1=1, au12=1)])
    write_image(root / "images" / "F007" / "T1" / "005.png")
    return root


# ----- DISFA fake tree: SN001 (part 1), SN013 (part 2), SN003 (part 3) -----

def write_disfa_subject(root: Path, subject: str, intensities: dict[int, list[int]], frames=(1, 2, 3),
                        first_image: int = 0, images: str = "img"):
    """Label files for ``subject`` (AUs not in ``intensities`` are all 0; frames counted from 1 as
    DISFA's files do) and one png per frame, numbered from ``first_image`` (0: ME-GraphAU's rule)."""
    for au in DISFA_AUS:
        values = intensities.get(au, [0] * len(frames))
        write_lines(root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt",
                    [f"{f},{v}" for f, v in zip(frames, values)])
    for f in frames:
        write_image(root / images / subject / f"{f - 1 + first_image}.png")


@pytest.fixture
def disfa_root(tmp_path: Path) -> Path:
    root = tmp_path / "disfa"
    write_disfa_subject(root, "SN001", {1: [0, 1, 2], 12: [5, 3, 1]})
    write_disfa_subject(root, "SN013", {4: [2, 2, 0]})
    write_disfa_subject(root, "SN003", {26: [1, 4, 0]})
    return root


# ----- Generic CSV -----

@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    absolute = write_image(tmp_path / "elsewhere" / "c.png")
    for name in ("a1", "a2", "b1", "b2"):
        write_image(tmp_path / "set" / "faces" / f"{name}.png")
    # AU columns deliberately out of aus.py order; empty, -1 and 9 all mean unknown.
    return write_lines(tmp_path / "set" / "labels.csv", [
        "image,subject,AU12,AU1,extra",
        "faces/a1.png,a,1,0,x",
        "faces/a2.png,a,,1,x",
        "faces/b1.png,b,-1,1,x",
        "faces/b2.png,b,9,0,x",
        f"{absolute},c,0,0,x",
    ])


# ======================= helpers and parts =======================

def test_default_parts_deals_sorted_subjects_round_robin():
    assert data.default_parts(["e", "a", "d", "b", "a", "c"]) == (("a", "d"), ("b", "e"), ("c",))


@pytest.mark.parametrize("parts, sizes", [(loaders.BP4D_PARTS, (14, 14, 13)), (loaders.DISFA_PARTS, (9, 9, 9))])
def test_official_parts_are_three_disjoint_lists(parts, sizes):
    subjects = [s for part in parts for s in part]
    assert tuple(len(part) for part in parts) == sizes and len(set(subjects)) == sum(sizes)


# ======================= ArrayDataset and the base interface =======================

def test_getitem_returns_float_image_in_unit_range_and_labels():
    ds = array_dataset()
    item = ds[5]
    assert set(item) == {"image", "labels", "subject", "index"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, S, S)
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    torch.testing.assert_close(item["image"], torch.from_numpy(ds.images[5]).permute(2, 0, 1).float() / 255)
    assert item["labels"].dtype == torch.float32 and item["labels"].tolist() == ds.labels[5].tolist()
    assert item["subject"] == "s1" and item["index"] == 5
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, S, S) and batch["labels"].shape == (4, 3)


def test_array_dataset_attributes_and_default_parts():
    ds = array_dataset()
    assert len(ds) == 24 and ds.image_size == S and ds.aus == (1, 2, 12) and ds.name == "toy"
    assert ds.labels.dtype == np.int8 and ds.labels.shape == (24, 3)
    assert ds.subjects.shape == (24,) and ds.subjects[0] == "s0"
    assert ds.parts == (("s0", "s3"), ("s1", "s4"), ("s2", "s5"))


@pytest.mark.parametrize("change, message", [
    (dict(images=np.zeros((4, S, S, 3), np.float32)), "uint8"),
    (dict(images=np.zeros((4, S, S + 1, 3), np.uint8)), r"\(N, S, S, 3\)"),
    (dict(images=np.zeros((4, S, S, 1), np.uint8)), "square RGB"),
    (dict(images=np.zeros((4, S, S), np.uint8)), "square RGB"),
    (dict(subjects=["a"] * 3), "4 images but 3 subject ids"),
    (dict(labels=np.zeros((4, 2), np.int8)), r"labels have shape \(4, 2\), expected \(4, 3\)"),
    (dict(labels=np.full((4, 3), 2)), r"found \[2\]"),
    (dict(aus=(1, 2, 3)), "unknown AU"),
    (dict(meta={"pose": np.zeros((5, 3))}), r"meta\['pose'\] has 5 rows, expected 4"),
    (dict(parts=(("a",), (), ())), r"\['b'\] belong to none"),
    (dict(parts=(("a", "b"), ("b",), ())), r"\['b'\] appear in more than one part"),
    (dict(parts=(("a", "b"),)), "expected 3"),
])
def test_array_dataset_validation(change, message):
    args = dict(images=np.zeros((4, S, S, 3), np.uint8), labels=np.zeros((4, 3), np.int8),
                subjects=["a", "a", "b", "b"], aus=(1, 2, 12), name="toy") | change
    with pytest.raises(ValueError, match=message):
        data.ArrayDataset(**args)


def test_subset_keeps_type_parts_aus_and_slices_meta_without_copying_images():
    ds = array_dataset(meta={"intensity": np.arange(24 * 2).reshape(24, 2)})
    sub = ds.subset([7, 2])
    assert type(sub) is data.ArrayDataset and sub.parts == ds.parts and sub.aus == ds.aus
    assert len(sub) == 2 and sub.subjects.tolist() == ["s1", "s0"]
    np.testing.assert_array_equal(sub.labels, ds.labels[[7, 2]])
    np.testing.assert_array_equal(sub.images, ds.images[[7, 2]])
    np.testing.assert_array_equal(sub.meta["intensity"], [[14, 15], [4, 5]])
    torch.testing.assert_close(sub[1]["image"], ds[2]["image"])
    assert np.shares_memory(sub._images, ds._images)
    assert len(ds.subset(ds.subjects == "s3")) == 4 and len(ds) == 24  # boolean mask; original untouched


def test_select_aus_reorders_columns_and_names_missing_aus():
    ds = array_dataset()
    picked = ds.select_aus([12, 1])
    assert picked.aus == (12, 1)
    np.testing.assert_array_equal(picked.labels, ds.labels[:, [2, 0]])
    assert picked[0]["labels"].shape == (2,) and ds.aus == (1, 2, 12)
    with pytest.raises(ValueError, match=r"no labels for \['AU4', 'AU9'\]"):
        ds.select_aus([1, 4, 9])


@pytest.mark.parametrize("k, test_part", [(1, 2), (2, 1), (3, 0)])
def test_fold_is_subject_exclusive_and_tests_the_right_part(k, test_part):
    ds = array_dataset()
    train, test = ds.fold(k)
    assert set(test.subjects) == set(ds.parts[test_part])
    assert set(train.subjects) == set(ds.subjects) - set(ds.parts[test_part])
    assert len(train) + len(test) == len(ds)


@pytest.mark.parametrize("k", [0, 4, "1"])
def test_fold_rejects_k_outside_1_to_3(k):
    with pytest.raises(ValueError, match="fold k must be 1, 2 or 3"):
        array_dataset().fold(k)


def test_with_subjects_and_empty_split():
    ds = array_dataset()
    assert set(ds.with_subjects(["s2", "s4"]).subjects) == {"s2", "s4"}
    assert len(ds.with_subjects("s2")) == 4
    with pytest.raises(ValueError, match=r"empty split: .*\['nobody', 'x'\]"):
        ds.with_subjects(["x", "nobody"])


def test_positive_rate_ignores_unknown_and_unknown_count_counts_them():
    labels = np.array([[1, -1, -1], [0, -1, 1], [-1, -1, 1], [1, -1, 0]], np.int8)
    ds = data.ArrayDataset(np.zeros((4, S, S, 3), np.uint8), labels, ["a"] * 4, (1, 2, 12), "toy")
    np.testing.assert_allclose(ds.positive_rate(), [2 / 3, np.nan, 2 / 3])
    assert ds.unknown_count().tolist() == [1, 4, 1]


# ======================= BP4D =======================

def test_load_bp4d_end_to_end(bp4d_root):
    ds = loaders.load_bp4d(bp4d_root, image_size=S)
    assert isinstance(ds, data.FileDataset) and ds.name == "BP4D" and ds.aus == BP4D_AUS
    assert len(ds) == 6 and ds.skipped_frames == 1  # F001_T1 frame 3 has no image
    assert ds.labels.dtype == np.int8 and ds.labels.shape == (6, 12) and ds.parts == loaders.BP4D_PARTS
    images = bp4d_root / "images"
    by_path = {Path(p).relative_to(images).as_posix(): row for p, row in zip(ds.paths, ds.labels)}
    au1, au12 = BP4D_AUS.index(1), BP4D_AUS.index(12)
    assert set(by_path) == {"F001/T1/0001.jpg", "F001/T1/0002.jpg", "F001/T2/0010.jpg",
                            "M011/T1/1.png", "M011/T1/2.png", "F007/T1/005.png"}
    assert by_path["F001/T1/0001.jpg"][[au1, au12]].tolist() == [1, 0]
    assert by_path["F001/T1/0002.jpg"][au12] == -1  # 9 = unknown, not absent
    assert by_path["M011/T1/1.png"].tolist() == [1] * 12
    assert by_path["F007/T1/005.png"][[au1, au12]].tolist() == [1, 1]
    assert ds.unknown_count()[au12] == 1 and ds.unknown_count().sum() == 1
    item = ds[0]
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32


def test_bp4d_folds_follow_the_official_parts(bp4d_root):
    ds = loaders.load_bp4d(bp4d_root, image_size=S)
    train, test = ds.fold(1)  # tests part 3, which holds F007
    assert set(test.subjects) == {"F007"} and set(train.subjects) == {"F001", "M011"}
    assert set(ds.fold(3)[1].subjects) == {"F001"}
    only_two = ds.with_subjects(["F001", "M011"])
    with pytest.raises(ValueError, match="empty split"):
        only_two.fold(1)


def test_bp4d_selects_and_orders_requested_aus(bp4d_root):
    ds = loaders.load_bp4d(bp4d_root, image_size=S, aus=[12, 1])
    assert ds.aus == (12, 1) and ds.labels.shape == (6, 2)


def test_bp4d_missing_directories(tmp_path, bp4d_root):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        loaders.load_bp4d(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="AU_OCC"):
        loaders.load_bp4d(bp4d_root / "images")
    for csv_file in (bp4d_root / "AU_OCC").glob("*.csv"):
        csv_file.unlink()
    with pytest.raises(FileNotFoundError, match="no BP4D label files"):
        loaders.load_bp4d(bp4d_root)


def test_bp4d_subject_with_labels_but_no_images(bp4d_root):
    write_lines(bp4d_root / "AU_OCC" / "F002_T1.csv", [BP4D_HEADER, bp4d_row(1)])
    with pytest.raises(FileNotFoundError, match=r"F002 has labels but no frame images .*images.F002"):
        loaders.load_bp4d(bp4d_root, image_size=S)


def test_bp4d_missing_au_column_names_file_and_au(bp4d_root):
    header = BP4D_HEADER.replace(",23,", ",")
    write_lines(bp4d_root / "AU_OCC" / "M011_T1.csv", [header, "1" + ",0" * (len(header.split(",")) - 1)])
    with pytest.raises(ValueError, match=r"M011_T1\.csv: no column for \['AU23'\]"):
        loaders.load_bp4d(bp4d_root, image_size=S)


def test_bp4d_bad_label_value_names_file_row_and_column(bp4d_root):
    write_lines(bp4d_root / "AU_OCC" / "F007_T1.csv", [BP4D_HEADER, bp4d_row(5), bp4d_row(6, au12=2)])
    with pytest.raises(ValueError, match=r"F007_T1\.csv, row 3, column AU12: label '2'"):
        loaders.load_bp4d(bp4d_root, image_size=S)


def test_bp4d_subject_outside_official_parts(bp4d_root):
    write_lines(bp4d_root / "AU_OCC" / "X999_T1.csv", [BP4D_HEADER, bp4d_row(1)])
    write_image(bp4d_root / "images" / "X999" / "T1" / "1.jpg")
    with pytest.raises(ValueError, match=r"\['X999'\] belong to none"):
        loaders.load_bp4d(bp4d_root, image_size=S)


# ======================= DISFA =======================

def test_load_disfa_thresholds_intensity(disfa_root):
    ds = loaders.load_disfa(disfa_root, image_size=S)
    assert ds.name == "DISFA" and ds.aus == DISFA_AUS and ds.parts == loaders.DISFA_PARTS
    assert len(ds) == 9 and ds.skipped_frames == 0 and ds.unknown_count().sum() == 0
    sn001 = ds.with_subjects(["SN001"])
    assert sn001.labels[:, DISFA_AUS.index(1)].tolist() == [0, 0, 1]  # intensities 0, 1, 2
    assert sn001.labels[:, DISFA_AUS.index(12)].tolist() == [1, 1, 0]  # intensities 5, 3, 1
    lenient = loaders.load_disfa(disfa_root, image_size=S, threshold=1).with_subjects(["SN001"])
    assert lenient.labels[:, DISFA_AUS.index(1)].tolist() == [0, 1, 1]
    train, test = ds.fold(2)
    assert set(test.subjects) == {"SN013"} and set(train.subjects) == {"SN001", "SN003"}
    assert ds[0]["image"].shape == (3, S, S)


def test_disfa_skips_frames_without_images(disfa_root):
    (disfa_root / "img" / "SN003" / "1.png").unlink()  # label frame 2
    with pytest.warns(UserWarning, match=r"DISFA: 1 labelled frame\(s\) have no image .*SN003/2"):
        ds = loaders.load_disfa(disfa_root, image_size=S)
    assert len(ds) == 8 and ds.skipped_frames == 1


def test_disfa_missing_au_file_is_named(disfa_root):
    (disfa_root / "ActionUnit_Labels" / "SN013" / "SN013_au9.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"SN013_au9\.txt"):
        loaders.load_disfa(disfa_root, image_size=S)


def test_disfa_misaligned_frames_are_an_error(disfa_root):
    write_lines(disfa_root / "ActionUnit_Labels" / "SN003" / "SN003_au6.txt", ["1,0", "2,0"])
    with pytest.raises(ValueError, match=r"SN003_au6\.txt: frames do not match .*SN003_au1\.txt"):
        loaders.load_disfa(disfa_root, image_size=S)


def test_disfa_bad_intensity_and_missing_images(tmp_path, disfa_root):
    write_lines(disfa_root / "ActionUnit_Labels" / "SN001" / "SN001_au2.txt", ["1,0", "2,7", "3,0"])
    with pytest.raises(ValueError, match=r"SN001_au2\.txt, line 2: intensity 7"):
        loaders.load_disfa(disfa_root, image_size=S)
    write_disfa_subject(tmp_path / "d2", "SN002", {})
    for image in (tmp_path / "d2" / "img" / "SN002").iterdir():
        image.unlink()
    with pytest.raises(FileNotFoundError, match="SN002 has labels but no frame images"):
        loaders.load_disfa(tmp_path / "d2", image_size=S)
    with pytest.raises(FileNotFoundError, match="ActionUnit_Labels"):
        loaders.load_disfa(tmp_path)
    with pytest.raises(ValueError, match="threshold must be an intensity 1..5"):
        loaders.load_disfa(disfa_root, image_size=S, threshold=0)


# ======================= generic CSV =======================

def test_load_csv_end_to_end(csv_path):
    ds = loaders.load_csv(csv_path, image_size=S)
    assert ds.name == "labels" and ds.aus == (1, 12)  # aus.py order, not column order
    assert ds.labels.tolist() == [[0, 1], [1, -1], [1, -1], [0, -1], [0, 0]]
    assert ds.unknown_count().tolist() == [0, 3]
    assert ds.subjects.tolist() == ["a", "a", "b", "b", "c"]
    assert ds.parts == (("a",), ("b",), ("c",))
    assert ds[4]["image"].shape == (3, S, S)
    only12 = loaders.load_csv(csv_path, image_size=S, aus=[12], name="mine")
    assert only12.name == "mine" and only12.labels.tolist() == [[1], [-1], [-1], [-1], [0]]


def test_load_csv_part_column_sets_parts(tmp_path):
    for name in ("a", "b", "c"):
        write_image(tmp_path / f"{name}.png")
    path = write_lines(tmp_path / "p.csv",
                       ["image,subject,AU1,part", "a.png,a,1,3", "b.png,b,0,3", "c.png,c,0,1"])
    ds = loaders.load_csv(path, image_size=S)
    assert ds.parts == (("c",), (), ("a", "b"))
    assert set(ds.fold(1)[1].subjects) == {"a", "b"}
    with pytest.raises(ValueError, match="empty split"):
        ds.fold(2)
    write_lines(path, ["image,subject,AU1,part", "a.png,a,1,4"])
    with pytest.raises(ValueError, match=r"'part' must be 1, 2 or 3, found \['4'\]"):
        loaders.load_csv(path, image_size=S)


@pytest.mark.parametrize("lines, kwargs, message", [
    (["image,subject,AU1,AU3,AU99", "x.png,a,1,0,0"], {}, r"unknown AU column\(s\) \['AU3', 'AU99'\]"),
    (["path,subject,AU1", "x.png,a,1"], {}, "missing column 'image'"),
    (["image,person,AU1", "x.png,a,1"], {}, "missing column 'subject'"),
    (["image,subject,AU1", "x.png,a,1"], {"aus": [1, 12]}, r"missing label column\(s\) \['AU12'\]"),
    (["image,subject,AU1"], {}, "no rows"),
    (["image,subject,AU1", "x.png,a,1", "y.png,a,yes"], {}, r"row 3, column AU1: label 'yes'"),
])
def test_load_csv_errors_name_the_csv(tmp_path, lines, kwargs, message):
    write_image(tmp_path / "x.png")
    write_image(tmp_path / "y.png")
    path = write_lines(tmp_path / "bad.csv", lines)
    with pytest.raises(ValueError, match=rf"bad\.csv.*{message}"):
        loaders.load_csv(path, image_size=S, **kwargs)


def test_load_csv_missing_image_file_is_named(csv_path):
    (csv_path.parent / "faces" / "b1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"faces.b1\.png"):
        loaders.load_csv(csv_path, image_size=S)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        loaders.load_csv(csv_path.parent / "nope.csv", image_size=S)


# ======================= image checks on access =======================

def one_image_dataset(path: Path, image_size: int = S, resize: bool = False) -> data.FileDataset:
    return data.FileDataset([path], np.zeros((1, 1), np.int8), ["a"], (1,), "one", image_size, resize=resize)


def test_corrupt_image_is_named(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not a jpeg at all")
    with pytest.raises(ValueError, match=r"broken\.jpg: image file is corrupt or cannot be decoded"):
        one_image_dataset(path)[0]
    truncated = write_image(tmp_path / "cut.png")
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"cut\.png: image file is corrupt"):
        one_image_dataset(truncated)[0]


@pytest.mark.parametrize("mode, found", [("L", "'L' with 1 channel"), ("RGBA", "'RGBA' with 4 channel")])
def test_non_rgb_image_is_an_error_not_converted(tmp_path, mode, found):
    path = write_image(tmp_path / f"face_{mode}.png", mode=mode)
    expected = rf"face_{mode}\.png: expected a 3-channel RGB image, found mode {found}"
    with pytest.raises(ValueError, match=expected):
        one_image_dataset(path)[0]


def test_wrong_size_errors_unless_resize(tmp_path):
    path = write_image(tmp_path / "big.png", size=(32, 32))
    with pytest.raises(ValueError, match=r"big\.png: expected 16x16 image, found 32x32"):
        one_image_dataset(path)[0]
    image = one_image_dataset(path, resize=True)[0]["image"]
    assert image.shape == (3, S, S) and 0 <= image.min() and image.max() <= 1


def test_non_square_image_errors_even_with_resize(tmp_path):
    path = write_image(tmp_path / "wide.png", size=(24, 16))
    with pytest.raises(ValueError, match=r"wide\.png: expected a square 16x16 image, found 24x16"):
        one_image_dataset(path, resize=True)[0]


def test_file_dataset_reads_exact_pixels_and_subsets(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png") for i in range(3)]
    ds = data.FileDataset(paths, np.array([[1], [0], [-1]]), ["a", "b", "c"], (1,), "files", S)
    expected = np.asarray(Image.open(paths[2]))
    np.testing.assert_array_equal((ds[2]["image"].permute(1, 2, 0) * 255).round().byte().numpy(), expected)
    sub = ds.subset([2])
    assert type(sub) is data.FileDataset and sub.paths.tolist() == [str(paths[2])]
    assert sub[0]["labels"].tolist() == [-1.0] and sub.parts == ds.parts


# ======================= dispatcher =======================

def test_load_dataset_dispatches_and_applies_profile_size(bp4d_root, disfa_root, csv_path):
    assert len(loaders.load_dataset("BP4D", bp4d_root, image_size=S)) == 6
    assert loaders.load_dataset("disfa", disfa_root, image_size=S, threshold=1).name == "DISFA"
    assert loaders.load_dataset("csv", csv_path, profile="smoke").image_size == 64  # smoke profile: 64 px
    assert loaders.load_dataset("csv", csv_path, profile="smoke", image_size=S).image_size == S


def test_load_dataset_errors():
    choices = "['synthfacs', 'bp4d', 'disfa', 'csv']"
    with pytest.raises(ValueError, match=re.escape(f"unknown dataset 'affwild'; choose one of {choices}")):
        loaders.load_dataset("affwild", "/tmp")
    with pytest.raises(ValueError, match="needs root"):
        loaders.load_dataset("bp4d")


def test_batch_images_gathers_rows_in_order(csv_path):
    ds = loaders.load_csv(csv_path, image_size=S)
    rows = [len(ds) - 1, 0]
    batch = ds.batch_images(rows)  # files decoded on threads
    assert batch.shape == (2, ds.image_size, ds.image_size, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], (ds[rows[0]]["image"].permute(1, 2, 0) * 255).round().numpy())
    mem = data.ArrayDataset(np.stack([ds._image(i) for i in range(len(ds))]), ds.labels, ds.subjects, ds.aus, "mem")
    sub = mem.subset([2, 0, 1])
    np.testing.assert_array_equal(sub.batch_images([1, 2]), mem.images[[0, 1]])  # fancy-indexing path


def test_threaded_batch_loading_equals_one_by_one_and_keeps_errors(csv_path, monkeypatch):
    ds = loaders.load_csv(csv_path, image_size=S)
    rows = list(range(len(ds)))[::-1] * 3
    threaded = ds.batch_images(rows)
    monkeypatch.setattr(data, "LOAD_WORKERS", 1)
    np.testing.assert_array_equal(threaded, ds.batch_images(rows))
    monkeypatch.setattr(data, "LOAD_WORKERS", 4)
    Path(ds.paths[1]).write_bytes(b"not an image")
    with pytest.raises(ValueError, match="corrupt or cannot be decoded"):
        ds.batch_images(rows)


# ======================= distributed layouts, frame numbering, validation (loaders) =======================

def test_bp4d_distributed_layout_and_explicit_paths(tmp_path, bp4d_root):
    dist = tmp_path / "BP4D"  # labels as distributed (AUCoding/AU_OCC), frames extracted to img/
    (dist / "AUCoding").mkdir(parents=True)
    (bp4d_root / "AU_OCC").rename(dist / "AUCoding" / "AU_OCC")
    (bp4d_root / "images").rename(dist / "img")
    ds = loaders.load_bp4d(dist, image_size=S)
    assert len(ds) == 6 and ds.skipped_frames == 1
    elsewhere = tmp_path / "frames"
    (dist / "img").rename(elsewhere)  # explicit paths: relative to root, or absolute
    with pytest.raises(FileNotFoundError, match=r"tried .*images, .*img"):
        loaders.load_bp4d(dist, image_size=S)
    ds2 = loaders.load_bp4d(dist, image_size=S, labels="AUCoding/AU_OCC", images=elsewhere)
    assert sorted(Path(p).name for p in ds2.paths) == sorted(Path(p).name for p in ds.paths)


def test_bp4d_labels_and_images_that_do_not_line_up_are_counted(bp4d_root):
    write_image(bp4d_root / "images" / "F007" / "T1" / "006.png")  # an image without a label row
    with pytest.warns(UserWarning, match=r"BP4D: 1 labelled frame\(s\) have no image .*F001/T1/3.*"
                                         r"1 image\(s\) have no label .*F007/T1/6"):
        loaders.load_bp4d(bp4d_root, image_size=S)


@pytest.mark.parametrize("lines, message", [
    ([BP4D_HEADER, bp4d_row(5), bp4d_row(5)], r"F007_T1\.csv, row 3: frame 5 is labelled twice \(first in row 2\)"),
    ([BP4D_HEADER.replace(",2,", ",01,"), bp4d_row(5)], r"F007_T1\.csv.*columns '1' and '01' both label AU1"),
    ([BP4D_HEADER, bp4d_row(5) + ",0"], r"F007_T1\.csv, row 2: 25 cells but the header has 24"),
    ([BP4D_HEADER, bp4d_row(5)[:-2]], r"F007_T1\.csv, row 2: 23 cells"),
    ([BP4D_HEADER + ",AUx", bp4d_row(5) + ",0"], r"F007_T1\.csv, header: 'AUx' is not an AU label"),
])
def test_bp4d_malformed_label_files_name_file_and_row(bp4d_root, lines, message):
    write_lines(bp4d_root / "AU_OCC" / "F007_T1.csv", lines)
    with pytest.raises(ValueError, match=message):
        loaders.load_bp4d(bp4d_root, image_size=S)


def test_bp4d_and_csv_accept_a_utf8_bom(bp4d_root, csv_path):
    for path in (bp4d_root / "AU_OCC" / "F007_T1.csv", csv_path):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(loaders.load_bp4d(bp4d_root, image_size=S)) == 6
    assert len(loaders.load_csv(csv_path, image_size=S)) == 5  # 'image' is found despite the BOM


def test_disfa_label_frame_f_goes_to_image_f_minus_1(disfa_root):
    """ME-GraphAU's preprocessing: label line i (frame i, from 1) -> (i-1).png. The first image is 0.png."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tree that lines up loads without a word
        ds = loaders.load_disfa(disfa_root, image_size=S)
    sn001 = ds.with_subjects(["SN001"])
    assert [Path(p).name for p in sn001.paths] == ["0.png", "1.png", "2.png"]
    assert sn001.labels[:, DISFA_AUS.index(12)].tolist() == [1, 1, 0]  # frames 1, 2, 3: intensities 5, 3, 1


def test_disfa_images_numbered_from_1_are_detected_and_announced(tmp_path):
    root = tmp_path / "disfa1"
    for subject in ("SN001", "SN013", "SN003"):
        write_disfa_subject(root, subject, {12: [5, 0, 0]}, first_image=1)
    with pytest.warns(UserWarning, match=r"3 subject\(s\) .* numbered from 1 .*numbering=1"):
        auto = loaders.load_disfa(root, image_size=S)
    sn001 = auto.with_subjects(["SN001"])
    assert [Path(p).name for p in sn001.paths] == ["1.png", "2.png", "3.png"]
    assert sn001.labels[:, DISFA_AUS.index(12)].tolist() == [1, 0, 0]
    explicit = loaders.load_disfa(root, image_size=S, numbering=1)
    assert explicit.paths.tolist() == auto.paths.tolist()
    with pytest.warns(UserWarning, match=r"3 labelled frame\(s\) have no image .*3 image\(s\) have no label"):
        forced = loaders.load_disfa(root, image_size=S, numbering=0)  # 0-based forced: 2 of 3 frames line up
    assert len(forced) == 6
    with pytest.raises(ValueError, match="numbering must be 0, 1 or 'auto'"):
        loaders.load_disfa(root, image_size=S, numbering=2)


def test_disfa_short_label_files_and_unmatched_subject(disfa_root):
    write_image(disfa_root / "img" / "SN013" / "3.png")  # more images than label lines
    with pytest.warns(UserWarning, match=r"1 image\(s\) have no label .*SN013/3\.png"):
        loaders.load_disfa(disfa_root, image_size=S)
    for image in (disfa_root / "img" / "SN003").iterdir():
        image.rename(image.with_name(f"{int(image.stem) + 100}.png"))
    with pytest.raises(ValueError, match=r"SN003: no label frame has an image .*label frames 3 \(frames 1..3\), "
                                         r"images 3 \(frames 100..102\)"):
        loaders.load_disfa(disfa_root, image_size=S)


def test_disfa_duplicate_frame_and_explicit_paths(tmp_path, disfa_root):
    write_lines(disfa_root / "ActionUnit_Labels" / "SN001" / "SN001_au2.txt", ["1,0", "2,0", "2,1"])
    with pytest.raises(ValueError, match=r"SN001_au2\.txt, line 3: frame 2 is labelled twice \(first on line 2\)"):
        loaders.load_disfa(disfa_root, image_size=S)
    write_lines(disfa_root / "ActionUnit_Labels" / "SN001" / "SN001_au2.txt", ["1,0", "2,0", "3,0"])
    (disfa_root / "ActionUnit_Labels").rename(tmp_path / "labels")
    ds = loaders.load_disfa(disfa_root, image_size=S, labels=tmp_path / "labels", images="img")
    assert len(ds) == 9


@pytest.mark.parametrize("lines, message", [
    (["image,subject,AU1", "x.png,a"], r"row 2: 2 cells but the header has 3"),
    (["image,subject,AU1", "x.png,a,1,0"], r"row 2: 4 cells but the header has 3"),
    (["image,subject,AU1,AU01", "x.png,a,1,0"], r"columns 'AU1' and 'AU01' both label AU1"),
    (["image,subject,AU1,AU1", "x.png,a,1,0"], r"\['AU1'\] appear more than once"),
    (["image,subject,AU12_r,AU01_c", "x.png,a,3.2,1"], r"\['AU12_r', 'AU01_c'\] are not occurrence labels.*intensit"),
    (["image,subject,AU1", "x.png,a,1", "x.png,a,0"], r"row 3: image 'x.png' is already listed in row 2$"),
    (["image,subject,AU1", "x.png,a,1", "x.png,b,1"], r"row 3: image 'x.png' .* subjects 'a' and 'b' \(a train/test"),
    (["image,subject,AU1", ",a,1"], r"row 2: empty 'image' cell"),
    (["image,subject,AU1", "x.png, ,1"], r"row 2: empty 'subject' cell"),
    # AU columns spelled like an AU but not named like one, or none at all
    (["image,subject,AU24,AU_24", "x.png,a,1,0"], r"columns 'AU24' and 'AU_24' both label AU24"),
    (["image,subject,AU1,AU__24", "x.png,a,1,0"], r"\['AU__24'\] look like AU labels but are not named like one"),
    (["image,subject,AU1,AU.24,24", "x.png,a,1,0,1"], r"\['AU.24', '24'\] look like AU labels"),
    (["image,subject,notes", "x.png,a,hello"], r"no AU label column \(named like AU12\) among \['image'"),
])
def test_load_csv_malformed_tables_name_file_and_row(tmp_path, lines, message):
    write_image(tmp_path / "x.png")
    path = write_lines(tmp_path / "bad.csv", lines)
    with pytest.raises(ValueError, match=rf"bad\.csv.*{message}"):
        loaders.load_csv(path, image_size=S)


@pytest.mark.parametrize("column", ["AU24", "AU_24", "AU 24", "au-24", "AU024"])
def test_load_csv_reads_au_columns_with_a_separator(tmp_path, column):
    write_image(tmp_path / "x.png")
    path = write_lines(tmp_path / "sep.csv", [f"image,subject,AU1,{column},notes", "x.png,a,1,0,hello"])
    ds = loaders.load_csv(path, image_size=S)
    assert ds.aus == (1, 24) and ds.labels.tolist() == [[1, 0]]  # 'notes' looks like no AU: not read


@pytest.mark.parametrize("encoding, message", [
    ("latin-1", r"bad\.csv, line 2: not UTF-8 text \(byte b'\\xe9': Latin-1"),
    ("utf-16", r"bad\.csv: UTF-16 text"),
])
def test_label_files_that_are_not_utf8_are_named(tmp_path, disfa_root, encoding, message):
    write_image(tmp_path / "x.png")
    path = tmp_path / "bad.csv"
    path.write_bytes("image,subject,AU1\nx.png,andré,1\n".encode(encoding))
    with pytest.raises(ValueError, match=message):
        loaders.load_csv(path, image_size=S)
    label_file = disfa_root / "ActionUnit_Labels" / "SN001" / "SN001_au1.txt"
    label_file.write_bytes(label_file.read_text().encode(encoding) + "# café\n".encode(encoding))
    with pytest.raises(ValueError, match=r"SN001_au1\.txt.*(not UTF-8|UTF-16)"):
        loaders.load_disfa(disfa_root, image_size=S)


def test_load_csv_image_in_a_symlink_loop_is_named(tmp_path):
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    path = write_lines(tmp_path / "loop.csv", ["image,subject,AU1", "loop.png,a,1"])
    with pytest.raises(ValueError, match=r"loop\.csv, row 2: image 'loop.png' cannot be resolved"):
        loaders.load_csv(path, image_size=S)


def test_exif_orientation_is_applied(tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view) is
    read upright, as image viewers show it: its stored top row becomes the right column."""
    pixels = np.zeros((S, S, 3), np.uint8)
    pixels[0] = 255  # top row white, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation
    image.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    read = one_image_dataset(tmp_path / "phone.jpg")._image(0)[..., 0].astype(int)
    assert read[:, -1].min() > 200 and read[0, :-2].max() < 60  # right column white, top row dark


def test_load_csv_intensity_columns_beside_labels_are_named_not_read(tmp_path):
    write_image(tmp_path / "x.png")
    path = write_lines(tmp_path / "both.csv", ["image,subject,AU12,AU12_r", "x.png,a,1,3.5"])
    with pytest.warns(UserWarning, match=r"\['AU12_r'\] are not read"):
        ds = loaders.load_csv(path, image_size=S)
    assert ds.aus == (12,) and ds.labels.tolist() == [[1]]


def test_file_dataset_key_follows_labels_images_and_size(tmp_path, csv_path):
    import os

    key = loaders.load_csv(csv_path, image_size=S).key()
    assert key == loaders.load_csv(csv_path, image_size=S).key()  # stable
    assert key != loaders.load_csv(csv_path, image_size=S, resize=True).key()
    assert key != loaders.load_csv(csv_path, image_size=2 * S, resize=True).key()
    text = csv_path.read_text()
    csv_path.write_text(text.replace("faces/a1.png,a,1,0", "faces/a1.png,a,0,0"))  # one label flipped
    relabelled = loaders.load_csv(csv_path, image_size=S).key()
    assert relabelled["labels"] != key["labels"] and relabelled["images"] == key["images"]
    csv_path.write_text(text)
    image = csv_path.parent / "faces" / "b1.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # re-cropped file
    retouched = loaders.load_csv(csv_path, image_size=S).key()
    assert retouched["images"] != key["images"] and retouched["labels"] == key["labels"]
