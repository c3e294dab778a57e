"""The ground floor: pixel conversions, normalisation, patch masks and the canonical face grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from occfau_lib import patches


def test_uint8_tensor_round_trip_and_read_only_sources():
    imgs = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    x = patches.to_tensor(imgs)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(patches.to_uint8(x), imgs)
    one = imgs[0].copy()
    one.flags.writeable = False  # a memory-mapped cache, a PIL buffer
    assert torch.equal(patches.to_tensor(one), x[0])


def test_mean_fill_is_zero_after_normalisation():
    assert patches.MEAN_FILL == (124, 116, 104)
    fill = torch.tensor(patches.MEAN_FILL, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 2, 2) / 255
    assert patches.normalize(fill).abs().max() < 0.01


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_patch_pixels_inverts_patch_visibility(to):
    visible = np.random.default_rng(1).random((5, 16)) < 0.5  # (N, L) on a 4x4 grid
    hidden = patches.patch_pixels(to(visible), 8)  # (N, 32, 32)
    assert type(hidden) is type(to(visible)) and tuple(hidden.shape) == (5, 32, 32)
    np.testing.assert_array_equal(patches.patch_visibility(np.asarray(hidden), 8), visible)


def test_random_masks_hide_exact_counts_and_follow_their_seed():
    vis = patches.random_patches(50, 64, 0.75, seed=3)
    assert (vis.sum(1) == 16).all() and np.array_equal(vis, patches.random_patches(50, 64, 0.75, seed=3))
    assert not np.array_equal(vis, patches.random_patches(50, 64, 0.75, seed=4))
    kept = patches.random_visible(50, 64, 0.75, torch.Generator().manual_seed(0))
    assert kept.dtype == torch.bool and (kept.sum(1) == 16).all()
    with pytest.raises(ValueError, match=r"hidden ratio must be in \[0, 1\)"):
        patches.random_patches(2, 64, 1.0)


def test_box_mask_on_the_canonical_grid():
    assert np.allclose(patches.pixel_centres(4), [-0.75, -0.25, 0.25, 0.75])
    upper = patches.box_mask((-1, 1, -1, 0), 8)
    assert upper[:4].all() and not upper[4:].any()
    small, grown = patches.box_mask((-0.1, 0.1, -0.1, 0.1), 16), patches.box_mask((-0.1, 0.1, -0.1, 0.1), 16, 1)
    assert small.sum() == 4 and grown.sum() == 16 and (grown >= small).all()
