"""Tests for occfau_lib.mae (and the masks of occfau_lib.occlusion it consumes).

Every test uses a tiny ViT-MAE (32 px, 8 px patches -> a 4x4 grid of L = 16 patches) whose weights
are randomised first, so position embeddings, CLS and mask tokens all matter (a freshly built model
has several of them at zero, see ``test_build_mae_*``).
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from occfau_lib import cache, latent_space, mae, mae_weights, occlusion, patches, train
from occfau_lib.config import MAEConfig, PretrainConfig

CFG = MAEConfig(img_size=32, patch_size=8, hidden_size=48, num_layers=2, num_heads=3,
                decoder_hidden_size=32, decoder_layers=1, decoder_heads=2)
L = CFG.num_patches  # 16
PATCH_DIM = CFG.patch_size**2 * 3


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def randomize(module: nn.Module, seed: int = 0, scale: float = 0.2) -> nn.Module:
    """Overwrite every parameter (frozen ones included) with seeded random values; norm weights
    stay near 1 so activations keep a sensible scale."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * scale
            is_norm_weight = name.endswith("weight") and p.dim() == 1
            p.copy_(1 + noise if is_norm_weight else noise)
    return module


def make_model(cfg: MAEConfig = CFG, seed: int = 0):
    return randomize(mae.build_mae(cfg), seed).eval()


def images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def visible_from_counts(counts, seed: int = 0) -> torch.Tensor:
    """(B, L) visibility with ``counts[i]`` visible patches at random grid positions."""
    gen = torch.Generator().manual_seed(seed)
    vis = torch.zeros(len(counts), L, dtype=torch.bool)
    for i, c in enumerate(counts):
        vis[i, torch.randperm(L, generator=gen)[:c]] = True
    return vis


def hf_noise(visible: torch.Tensor) -> torch.Tensor:
    """HF ``noise`` whose argsort lists the visible patches first (in grid order), then the hidden."""
    return (~visible).float() * L + torch.arange(L, dtype=torch.float32)


def set_hf_keep(model, keep: int) -> None:
    """Make HF's ``int(L * (1 - mask_ratio))`` equal ``keep``."""
    model.config.mask_ratio = 1 - (keep + 0.5) / L
    assert int(L * (1 - model.config.mask_ratio)) == keep


