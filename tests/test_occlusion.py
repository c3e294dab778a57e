"""Tests for occfau_lib.occlusion: pixel masks, patch visibility, the protocols and the occluders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from occfau_lib import occlusion, patches

L = 16  # a 4x4 grid of patches


def uint8_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_patch_visibility_threshold():
    hidden = np.zeros((8, 8), bool)  # 2x2 grid of 4 px patches (16 pixels each)
    hidden[0:2, 0:4] = True  # patch 0: 8/16 hidden
    hidden[0:3, 4:7] = True  # patch 1: 9/16 hidden
    hidden[4, 0] = True  # patch 2: 1/16 hidden
    assert patches.patch_visibility(hidden, 4).tolist() == [True, False, True, True]
    assert patches.patch_visibility(hidden, 4, threshold=0.0).tolist() == [False, False, False, True]
    assert patches.patch_visibility(hidden, 4, threshold=9 / 16).tolist() == [True, True, True, True]
    # leading dimensions are kept; row-major grid order
    batch = np.stack([hidden, hidden.T])
    vis = patches.patch_visibility(batch, 4)
    assert vis.shape == (2, 4)
    assert vis[1].tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="multiple"):
        patches.patch_visibility(np.zeros((10, 10), bool), 4)



@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75, 0.9])
def test_random_patches_count_and_seed(ratio):
    a = patches.random_patches(10, L, ratio, seed=0)
    assert a.shape == (10, L) and a.dtype == bool
    assert ((~a).sum(1) == round(ratio * L)).all()
    assert np.array_equal(a, patches.random_patches(10, L, ratio, seed=0))
    if ratio > 0:
        assert not np.array_equal(a, patches.random_patches(10, L, ratio, seed=1))


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_random_patches_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        patches.random_patches(2, L, ratio)


def test_region_masks():
    with pytest.raises(ValueError, match="unknown region 'forehead'.*mouth"):
        occlusion.region_mask("forehead", 32)
    upper = occlusion.region_mask("upper_half", 8)
    assert upper.shape == (8, 8) and upper.dtype == bool
    assert upper[:4].all() and not upper[4:].any()
    lower = occlusion.region_mask("lower_half", 8)
    assert lower[4:].all() and not lower[:4].any()
    for region in occlusion.REGION_BOXES:
        m = occlusion.region_mask(region, 32)
        assert 0 < m.sum() < 32 * 32
    eyes, mouth = occlusion.region_mask("eyes", 64), occlusion.region_mask("mouth", 64)
    rows_eyes, rows_mouth = np.nonzero(eyes.any(1))[0], np.nonzero(mouth.any(1))[0]
    assert rows_eyes.max() < rows_mouth.min()  # eyes above the mouth (v points down)
    assert np.array_equal(eyes, eyes[:, ::-1])  # boxes are left-right symmetric


def test_box_mask_pixel_centres():
    m = patches.box_mask((-1.0, -0.5, 0.5, 1.0), 8)  # left quarter, bottom quarter
    expected = np.zeros((8, 8), bool)
    expected[6:, :2] = True
    assert np.array_equal(m, expected)


def test_occlude_paints_exactly_the_hidden_pixels():
    imgs = uint8_images(3, seed=20, size=16)
    original = imgs.copy()
    rng = np.random.default_rng(1)
    hidden = rng.random((3, 16, 16)) < 0.3
    out = occlusion.occlude(imgs, hidden, fill=(1, 2, 3))
    assert np.array_equal(imgs, original)  # input untouched
    assert out.dtype == np.uint8 and out.shape == imgs.shape
    assert (out[hidden] == np.array([1, 2, 3], np.uint8)).all()
    assert np.array_equal(out[~hidden], imgs[~hidden])
    # one (S, S) mask for every image, default fill = the ImageNet mean colour
    mask = occlusion.region_mask("mouth", 16)
    out2 = occlusion.occlude(imgs, mask)
    assert (out2[:, mask] == np.array([124, 116, 104], np.uint8)).all()
    assert np.array_equal(out2[:, ~mask], imgs[:, ~mask])
    # and the default fill is (almost) zero after the MAE's normalisation
    filled = torch.from_numpy(out2[:1]).permute(0, 3, 1, 2).float() / 255
    assert patches.normalize(filled)[0][:, torch.from_numpy(mask)].abs().max() < 0.02



# --------------------------------------------------------------------------------------------
# The protocols
# --------------------------------------------------------------------------------------------
def test_protocol_parameters_match_paper_notes():
    # docs/method-notes.md: patches hide 25/50/75% of grid patches; blocks 64/96/112/128 px at 224
    assert occlusion.PATCH_RATIOS == (0.25, 0.5, 0.75)
    assert occlusion.BLOCK_SIDES_224 == (64, 96, 112, 128)
    assert occlusion.HALVES == ("upper_half", "lower_half")
    assert [occlusion.block_side(s, 224) for s in occlusion.BLOCK_SIDES_224] == [64, 96, 112, 128]
    assert [occlusion.block_side(s, 64) for s in occlusion.BLOCK_SIDES_224] == [18, 27, 32, 37]
    conditions = occlusion.protocol_conditions()
    assert list(conditions) == ["clean", "patches 25%", "patches 50%", "patches 75%", "block 29%",
                                "block 43%", "block 50%", "block 57%", "upper half", "lower half"]
    assert conditions["patches 50%"] == "patches:0.5" and conditions["block 43%"] == "block:96"


@pytest.mark.parametrize("ratio", occlusion.PATCH_RATIOS)
def test_random_patch_protocol(ratio):
    imgs = uint8_images(5, seed=1, size=32)
    occ = occlusion.apply(imgs, f"patches:{ratio}", patch_size=8, seed=3)
    assert occ.images.shape == imgs.shape and occ.hidden.shape == (5, 32, 32) and occ.visible.shape == (5, L)
    assert ((~occ.visible).sum(1) == round(ratio * L)).all()  # exactly that many patches per face
    assert np.array_equal(occ.hidden, patches.patch_pixels(occ.visible, 8))  # patch-aligned
    assert (occ.images[occ.hidden] == np.array(patches.MEAN_FILL, np.uint8)).all()
    assert np.array_equal(occ.images[~occ.hidden], imgs[~occ.hidden])
    assert len({occ.visible[i].tobytes() for i in range(5)}) > 1  # each face its own draw


@pytest.mark.parametrize("side", occlusion.BLOCK_SIDES_224)
@pytest.mark.parametrize("size", [64, 224])
def test_large_block_protocol(side, size):
    patch = size // 8
    occ = occlusion.apply(uint8_images(6, seed=2, size=size), f"block:{side}", patch_size=patch, seed=0)
    s = occlusion.block_side(side, size)
    u0, u1, v0, v1 = (np.array(occlusion.FACE_BOX) + 1) / 2 * size
    for hidden, visible in zip(occ.hidden, occ.visible):
        rows, cols = np.nonzero(hidden.any(1))[0], np.nonzero(hidden.any(0))[0]
        assert hidden.sum() == s * s and len(rows) == s and len(cols) == s  # one full square
        cy, cx = rows.mean() + 0.5, cols.mean() + 0.5
        assert u0 - 1 <= cx <= u1 + 1 and v0 - 1 <= cy <= v1 + 1  # centred inside the face
        # a patch is hidden exactly when more than half its pixels are
        cover = hidden.reshape(8, patch, 8, patch).mean((1, 3)).ravel()
        assert np.array_equal(visible, cover <= 0.5)


def test_halves_and_region_blocks():
    imgs = uint8_images(2, size=32)
    upper = occlusion.apply(imgs, "upper_half", 8)
    assert upper.visible.reshape(2, 4, 4)[:, :2].sum() == 0 and upper.visible.reshape(2, 4, 4)[:, 2:].all()
    for region in occlusion.REGION_BLOCKS:
        occ = occlusion.apply(imgs, region, 8)
        assert np.array_equal(occ.hidden[0], occlusion.region_mask(region, 32))


def test_threshold_changes_patch_visibility():
    imgs = uint8_images(4, size=64)
    strict = occlusion.apply(imgs, "block:64", 8, seed=5, threshold=0.0)  # any covered pixel hides
    loose = occlusion.apply(imgs, "block:64", 8, seed=5, threshold=0.99)
    assert np.array_equal(strict.hidden, loose.hidden)
    assert (strict.visible <= loose.visible).all() and strict.visible.sum() < loose.visible.sum()


def test_occluders_are_deterministic_per_seed():
    imgs = uint8_images(4, size=64)
    for spec in ["patches:0.5", "block:112", "sunglasses", "hand", "scarf+fringe"]:
        a, b = occlusion.apply(imgs, spec, 8, seed=7), occlusion.apply(imgs, spec, 8, seed=7)
        c = occlusion.apply(imgs, spec, 8, seed=8)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.visible, b.visible)
        assert not np.array_equal(a.images, c.images)


# --------------------------------------------------------------------------------------------
# Realistic occluders
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,covers,spares", [
    ("sunglasses", "eyes", "mouth"),
    ("medical_mask", "mouth", "brows"),
    ("hand", "mouth", "brows"),
    ("fringe", "brows", "mouth"),
    ("scarf", "chin", "eyes"),
])
def test_realistic_occluders_cover_their_region(name, covers, spares):
    imgs = uint8_images(8, size=64)
    occ = occlusion.apply(imgs, name, 8, seed=0)
    target, other = occlusion.region_mask(covers, 64), occlusion.region_mask(spares, 64)
    assert occ.hidden[:, target].mean() > 0.4, f"{name} should hide most of the {covers}"
    assert occ.hidden[:, other].mean() < 0.05, f"{name} should leave the {spares} visible"
    # painted in its own colours (not the protocol fill), the rest of the face untouched
    assert not (occ.images[occ.hidden] == np.array(patches.MEAN_FILL, np.uint8)).all(1).all()
    assert np.array_equal(occ.images[~occ.hidden], imgs[~occ.hidden])
    assert np.array_equal(occ.visible, patches.patch_visibility(occ.hidden, 8))


def test_composition_is_the_union_painted_in_order():
    imgs = uint8_images(3, size=64)
    a = occlusion.apply(imgs, "sunglasses", 8, seed=4)
    both = occlusion.apply(imgs, "sunglasses+lower_half", 8, seed=4)
    lower = occlusion.region_mask("lower_half", 64)
    assert np.array_equal(both.hidden, a.hidden | lower)
    assert (both.images[:, lower] == np.array(patches.MEAN_FILL, np.uint8)).all()  # later on top
    assert np.array_equal(both.images[:, ~lower], a.images[:, ~lower])
    assert both.spec == "sunglasses+lower_half"


def test_training_mixture():
    rng = np.random.default_rng(0)
    specs = occlusion.training_specs(900, rng)
    pool = set(occlusion.protocol_conditions().values()) - {"clean"}
    assert set(specs) == pool  # every family and level appears
    assert occlusion.training_specs(50, np.random.default_rng(1), clean_rate=1.0) == ["clean"] * 50
    imgs = uint8_images(40, size=32)
    specs = occlusion.training_specs(40, np.random.default_rng(2), clean_rate=0.3)
    occ = occlusion.apply_each(imgs, specs, 8, seed=1)
    again = occlusion.apply_each(imgs, specs, 8, seed=1)
    assert np.array_equal(occ.images, again.images)
    for i, spec in enumerate(specs):
        if spec == "clean":
            assert np.array_equal(occ.images[i], imgs[i]) and occ.visible[i].all()
        elif spec.startswith("patches:"):
            assert (~occ.visible[i]).sum() == round(float(spec.split(":")[1]) * L)
        else:
            assert occ.hidden[i].any()
    with pytest.raises(ValueError, match="2 specs for 40 images"):
        occlusion.apply_each(imgs, ["clean", "clean"], 8)


def test_bad_occlusion_input_is_refused():
    imgs = uint8_images(2, size=32)
    with pytest.raises(ValueError, match="unknown occluder 'balaclava'"):
        occlusion.apply(imgs, "balaclava", 8)
    with pytest.raises(ValueError, match="uint8"):
        occlusion.apply(imgs.astype(np.float32), "clean", 8)
    with pytest.raises(ValueError, match=r"\(N, S, S, 3\)"):
        occlusion.apply(imgs[..., :1], "clean", 8)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        occlusion.apply(imgs, "clean", 5)
    with pytest.raises(ValueError, match="does not fit"):
        occlusion.random_blocks(1, 16, 400, np.random.default_rng(0))


def test_region_overlap_is_the_share_inside_each_box():
    size = 16
    inside = occlusion.region_mask("upper_half", size).astype(float)  # all change in the upper half
    spread = np.ones((size, size))
    out = occlusion.region_overlap({1: inside, 12: spread, 4: np.zeros((size, size))}, ["upper_half", "lower_half"])
    np.testing.assert_allclose(out[0], [1.0, 0.0])
    np.testing.assert_allclose(out[1], [0.5, 0.5])
    assert np.isnan(out[2]).all()  # an AU that changes nothing has no share anywhere


def test_training_occlusion_draws_the_mixture_reproducibly():
    imgs = uint8_images(30, size=32)
    a = occlusion.training_occlusion(imgs, 8, np.random.default_rng(5))
    b = occlusion.training_occlusion(imgs, 8, np.random.default_rng(5))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.visible, b.visible)
    assert a.spec == "mixture" and a.hidden.any((1, 2)).all()  # every face occluded (clean_rate 0)
    clean = occlusion.training_occlusion(imgs, 8, np.random.default_rng(5), clean_rate=1.0)
    assert np.array_equal(clean.images, imgs) and clean.visible.all()