def uint8_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def smooth_uint8_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """Learnable images: a random colour per image, a horizontal ramp and a little noise."""
    rng = np.random.default_rng(seed)
    colour = rng.uniform(40, 215, (n, 1, 1, 3))
    ramp = np.linspace(-30, 30, size)[None, None, :, None]
    x = colour + ramp + rng.normal(0, 5, (n, size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


def hf_to_facebook(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``convert_timm_state_dict``: HF ViTMAEForPreTraining names -> facebookresearch/mae."""
    out = {
        "cls_token": sd["vit.embeddings.cls_token"],
        "pos_embed": sd["vit.embeddings.position_embeddings"],
        "patch_embed.proj.weight": sd["vit.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": sd["vit.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": sd["vit.layernorm.weight"],
        "norm.bias": sd["vit.layernorm.bias"],
    }
    for hf_prefix, fb_prefix in (("vit.layers.", "blocks."), ("decoder.decoder_layers.", "decoder_blocks.")):
        n = len({k[len(hf_prefix):].split(".")[0] for k in sd if k.startswith(hf_prefix)})
        for i in range(n):
            h, f = f"{hf_prefix}{i}.", f"{fb_prefix}{i}."
            for kind in ("weight", "bias"):
                out[f"{f}attn.qkv.{kind}"] = torch.cat([sd[f"{h}attention.{p}_proj.{kind}"] for p in "qkv"])
                out[f"{f}attn.proj.{kind}"] = sd[f"{h}attention.o_proj.{kind}"]
                out[f"{f}norm1.{kind}"] = sd[f"{h}layernorm_before.{kind}"]
                out[f"{f}norm2.{kind}"] = sd[f"{h}layernorm_after.{kind}"]
                out[f"{f}mlp.fc1.{kind}"] = sd[f"{h}mlp.fc1.{kind}"]
                out[f"{f}mlp.fc2.{kind}"] = sd[f"{h}mlp.fc2.{kind}"]
    for name in ("decoder_embed.weight", "decoder_embed.bias", "decoder_norm.weight", "decoder_norm.bias",
                 "decoder_pred.weight", "decoder_pred.bias", "mask_token", "decoder_pos_embed"):
        out[name] = sd[f"decoder.{name}"]
    return out


def timm_vit(embed_dim: int = 48, depth: int = 2, num_heads: int = 3, patch_size: int = 8, seed: int = 1):
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                            num_heads=num_heads, mlp_ratio=4, qkv_bias=True, class_token=True,
                            global_pool="token", num_classes=0, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    return randomize(vit, seed).eval()


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private data root for cache tests (data_root() reads the variable on every call)."""
    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    return tmp_path


# --------------------------------------------------------------------------------------------
# build_mae: the architecture, and MAE's initialisation
# --------------------------------------------------------------------------------------------
def test_build_mae_architecture_and_config_round_trip():
    model = mae.build_mae(CFG)
    assert mae.mae_config_of(model) == CFG
    assert model.vit.embeddings.patch_embeddings.num_patches == L
    assert len(model.vit.layers) == CFG.num_layers and len(model.decoder.decoder_layers) == CFG.decoder_layers
    assert model.decoder.decoder_pred.out_features == PATCH_DIM
    assert mae.mae_config_of(mae.build_mae("tiny")) == mae.MAE_CONFIGS["tiny"]


def test_build_mae_has_distinct_position_embeddings():
    model = mae.build_mae(CFG)
    for pos in (model.vit.embeddings.position_embeddings[0, 1:], model.decoder.decoder_pos_embed[0, 1:]):
        # every grid position must get its own (sin-cos) code
        dist = torch.cdist(pos, pos) + torch.eye(L) * 1e3
        assert dist.min() > 1e-3
    assert model.vit.embeddings.cls_token.abs().sum() > 0
    assert model.decoder.mask_token.abs().sum() > 0


def test_fresh_mae_decoder_knows_where_hidden_patches_are():
    torch.manual_seed(0)
    model = mae.build_mae(CFG).eval()
    vis = visible_from_counts([5, 5])
    with torch.no_grad():
        pred = mae.decode(model, mae.encode(model, images(2), vis))
    for i in range(2):
        hidden_pred = pred[i][~vis[i]]
        assert (hidden_pred - hidden_pred[0]).abs().max() > 1e-4


# --------------------------------------------------------------------------------------------
# Inputs: clear errors
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.mark.parametrize("fn", ["encode", "reconstruct", "masked_loss"])
def test_wrong_image_size_names_both_sizes(model, fn):
    x = images(2, size=48)
    with pytest.raises(ValueError, match=r"32x32.*48x48"):
        getattr(mae, fn)(model, x, torch.ones(2, L, dtype=torch.bool))


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("fn", ["encode", "reconstruct"])
def test_wrong_channels_mention_rgb(model, fn, channels):
    x = torch.rand(2, channels, 32, 32)
    with pytest.raises(ValueError, match="RGB"):
        getattr(mae, fn)(model, x, torch.ones(2, L, dtype=torch.bool))


def test_channels_last_and_unbatched_images_are_rejected(model):
    with pytest.raises(ValueError, match="RGB"):
        mae.encode(model, torch.rand(2, 32, 32, 3))
    with pytest.raises(ValueError, match="RGB"):
        mae.encode(model, torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="RGB"):
        mae.encode(model, np.zeros((2, 3, 32, 32), np.float32))


def test_uint8_images_are_rejected(model):
    x = (images(2) * 255).to(torch.uint8)
    with pytest.raises(ValueError, match="float"):
        mae.encode(model, x)


@pytest.mark.parametrize("shape", [(2, L + 1), (3, L), (2, 4, 4), (L,)])
def test_visible_of_wrong_shape(model, shape):
    with pytest.raises(ValueError, match="visible"):
        mae.encode(model, images(2), torch.ones(shape, dtype=torch.bool))


def test_sample_without_visible_patches(model):
    vis = torch.ones(3, L, dtype=torch.bool)
    vis[1] = False
    with pytest.raises(ValueError, match="at least one visible"):
        mae.encode(model, images(3), vis)
    with pytest.raises(ValueError, match="at least one visible"):
        mae.reconstruct(model, images(3), vis)


def test_normalize_denormalize_round_trip():
    x = images(2)
    z = patches.normalize(x)
    assert torch.allclose(z.mean((0, 2, 3)), (0.5 - torch.tensor(patches.IMAGENET_MEAN)) / torch.tensor(patches.IMAGENET_STD),
                          atol=0.05)
    assert torch.allclose(patches.denormalize(z), x, atol=1e-6)
    mean_colour = torch.tensor(patches.IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(patches.normalize(mean_colour), torch.zeros(1, 3, 4, 4), atol=1e-6)
    assert patches.denormalize(torch.full((1, 3, 2, 2), 100.0)).max() == 1


# --------------------------------------------------------------------------------------------
# Masked loss == MAE's own loss, and only hidden patches count
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_pix", [False, True])
@pytest.mark.parametrize("keep", [4, 7])
def test_masked_loss_equals_hf_loss(norm_pix, keep):
    m = make_model(replace(CFG, norm_pix_loss=norm_pix), seed=3)
    x = images(3, seed=1)
    vis = visible_from_counts([keep] * 3, seed=keep)
    set_hf_keep(m, keep)
    with torch.no_grad():
        out = m(patches.normalize(x), noise=hf_noise(vis))
        ours = mae.masked_loss(m, x, vis)
        pred = mae.decode(m, mae.encode(m, x, vis))
    assert torch.equal(out.mask.bool(), ~vis)  # the noise really masks what we asked for
    assert torch.allclose(pred, out.logits, atol=1e-5)
    assert torch.allclose(ours, out.loss, rtol=1e-5, atol=1e-6)
    # a different visible set gives a different loss (the comparison is not vacuous)
    other = mae.masked_loss(m, x, visible_from_counts([keep] * 3, seed=99))
    assert not torch.allclose(other, out.loss, rtol=1e-4)


def test_loss_ignores_targets_at_visible_patches(model, monkeypatch):
    x = images(2, seed=2)
    vis = visible_from_counts([6, 11], seed=2)
    base = mae.masked_loss(model, x, vis).item()
    real_targets = mae.patch_targets

    def targets_altered_at(where):
        def fake(m, imgs):
            t = real_targets(m, imgs).clone()
            t[where] += 5.0
            return t
        return fake

    monkeypatch.setattr(mae, "patch_targets", targets_altered_at(vis))
    assert mae.masked_loss(model, x, vis).item() == base

    hidden_one = torch.zeros_like(vis)
    hidden_one[1, int((~vis[1]).nonzero()[0])] = True
    monkeypatch.setattr(mae, "patch_targets", targets_altered_at(hidden_one))
    assert mae.masked_loss(model, x, vis).item() > base + 1e-3


def test_loss_ignores_predictions_at_visible_patches(model, monkeypatch):
    x = images(2, seed=4)
    vis = visible_from_counts([3, 9], seed=4)
    base = mae.masked_loss(model, x, vis).item()
    real_decode = mae.decode

    def decode_altered_at(where):
        def fake(m, enc):
            return real_decode(m, enc) + 7.0 * where.unsqueeze(-1).float()
        return fake

    monkeypatch.setattr(mae, "decode", decode_altered_at(vis))
    assert mae.masked_loss(model, x, vis).item() == base
    monkeypatch.setattr(mae, "decode", decode_altered_at(~vis))
    assert mae.masked_loss(model, x, vis).item() != pytest.approx(base, rel=1e-3)


def test_loss_is_mean_over_hidden_patches(model):
    """Mean over hidden patches of the per-patch MSE (not over all patches, not per sample)."""
    x = images(2, seed=5)
    vis = visible_from_counts([2, 12], seed=5)
    with torch.no_grad():
        pred = mae.decode(model, mae.encode(model, x, vis))
        per_patch = ((pred - mae.patch_targets(model, x)) ** 2).mean(-1)
        expected = per_patch[~vis].mean()
        assert torch.allclose(mae.masked_loss(model, x, vis), expected, rtol=1e-6)


def test_patch_targets_are_normalised_patches():
    m = make_model(replace(CFG, norm_pix_loss=True))
    x = images(2)
    t = mae.patch_targets(m, x)
    assert t.shape == (2, L, PATCH_DIM)
    assert torch.allclose(t.mean(-1), torch.zeros(2, L), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, L), atol=1e-3)
    m.config.norm_pix_loss = False
    assert torch.allclose(mae.patch_targets(m, x), m.patchify(patches.normalize(x)))


def test_masked_loss_has_gradients(model):
    x = images(2)
    loss = mae.masked_loss(model, x, visible_from_counts([4, 8]))
    loss.backward()
    assert model.vit.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    assert model.decoder.mask_token.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------------------------
# Chosen masking: batch with mixed visible counts == each sample alone
# --------------------------------------------------------------------------------------------
COUNTS = [L, 5, 9, 1]


def test_mixed_batch_equals_each_sample_alone(model):
    x = images(len(COUNTS), seed=6)
    vis = visible_from_counts(COUNTS, seed=6)
    with torch.no_grad():
        enc = mae.encode(model, x, vis, output_hidden_states=True)
        assert enc.tokens.shape == (len(COUNTS), 1 + max(COUNTS), CFG.hidden_size)
        assert enc.ids_keep.shape == enc.valid.shape == (len(COUNTS), max(COUNTS))
        assert len(enc.hidden_states) == CFG.num_layers + 1
        grid = enc.on_grid(L)
        for i, c in enumerate(COUNTS):
            alone = mae.encode(model, x[i : i + 1], vis[i : i + 1], output_hidden_states=True)
            assert alone.tokens.shape == (1, 1 + c, CFG.hidden_size)
            assert enc.valid[i].sum() == c and enc.valid[i, :c].all()
            assert torch.allclose(enc.tokens[i, : 1 + c], alone.tokens[0], atol=1e-5)
            assert torch.allclose(enc.cls[i], alone.cls[0], atol=1e-5)
            assert torch.allclose(enc.mean_pool()[i], alone.mean_pool()[0], atol=1e-5)
            assert torch.allclose(grid[i], alone.on_grid(L)[0], atol=1e-5)
            for k in range(CFG.num_layers + 1):
                assert torch.allclose(enc.hidden_states[k][i, : 1 + c], alone.hidden_states[k][0], atol=1e-5)
                assert torch.allclose(enc.mean_pool(k)[i], alone.mean_pool(k)[0], atol=1e-5)
                assert torch.allclose(enc.on_grid(L, k)[i], alone.on_grid(L, k)[0], atol=1e-5)


def test_ids_keep_and_on_grid(model):
    x = images(len(COUNTS), seed=7)
    vis = visible_from_counts(COUNTS, seed=7)
    with torch.no_grad():
        enc = mae.encode(model, x, vis)
    grid = enc.on_grid(L)
    assert grid.shape == (len(COUNTS), L, CFG.hidden_size)
    for i in range(len(COUNTS)):
        ids = enc.ids_keep[i][enc.valid[i]]
        assert torch.equal(ids, vis[i].nonzero().flatten())  # exactly the visible patches, ascending
        assert torch.equal(grid[i, ids], enc.tokens[i, 1 : 1 + len(ids)])
        assert (grid[i][~vis[i]] == 0).all()
        assert (grid[i][vis[i]].abs().sum(-1) > 0).all()
        # mean_pool averages exactly the real tokens
        assert torch.allclose(enc.mean_pool()[i], enc.tokens[i, 1 : 1 + len(ids)].mean(0), atol=1e-6)


def test_encode_all_visible_equals_hf_encoder(model):
    x = images(3, seed=8)
    model.config.mask_ratio = 0.0
    try:
        with torch.no_grad():
            ref = model.vit(patches.normalize(x), noise=torch.arange(L, dtype=torch.float32).expand(3, L))
            enc = mae.encode(model, x)
            enc_explicit = mae.encode(model, x, torch.ones(3, L, dtype=torch.bool))
    finally:
        model.config.mask_ratio = CFG.mask_ratio
    assert ref.last_hidden_state.shape == enc.tokens.shape == (3, 1 + L, CFG.hidden_size)
    assert torch.allclose(enc.tokens, ref.last_hidden_state, atol=1e-5)
    assert torch.equal(enc.tokens, enc_explicit.tokens)
    assert torch.equal(enc.ids_keep, torch.arange(L).expand(3, L)) and enc.valid.all()


def test_encode_chosen_patches_equals_hf_with_matching_noise(model):
    """Same visible set through HF's random masking (noise listing it first, in grid order)."""
    x = images(2, seed=9)
    vis = visible_from_counts([6, 6], seed=9)
    set_hf_keep(model, 6)
    try:
        with torch.no_grad():
            ref = model.vit(patches.normalize(x), noise=hf_noise(vis)).last_hidden_state
            enc = mae.encode(model, x, vis)
    finally:
        model.config.mask_ratio = CFG.mask_ratio
    assert torch.allclose(enc.tokens, ref, atol=1e-5)


def test_hidden_patch_content_does_not_matter(model):
    x = images(2, seed=10)
    vis = visible_from_counts([7, 3], seed=10)
    pix = (~patches.patch_pixels(vis, CFG.patch_size))[:, None].expand_as(x)
    y = torch.where(pix, x, torch.rand_like(x))
    z = torch.where(pix, torch.rand_like(x), x)  # changes visible pixels
    with torch.no_grad():
        a, b, c = (mae.encode(model, t, vis).tokens for t in (x, y, z))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Decode / reconstruct / paste
# --------------------------------------------------------------------------------------------
def test_reconstruct_mixed_batch_equals_alone_and_range(model):
    x = images(len(COUNTS), seed=11)
    vis = visible_from_counts(COUNTS, seed=11)
    rec = mae.reconstruct(model, x, vis)
    assert rec.shape == (len(COUNTS), 3, 32, 32)
    assert rec.min() >= 0 and rec.max() <= 1
    assert not rec.requires_grad
    with torch.no_grad():
        pred = mae.decode(model, mae.encode(model, x, vis))
    assert pred.shape == (len(COUNTS), L, PATCH_DIM)
    for i in range(len(COUNTS)):
        alone = mae.reconstruct(model, x[i : i + 1], vis[i : i + 1])
        assert torch.allclose(rec[i], alone[0], atol=1e-5)
        with torch.no_grad():
            pred_alone = mae.decode(model, mae.encode(model, x[i : i + 1], vis[i : i + 1]))
        assert torch.allclose(pred[i], pred_alone[0], atol=1e-5)


def test_decode_ignores_padding_tokens(model):
    """Whatever sits in padding positions never reaches the decoder's grid."""
    x = images(3, seed=21)
    vis = visible_from_counts([L, 2, 7], seed=21)
    with torch.no_grad():
        enc = mae.encode(model, x, vis)
        pad = torch.cat([torch.zeros(3, 1, dtype=torch.bool), ~enc.valid], 1)  # (B, 1 + K)
        garbage = mae.Encoded(torch.where(pad.unsqueeze(-1), torch.randn_like(enc.tokens) * 10, enc.tokens),
                              enc.ids_keep, enc.valid)
        assert torch.equal(mae.decode(model, garbage), mae.decode(model, enc))


def test_reconstruct_is_denormalised_unpatchified_prediction(model):
    x = images(2, seed=12)
    vis = visible_from_counts([4, 10], seed=12)
    with torch.no_grad():
        pred = mae.decode(model, mae.encode(model, x, vis))
    expected = patches.denormalize(model.unpatchify(pred, (32, 32)))
    assert torch.allclose(mae.reconstruct(model, x, vis), expected, atol=1e-6)


def test_reconstruct_norm_pix_uses_true_patch_statistics():
    m = make_model(replace(CFG, norm_pix_loss=True), seed=5)
    x = images(2, seed=13)
    vis = visible_from_counts([4, 10], seed=13)
    with torch.no_grad():
        pred = mae.decode(m, mae.encode(m, x, vis))
    target = m.patchify(patches.normalize(x))
    pix = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
    assert torch.allclose(mae.reconstruct(m, x, vis), patches.denormalize(m.unpatchify(pix, (32, 32))), atol=1e-5)


def test_patch_pixels_of_a_tensor_is_a_tensor_on_the_grid():
    vis = torch.zeros(1, L, dtype=torch.bool)
    vis[0, 1] = vis[0, 14] = True  # (row 0, col 1) and (row 3, col 2)
    pix = (~patches.patch_pixels(vis, 8))[:, None]
    assert pix.shape == (1, 1, 32, 32) and pix.dtype == torch.bool
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[0:8, 8:16] = expected[24:32, 16:24] = True
    assert torch.equal(pix[0, 0], expected)


def test_paste_visible_keeps_original_pixels_exactly(model):
    x = images(len(COUNTS), seed=14)
    vis = visible_from_counts(COUNTS, seed=14)
    rec = mae.reconstruct(model, x, vis)
    out = mae.paste_visible(x, rec, vis, CFG.patch_size)
    assert out.shape == x.shape
    keep = (~patches.patch_pixels(vis, CFG.patch_size))[:, None].expand_as(x)
    assert torch.equal(out[keep], x[keep])
    assert torch.equal(out[~keep], rec[~keep])
    assert not torch.equal(out, rec) and not torch.equal(out, x)  # both sources are used


# --------------------------------------------------------------------------------------------
# Random masking
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.6, 0.7, 0.0])
def test_random_visible_count_and_seed(ratio):
    def draw(seed):
        return patches.random_visible(8, L, ratio, torch.Generator().manual_seed(seed))

    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (8, L) and a.dtype == torch.bool
    assert (a.sum(1) == round(L * (1 - ratio))).all()
    assert torch.equal(a, b)
    if 0 < ratio:
        assert not torch.equal(a, c)
        assert len({tuple(row.tolist()) for row in a}) > 1  # rows are drawn independently


def test_random_visible_is_roughly_uniform():
    vis = patches.random_visible(4000, L, 0.75, torch.Generator().manual_seed(0))
    freq = vis.float().mean(0)
    assert torch.allclose(freq, torch.full((L,), 0.25), atol=0.03)


# --------------------------------------------------------------------------------------------
# Pretraining: loss, resume, NaN
# --------------------------------------------------------------------------------------------
PT = PretrainConfig(epochs=3, batch_size=16, base_lr=0.08, weight_decay=0.05, warmup_epochs=1, seed=0)


@pytest.fixture(scope="module")
def run_a():
    imgs = smooth_uint8_images(64)
    model, hist = mae.pretrain(imgs, CFG, PT, progress=False, log_every=1)
    return imgs, model, hist


def test_pretrain_history_and_loss_decreases(run_a):
    imgs, model, hist = run_a
    total = PT.epochs * (len(imgs) // PT.batch_size)
    assert hist["step"] == list(range(1, total + 1))
    assert len(hist["loss"]) == len(hist["lr"]) == total
    warmup = PT.warmup_epochs * len(imgs) // PT.batch_size
    assert hist["lr"] == pytest.approx([train.lr_at(s, total, warmup, PT.lr) for s in range(total)])
    assert hist["images_per_s"] > 0
    assert all(math.isfinite(v) for v in hist["loss"])
    assert np.mean(hist["loss"][-4:]) < 0.95 * np.mean(hist["loss"][:4])  # per-batch losses are noisy
    assert not model.training
    # on held-out images and fixed masks, the trained MAE beats its own initialisation
    torch.manual_seed(PT.seed)
    init = mae.build_mae(CFG).eval()
    x = torch.from_numpy(smooth_uint8_images(32, seed=1)).permute(0, 3, 1, 2).float() / 255
    vis = patches.random_visible(32, L, CFG.mask_ratio, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert mae.masked_loss(model, x, vis) < 0.9 * mae.masked_loss(init, x, vis)


def test_pretrain_log_every(run_a):
    imgs = run_a[0][:32]
    _, hist = mae.pretrain(imgs, CFG, replace(PT, epochs=2), progress=False, log_every=3)
    assert hist["step"] == [3, 4]  # every 3 steps, and always the last one


def test_pretrain_resume_equals_uninterrupted(run_a, tmp_path, interrupt):
    imgs, model_a, hist_a = run_a
    steps_per_epoch = len(imgs) // PT.batch_size
    resume = tmp_path / "state.pt"
    interrupt(train, steps_per_epoch + 1)  # killed during epoch 2, after epoch 1 was checkpointed
    with pytest.raises(KeyboardInterrupt):
        mae.pretrain(imgs, CFG, PT, progress=False, log_every=1, resume_path=resume)
    state = torch.load(resume, weights_only=True)
    assert state["epoch"] == 1 and state["step"] == steps_per_epoch

    sd_a = model_a.state_dict()
    model_c, hist_c = mae.pretrain(imgs, CFG, PT, progress=False, log_every=1, resume_path=resume)
    for k, v in model_c.state_dict().items():
        assert torch.allclose(v, sd_a[k], atol=1e-6), k
    assert hist_c["step"] == hist_a["step"]
    assert hist_c["loss"] == pytest.approx(hist_a["loss"], rel=1e-5)
    assert torch.load(resume, weights_only=True)["epoch"] == PT.epochs


def test_pretrain_ignores_resume_state_of_another_config(run_a, tmp_path, interrupt):
    imgs, model_a, _ = run_a
    resume = tmp_path / "state.pt"
    other = replace(PT, seed=5)
    interrupt(train, len(imgs) // PT.batch_size + 1)
    with pytest.raises(KeyboardInterrupt):
        mae.pretrain(imgs, CFG, other, progress=False, resume_path=resume)
    assert resume.exists()
    model, _ = mae.pretrain(imgs, CFG, PT, progress=False, resume_path=resume)
    sd_a = model_a.state_dict()
    for k, v in model.state_dict().items():
        assert torch.allclose(v, sd_a[k], atol=1e-6), k


def test_pretrain_nan_loss_raises(monkeypatch):
    def nan_loss(model, x, visible):
        return (mae.decode(model, mae.encode(model, x, visible)) * float("nan")).mean()

    monkeypatch.setattr(mae, "masked_loss", nan_loss)
    with pytest.raises(FloatingPointError, match="nan"):
        mae.pretrain(uint8_images(32), CFG, replace(PT, epochs=1), progress=False)


def test_pretrain_too_few_images():
    with pytest.raises(ValueError, match="fewer than one batch"):
        mae.pretrain(uint8_images(8), CFG, PT, progress=False)


# --------------------------------------------------------------------------------------------
# Checkpoint-or-train cache
# --------------------------------------------------------------------------------------------
SMALL_PT = PretrainConfig(epochs=1, batch_size=16, warmup_epochs=0, seed=0)
DATA_KEY = {"test": "tiny", "n": 32}


@pytest.fixture
def count_pretrain(monkeypatch):
    calls = []
    real = mae.pretrain

    def wrapper(*args, **kwargs):
        calls.append(kwargs.get("resume_path"))
        return real(*args, **kwargs)

    monkeypatch.setattr(mae, "pretrain", wrapper)
    return calls


def test_pretrained_mae_trains_once_then_loads(data_dir, count_pretrain):
    imgs = uint8_images(32)
    m1, h1 = mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    assert len(count_pretrain) == 1
    files = sorted((data_dir / "cache").iterdir())
    assert [f.name for f in files] == [cache.checkpoint_path("mae", {"mae": CFG.__dict__, "pretrain": SMALL_PT.__dict__,
                                                                   "data": DATA_KEY, "version": mae.MAE_VERSION}).name]
    assert files[0].name.startswith("mae-") and files[0].suffix == ".pt"
    state = torch.load(files[0], weights_only=True)
    assert set(state) == {"model", "history", "config"}

    m2, h2 = mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    assert len(count_pretrain) == 1  # loaded, not trained
    assert not m2.training and h2 == h1
    sd1 = m1.state_dict()
    for k, v in m2.state_dict().items():
        assert torch.equal(v, sd1[k]), k
    x = images(2)
    with torch.no_grad():
        assert torch.equal(mae.encode(m1, x).tokens, mae.encode(m2, x).tokens)


def test_pretrained_mae_retrains_when_config_changes(data_dir, count_pretrain):
    imgs = uint8_images(32)
    m1, _ = mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    m2, _ = mae.pretrained_mae(imgs, CFG, replace(SMALL_PT, seed=1), DATA_KEY, progress=False)
    assert len(count_pretrain) == 2
    m3, _ = mae.pretrained_mae(imgs, CFG, SMALL_PT, {**DATA_KEY, "n": 33}, progress=False)
    assert len(count_pretrain) == 3
    names = sorted(p.name for p in (data_dir / "cache").iterdir())
    assert len(names) == 3 and all(n.startswith("mae-") and n.endswith(".pt") for n in names)
    assert not any("partial" in n or n.startswith(".") for n in names)
    assert not torch.equal(m1.vit.layers[0].mlp.fc1.weight, m2.vit.layers[0].mlp.fc1.weight)
    # the partial (resume) file was next to the checkpoint and is gone
    assert all(str(p).endswith(".partial.pt") for p in count_pretrain)


def test_pretrained_mae_rebuilds_when_stored_config_differs(data_dir, count_pretrain):
    imgs = uint8_images(32)
    mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    (path,) = (data_dir / "cache").iterdir()
    state = torch.load(path, weights_only=True)
    state["config"] = {"something": "else"}
    torch.save(state, path)
    mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    assert len(count_pretrain) == 2
    assert torch.load(path, weights_only=True)["config"]["data"] == DATA_KEY


# --------------------------------------------------------------------------------------------
# Loading weights from a local path
# --------------------------------------------------------------------------------------------
def test_load_mae_hugging_face_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "hf")
    loaded = mae_weights.load_mae(tmp_path / "hf", CFG)
    assert not loaded.training
    assert mae.mae_config_of(loaded) == mae.mae_config_of(model)
    sd = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k
    x = images(len(COUNTS), seed=15)
    vis = visible_from_counts(COUNTS, seed=15)
    with torch.no_grad():
        assert torch.equal(mae.encode(loaded, x, vis).tokens, mae.encode(model, x, vis).tokens)
        assert torch.equal(mae.reconstruct(loaded, x, vis), mae.reconstruct(model, x, vis))


def test_load_mae_timm_encoder_matches_timm_forward(tmp_path):
    vit = timm_vit()
    path = tmp_path / "mae_timm.pth"
    torch.save({"model": vit.state_dict()}, path)
    loaded = mae_weights.load_mae(path, CFG)
    assert not loaded.training
    x = images(3, seed=16)
    with torch.no_grad():
        ref = vit.forward_features(patches.normalize(x))
        enc = mae.encode(loaded, x)
    assert ref.shape == enc.tokens.shape == (3, 1 + L, CFG.hidden_size)
    assert torch.allclose(enc.tokens, ref, atol=1e-4)
    # a plain state dict (no {"model": ...} wrapper) loads the same
    torch.save(vit.state_dict(), tmp_path / "plain.pth")
    plain = mae_weights.load_mae(tmp_path / "plain.pth", CFG)
    assert torch.equal(plain.vit.layers[1].attention.v_proj.weight, loaded.vit.layers[1].attention.v_proj.weight)


def test_facebook_state_dict_round_trip_with_decoder(tmp_path):
    src = make_model(seed=7)
    sd = src.state_dict()
    fb = hf_to_facebook(sd)
    # our inverse mapping speaks timm's encoder names exactly
    decoder_keys = {k for k in fb if k.startswith(("decoder_", "mask_token"))}
    assert set(fb) - decoder_keys == set(timm_vit().state_dict())
    converted = mae_weights.convert_timm_state_dict(fb)
    assert set(converted) == set(sd)
    for k, v in converted.items():
        assert torch.equal(v, sd[k]), k
    # and the .pth loads into a model that reconstructs like the source (decoder included)
    torch.save({"model": fb}, tmp_path / "mae_pretrain.pth")
    loaded = mae_weights.load_mae(tmp_path / "mae_pretrain.pth", CFG)
    x = images(2, seed=17)
    vis = visible_from_counts([3, 12], seed=17)
    assert torch.allclose(mae.reconstruct(loaded, x, vis), mae.reconstruct(src.eval(), x, vis), atol=1e-6)


def test_load_mae_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="Hugging Face"):
        mae_weights.load_mae(tmp_path / "nowhere")


def test_load_mae_directory_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        mae_weights.load_mae(tmp_path / "empty")


@pytest.mark.parametrize("depth", [1, 3])
def test_load_mae_wrong_depth(tmp_path, depth):
    path = tmp_path / "deep.pth"
    torch.save({"model": timm_vit(depth=depth).state_dict()}, path)
    with pytest.raises(ValueError, match="does not fit"):
        mae_weights.load_mae(path, CFG)


@pytest.mark.parametrize("kwargs", [{"embed_dim": 60, "num_heads": 3}, {"patch_size": 16}])
def test_load_mae_wrong_width_is_a_clear_error(tmp_path, kwargs):
    path = tmp_path / "wide.pth"
    torch.save({"model": timm_vit(**kwargs).state_dict()}, path)
    with pytest.raises(ValueError, match="does not fit"):
        mae_weights.load_mae(path, CFG)


def test_convert_rejects_unknown_block_weight():
    fb = hf_to_facebook(mae.build_mae(CFG).state_dict())
    fb["blocks.0.attn.extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="blocks.0.attn.extra.weight"):
        mae_weights.convert_timm_state_dict(fb)


# --------------------------------------------------------------------------------------------
# Features for probing
# --------------------------------------------------------------------------------------------
def test_extract_features_shapes_and_values(model):
    n = 5
    imgs = uint8_images(n, seed=18)
    vis = visible_from_counts([L, 5, 9, 1, 12], seed=18).numpy()
    feats = mae.extract_features(model, imgs, vis, batch_size=2)
    D = CFG.hidden_size
    assert feats["cls"].shape == feats["mean"].shape == (CFG.num_layers + 1, n, D)
    assert feats["patch"].shape == (n, L, D)
    assert all(v.dtype == np.float32 for v in feats.values())
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        enc = mae.encode(model, x, torch.from_numpy(vis), output_hidden_states=True)
    for k in range(CFG.num_layers + 1):
        assert np.allclose(feats["cls"][k], enc.hidden_states[k][:, 0].numpy(), atol=1e-5)
        assert np.allclose(feats["mean"][k], enc.mean_pool(k).numpy(), atol=1e-5)
    assert np.allclose(feats["patch"], enc.on_grid(L).numpy(), atol=1e-5)
    assert (feats["patch"][~vis] == 0).all()
    assert (np.abs(feats["patch"][vis]).sum(-1) > 0).all()
    # no mask = every patch visible
    full = mae.extract_features(model, imgs, None, batch_size=4)
    assert (np.abs(full["patch"]).sum(-1) > 0).all()
    assert np.allclose(full["cls"][0], feats["cls"][0], atol=1e-6)  # the embedding CLS ignores patches
    assert not np.allclose(full["cls"][-1], feats["cls"][-1], atol=1e-4)


def test_cached_visible_features_loads_second_time(model, data_dir, monkeypatch):
    imgs = uint8_images(4, seed=19)
    vis = visible_from_counts([3, 8, L, 1], seed=19).numpy()
    model_key, data_key = {"mae": "test", "seed": 0}, {"images": "uint8", "n": 4}
    calls = []
    real = mae.extract_features

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mae, "extract_features", counting)
    f1 = latent_space.cached_visible_features(model, model_key, imgs, data_key, vis, keep_patch=True)
    assert len(calls) == 1
    assert len(list((data_dir / "cache").glob("visible-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(mae, "extract_features", fail)
    f2 = latent_space.cached_visible_features(model, model_key, imgs, data_key, vis, keep_patch=True)
    assert set(f2) == set(f1) == {"cls", "mean", "patch"}
    for k in f1:
        assert np.array_equal(f1[k], f2[k])

    monkeypatch.setattr(mae, "extract_features", counting)
    f3 = latent_space.cached_visible_features(model, model_key, imgs, data_key, None, keep_patch=True)
    assert len(calls) == 2
    assert not np.array_equal(f3["patch"], f1["patch"])
    latent_space.cached_visible_features(model, {**model_key, "seed": 1}, imgs, data_key, vis, keep_patch=True)
    assert len(calls) == 3
    assert len(list((data_dir / "cache").glob("visible-*.npz"))) == 3


# --------------------------------------------------------------------------------------------
# occlusion masks as the MAE consumes them
# --------------------------------------------------------------------------------------------
def test_patch_visibility_inverts_patch_pixels():
    vis = patches.random_patches(3, L, 0.5, seed=4)
    pixels_hidden = patches.patch_pixels(vis, 8)
    assert np.array_equal(patches.patch_visibility(pixels_hidden, 8), vis)


# --------------------------------------------------------------------------------------------
# Reconstruction analyses and their figures (notebook 01)
# --------------------------------------------------------------------------------------------
def test_reconstruct_images_pastes_visible_pixels_and_round_trips_uint8(model):
    imgs = uint8_images(3, seed=30)
    vis = visible_from_counts([4, 9, L], seed=30).numpy()
    pasted = mae.reconstruct_images(model, imgs, vis, paste=True)
    raw = mae.reconstruct_images(model, imgs, vis, paste=False)
    assert pasted.shape == imgs.shape and pasted.dtype == np.uint8
    keep = ~patches.patch_pixels(vis, CFG.patch_size)  # (3, S, S) visible pixels
    assert np.array_equal(pasted[keep], imgs[keep])
    assert np.array_equal(pasted[~keep], raw[~keep])
    np.testing.assert_array_equal(patches.to_uint8(patches.to_tensor(imgs)), imgs)


def test_region_errors_only_count_hidden_pixels_in_each_region(model, monkeypatch):
    imgs = uint8_images(4, seed=31)
    top = np.zeros((32, 32), bool)
    top[:16] = True
    regions = {"top": top, "bottom": ~top}
    # a "perfect" reconstruction of the top half and a wrong one of the bottom half
    fake = imgs.copy()
    fake[:, 16:] = 255 - fake[:, 16:]
    monkeypatch.setattr(mae, "reconstruct_images", lambda m, x, v, paste=True: fake)
    errors = latent_space.region_errors(model, imgs, [0.5, 0.75], regions, seed=0)
    assert errors.shape == (2, 2)
    assert np.allclose(errors[:, 0], 0) and (errors[:, 1] > 0.05).all()


def test_mae_figures_draw_four_panels_per_row(model):
    from occfau_lib import viz

    imgs = uint8_images(2, seed=32)
    masks = [patches.random_patches(1, L, r, seed=1)[0] for r in (0.25, 0.75)]
    fig = viz.mae_views(model, imgs[0], masks, ["25%", "75%"])
    assert len(fig.axes) == 8 and [ax.get_title() for ax in fig.axes[:4]][0] == "original"
    grey = np.asarray(fig.axes[5].images[0].get_array())  # row 2, "encoder sees"
    hidden = patches.patch_pixels(masks[1], CFG.patch_size)
    assert (grey[hidden] == 200).all() and np.array_equal(grey[~hidden], imgs[0][~hidden])
    assert len(viz.mae_view(model, imgs, mask_ratio=0.5, sample=1).axes) == 4
    history = {"step": [1, 2, 3], "loss": [1.0, 0.5, 0.25], "lr": [0.1, 0.2, 0.1]}
    curve = viz.loss_curve(history)
    assert list(curve.axes[0].lines[0].get_ydata()) == [1.0, 0.5, 0.25]
    lines = viz.region_error_plot(np.arange(6.0).reshape(3, 2), [0.25, 0.5, 0.75], ["a", "b"]).axes[0].lines
    assert [list(line.get_ydata()) for line in lines] == [[0, 2, 4], [1, 3, 5]]
    bars = viz.condition_bars({"x": np.array([0.2, 0.4]), "y": np.array([1.0])}, "p").axes[0].patches
    assert [round(b.get_height(), 6) for b in bars] == [0.3, 1.0]


def test_token_drift_dropping_hides_the_occluder(model):
    clean = uint8_images(3, seed=30)
    occ = occlusion.apply(clean, "lower_half", 8, seed=0)
    drift = latent_space.token_drift(model, clean, occ.images, occ.visible)
    assert drift["dropped"].shape == drift["fed"].shape == (3,)
    assert (drift["dropped"] <= 1 + 1e-5).all()
    # nothing hidden: both ways encode the clean face exactly
    same = latent_space.token_drift(model, clean, clean, np.ones((3, L), bool))
    np.testing.assert_allclose(same["dropped"], 1, atol=1e-5)
    np.testing.assert_allclose(same["fed"], 1, atol=1e-5)
    # an occluder whose pixels equal the clean ones: feeding it changes nothing, dropping does
    fake = latent_space.token_drift(model, clean, clean, occ.visible)
    np.testing.assert_allclose(fake["fed"], 1, atol=1e-5)
    assert (fake["dropped"] < 1 - 1e-4).all()


def test_encode_depth_stops_early(model):
    x = images(2, seed=8)
    vis = visible_from_counts([L, 5], seed=8)
    with torch.no_grad():
        full = mae.encode(model, x, vis, output_hidden_states=True)
        for d in range(CFG.num_layers):
            assert torch.allclose(mae.encode(model, x, vis, depth=d).tokens, full.hidden_states[d], atol=1e-6)
        assert torch.allclose(mae.encode(model, x, vis, depth=CFG.num_layers).tokens, full.tokens, atol=1e-6)
    feats = mae.extract_features(model, patches.to_uint8(x), vis.numpy(), depth=1)
    with torch.no_grad():
        enc = mae.encode(model, patches.to_tensor(patches.to_uint8(x)), vis, depth=1)
    assert feats["mean"].shape[0] == 2  # embeddings + block 1
    np.testing.assert_allclose(feats["patch"], enc.on_grid(L).numpy(), atol=1e-5)
    np.testing.assert_allclose(feats["mean"][-1], enc.mean_pool().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="depth must be in"):
        mae.encode(model, x, vis, depth=CFG.num_layers + 1)


def test_load_mae_folder_of_another_architecture_is_an_error(model, tmp_path):
    """A Hugging Face folder holding the tiny MAE, asked for as the paper's ViT-B: named, not returned."""
    model.save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match=r"hf holds a different MAE than the paper one: .*'hidden_size': \(48, 768\)"):
        mae_weights.load_mae(tmp_path / "hf", "paper")
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"\0" * 100)  # truncated download
    with pytest.raises(ValueError, match=r"hf: cannot load the Hugging Face MAE folder"):
        mae_weights.load_mae(tmp_path / "hf", CFG)


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"PK\x03\x04 truncated zip"])
def test_load_mae_garbage_pth_names_the_file(tmp_path, content):
    path = tmp_path / "mae_pretrain.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"mae_pretrain\.pth: not a readable PyTorch checkpoint"):
        mae_weights.load_mae(path, CFG)


def test_a_truncated_cached_mae_is_rebuilt_with_a_warning(data_dir, count_pretrain):
    imgs = uint8_images(32)
    mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    (path,) = (data_dir / "cache").glob("mae-*.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"cannot read cached .*mae-.*\.pt .*not a readable PyTorch checkpoint"):
        mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)
    assert len(count_pretrain) == 2
    mae.pretrained_mae(imgs, CFG, SMALL_PT, DATA_KEY, progress=False)  # the rebuilt file is good
    assert len(count_pretrain) == 2


def test_pretrain_streams_a_dataset_through_batch_images(data_dir):
    """BP4D/DISFA never sit in memory: pretraining reads a dataset a batch at a time, and gives the
    same weights as pretraining on the same images held in an array."""
    from occfau_lib.data import ArrayDataset

    imgs = uint8_images(32)
    ds = ArrayDataset(imgs, np.zeros((32, 1), np.int8), ["a"] * 32, (1,), "toy")
    fetched = []
    real = ds.batch_images
    ds.batch_images = lambda rows: fetched.append(len(rows)) or real(rows)
    a, _ = mae.pretrain(ds, CFG, SMALL_PT, progress=False)
    b, _ = mae.pretrain(imgs, CFG, SMALL_PT, progress=False)
    assert fetched == [16, 16]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_pretrain_on_an_unlabelled_corpus_rendered_on_the_fly(data_dir):
    """The MAE's own corpus: fresh faces, never the labelled world's; cached by the corpus' key."""
    from occfau_lib.synthfacs import FaceCorpus

    corpus = FaceCorpus(32, size=32, seed=1)
    model, history = mae.pretrained_mae(corpus, CFG, SMALL_PT, corpus.key(), progress=False)
    assert len(history["loss"]) >= 1 and np.isfinite(history["loss"]).all()
    again, _ = mae.pretrained_mae(corpus, CFG, SMALL_PT, corpus.key(), progress=False)
    assert cache.model_fingerprint(again) == cache.model_fingerprint(model)
