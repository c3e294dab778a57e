"""The masked autoencoder (MAE): build, encode chosen patches, reconstruct, pretrain.

Taught in notebooks 01 (pretraining) and 02 (probing the latent); the student of notebook 04 encodes
occluded faces with :func:`encode`. Built on transformers' ``ViTMAEForPreTraining`` with **chosen
masking** on top: :func:`encode` runs the encoder on exactly the patches a visibility mask ``(B, L)``
keeps. Faces may keep different numbers of patches: kept tokens are left-aligned and padded, and an
attention mask hides the padding, so each face's latents equal those of encoding it alone (tested).
Images enter as float ``(B, 3, S, S)`` in [0, 1]; official weights: :mod:`mae_weights`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import ViTMAEConfig, ViTMAEForPreTraining

from .cache import checkpoint_or_train, read_state, save_model
from .config import INFERENCE_BATCH, MAE_CONFIGS, MAEConfig, PretrainConfig
from .data import AUDataset
from .patches import denormalize, normalize, patch_pixels, random_visible, to_tensor, to_uint8
from .synthfacs import FaceCorpus
from .train import Engine, Run

#: Bump when pretraining changes what it produces: cached MAE checkpoints are then retrained.
MAE_VERSION = 2


def build_mae(cfg: MAEConfig | str = "tiny") -> ViTMAEForPreTraining:
    """A randomly initialised ViT-MAE of the given architecture (MAE's initialisation)."""
    cfg = MAE_CONFIGS[cfg] if isinstance(cfg, str) else cfg
    hf = ViTMAEConfig(
        image_size=cfg.img_size, patch_size=cfg.patch_size, hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, intermediate_size=4 * cfg.hidden_size,
        decoder_hidden_size=cfg.decoder_hidden_size, decoder_num_hidden_layers=cfg.decoder_layers,
        decoder_num_attention_heads=cfg.decoder_heads, decoder_intermediate_size=4 * cfg.decoder_hidden_size,
        mask_ratio=cfg.mask_ratio, norm_pix_loss=cfg.norm_pix_loss, layer_norm_eps=1e-6,
    )  # fmt: skip
    model = ViTMAEForPreTraining(hf)
    # transformers leaves the sin-cos position embeddings, CLS and mask tokens at zero when a model is
    # built from a config: set them as MAE does, or the encoder sees an unordered bag of patches.
    with torch.no_grad():
        model.vit.embeddings.position_embeddings.copy_(_sincos_positions(cfg.grid, cfg.hidden_size))
        model.decoder.decoder_pos_embed.copy_(_sincos_positions(cfg.grid, cfg.decoder_hidden_size))
        nn.init.normal_(model.vit.embeddings.cls_token, std=0.02)
        nn.init.normal_(model.decoder.mask_token, std=0.02)
    return model


def random_encoder(model_or_cfg: ViTMAEForPreTraining | MAEConfig, seed: int = 0) -> ViTMAEForPreTraining:
    """The control of every claim about pretraining: the same architecture, randomly initialised
    from ``seed`` (the global random state is left as it was), in eval mode."""
    cfg = model_or_cfg if isinstance(model_or_cfg, MAEConfig) else mae_config_of(model_or_cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_mae(cfg).eval()


def _sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos position embedding (1, 1 + grid**2, dim), CLS first, in the
    half-rotated layout of official MAE weights."""
    from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

    pe = build_2d_sinusoidal_position_embedding(height=grid, width=grid, embed_dim=dim, cls_token=True)
    return torch.cat([pe[..., dim // 2 :], pe[..., : dim // 2]], -1).reshape(1, grid * grid + 1, dim)


def mae_config_of(model: ViTMAEForPreTraining) -> MAEConfig:
    """Read the architecture back from a model (e.g. one loaded from official weights)."""
    c = model.config
    return MAEConfig(c.image_size, c.patch_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                     c.decoder_hidden_size, c.decoder_num_hidden_layers, c.decoder_num_attention_heads,
                     c.mask_ratio, c.norm_pix_loss)


# --- Encoding exactly the visible patches ---------------------------------------------------------
def check_images(images: torch.Tensor, model: ViTMAEForPreTraining) -> None:
    """Raise a clear error unless ``images`` is float (B, 3, S, S) at the model's size."""
    size = model.config.image_size
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"MAE expects RGB images as a float tensor (B, 3, {size}, {size}); got {shape}")
    if tuple(images.shape[2:]) != (size, size):
        raise ValueError(f"MAE was built for {size}x{size} images; got {images.shape[2]}x{images.shape[3]} "
                         f"(resize the data or load a model of that size)")
    if not images.is_floating_point():
        raise ValueError("MAE expects float images in [0, 1]; convert uint8 with images.float() / 255")


@dataclass
class Encoded:
    """Encoder output for chosen visible patches.

    tokens: (B, 1 + K, D) final layer-normed tokens, CLS first, then up to K patch tokens
    ids_keep: (B, K) grid index of each patch token (padding positions repeat a valid index)
    valid: (B, K) True for real tokens, False for padding
    hidden_states: per layer (embeddings, block 1, ..., block N) each (B, 1 + K, D), if asked
    """

    tokens: torch.Tensor
    ids_keep: torch.Tensor
    valid: torch.Tensor
    hidden_states: list[torch.Tensor] | None = None

    @property
    def cls(self) -> torch.Tensor:  # (B, D)
        return self.tokens[:, 0]

    def mean_pool(self, layer: int | None = None) -> torch.Tensor:
        """Mean of the real patch tokens (B, D) (of ``hidden_states[layer]`` if given)."""
        x = self.tokens if layer is None else self.hidden_states[layer]
        w = self.valid.unsqueeze(-1).to(x.dtype)  # (B, K, 1)
        return (x[:, 1:] * w).sum(1) / w.sum(1).clamp(min=1)

    def at_depth(self, depth: int | None) -> Encoded:
        """What ``encode(..., depth=depth)`` returns, read off this full pass with ``hidden_states``:
        one encoder pass serves readers of different depths."""
        if depth is None or depth == len(self.hidden_states) - 1:
            return Encoded(self.tokens, self.ids_keep, self.valid)
        return Encoded(self.hidden_states[depth], self.ids_keep, self.valid)

    def on_grid(self, num_patches: int, layer: int | None = None) -> torch.Tensor:
        """Patch tokens scattered back onto the grid (B, L, D); hidden patches are zero."""
        x = (self.tokens if layer is None else self.hidden_states[layer])[:, 1:]
        out = x.new_zeros(x.shape[0], num_patches, x.shape[-1])
        src = x * self.valid.unsqueeze(-1).to(x.dtype)
        return out.scatter_add(1, self.ids_keep.unsqueeze(-1).expand_as(x), src)


def _keep_order(visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-align each face's visible patch indices (in grid order): ids (B, K), valid (B, K)."""
    B, L = visible.shape
    counts = visible.sum(1)  # (B,)
    if int(counts.min()) < 1:
        raise ValueError("every sample needs at least one visible patch")
    K = int(counts.max())
    # stable sort puts visible patches first, each group in grid order
    order = torch.sort((~visible).to(torch.int8), dim=1, stable=True).indices[:, :K]  # (B, K)
    valid = torch.arange(K).unsqueeze(0) < counts.unsqueeze(1)  # (B, K)
    ids = torch.where(valid, order, order[:, :1])  # padding points at a real patch (masked anyway)
    return ids, valid


def encode(model: ViTMAEForPreTraining, images: torch.Tensor, visible: torch.Tensor | None = None,
           output_hidden_states: bool = False, depth: int | None = None) -> Encoded:
    """Run the MAE encoder on the visible patches of ``images`` (B, 3, S, S) in [0, 1].

    visible: (B, L) bool over the patch grid (row-major); None = every patch.
    depth: run only the first ``depth`` transformer blocks (None = all); ``tokens`` are then that
    block's output (without the encoder's final layer norm) and the later blocks cost nothing.
    """
    check_images(images, model)
    emb = model.vit.embeddings
    B = images.shape[0]
    L = emb.patch_embeddings.num_patches
    device = images.device
    visible = torch.ones(B, L, dtype=torch.bool) if visible is None else torch.as_tensor(visible).to("cpu", torch.bool)
    if visible.shape != (B, L):
        raise ValueError(f"visible must be (B, L) = ({B}, {L}); got {tuple(visible.shape)}")
    ids, valid = _keep_order(visible)
    ids, valid = ids.to(device), valid.to(device)

    x = emb.patch_embeddings(normalize(images)) + emb.position_embeddings[:, 1:]  # (B, L, D)
    x = torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, K, D)
    cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(B, -1, -1)  # (B, 1, D)
    h = torch.cat([cls, x], 1)  # (B, 1 + K, D)
    if depth is not None and not 0 <= depth <= len(model.vit.layers):
        raise ValueError(f"depth must be in 0..{len(model.vit.layers)} for this encoder; got {depth}")
    return run_blocks(model, Encoded(h, ids, valid, [h] if output_hidden_states else None), 0, depth)


def run_blocks(model: ViTMAEForPreTraining, enc: Encoded, start: int, stop: int | None = None) -> Encoded:
    """Continue an encoding whose tokens are block ``start``'s output (0: the embeddings): run blocks
    ``start + 1 .. stop`` (None: to the last, then the final layer norm). A student that fine-tunes
    its top blocks runs them on a frozen encoding of the blocks below."""
    blocks = model.vit.layers
    stop = len(blocks) if stop is None else stop
    if not 0 <= start <= stop <= len(blocks):
        raise ValueError(f"blocks must satisfy 0 <= start <= stop <= {len(blocks)} for this encoder; "
                         f"got start={start}, stop={stop}")
    h, valid = enc.tokens, enc.valid
    B = h.shape[0]
    keys = torch.cat([valid.new_ones(B, 1), valid], 1)  # (B, 1 + K)
    # additive mask: no query attends to a padding key
    attn_mask = torch.zeros(B, 1, 1, keys.shape[1], dtype=h.dtype, device=h.device)
    attn_mask = attn_mask.masked_fill(~keys.view(B, 1, 1, -1), torch.finfo(h.dtype).min)
    hidden = None if enc.hidden_states is None else list(enc.hidden_states)
    for layer in blocks[start:stop]:
        h = layer(h, attn_mask)
        if hidden is not None:
            hidden.append(h)
    return Encoded(model.vit.layernorm(h) if stop == len(blocks) else h, enc.ids_keep, valid, hidden)


def decode(model: ViTMAEForPreTraining, enc: Encoded) -> torch.Tensor:
    """MAE decoder on encoded visible tokens: predicted patches (B, L, P*P*3) in the loss's space
    (normalised pixels, or per-patch normalised when ``norm_pix_loss``)."""
    dec = model.decoder
    B, K = enc.valid.shape
    L = dec.decoder_pos_embed.shape[1] - 1
    x = dec.decoder_embed(enc.tokens)  # (B, 1 + K, Dd)
    # every grid position starts as the mask token; real tokens go back to their patch, and
    # padding goes to a spare slot L that is dropped again
    full = dec.mask_token.to(x.dtype).expand(B, L + 1, -1).clone()  # (B, L + 1, Dd)
    ids = torch.where(enc.valid, enc.ids_keep, L)  # (B, K)
    full = full.scatter(1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]), x[:, 1:])[:, :L]
    h = torch.cat([x[:, :1], full], 1) + dec.decoder_pos_embed  # (B, 1 + L, Dd)
    for layer in dec.decoder_layers:
        h = layer(h)
    return dec.decoder_pred(dec.decoder_norm(h))[:, 1:]  # (B, L, P*P*3)


def patch_targets(model: ViTMAEForPreTraining, images: torch.Tensor) -> torch.Tensor:
    """What the decoder learns to predict, per patch (B, L, P*P*3): normalised pixels, further
    normalised per patch when the model uses ``norm_pix_loss`` (as MAE's own loss does)."""
    target = model.patchify(normalize(images))
    if model.config.norm_pix_loss:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return target


def masked_loss(model: ViTMAEForPreTraining, images: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """MAE's loss: mean squared error over the **hidden** patches only (visible ones are free)."""
    pred = decode(model, encode(model, images, visible))  # (B, L, P*P*3)
    per_patch = ((pred.float() - patch_targets(model, images)) ** 2).mean(-1)  # (B, L), fp32 even under bf16
    hidden = (~visible).to(per_patch.device, per_patch.dtype)
    return (per_patch * hidden).sum() / hidden.sum().clamp(min=1)


@torch.no_grad()
def reconstruct(model: ViTMAEForPreTraining, images: torch.Tensor, visible: torch.Tensor,
                enc: Encoded | None = None) -> torch.Tensor:
    """Images (B, 3, S, S) in [0, 1] decoded from the visible patches only (``enc``: their encoding,
    if already computed). With ``norm_pix_loss`` each patch is shown with the mean/std of its true
    pixels (MAE's usual visualisation): for display only, never for evaluation."""
    pred = decode(model, encode(model, images, visible) if enc is None else enc)  # (B, L, P*P*3)
    if model.config.norm_pix_loss:
        target = model.patchify(normalize(images))
        pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
    size = model.config.image_size
    return denormalize(model.unpatchify(pred, (size, size)))


def paste_visible(images: torch.Tensor, recon: torch.Tensor, visible: torch.Tensor, patch_size: int):
    """Reconstruction in hidden patches, the original pixels in visible ones (B, 3, S, S)."""
    keep = ~patch_pixels(visible.cpu(), patch_size)[:, None].to(images.device)  # (B, 1, S, S) visible
    return torch.where(keep, images, recon)


# --- Pretraining: AdamW, warm-up + cosine, checkpoint-or-train with resume ------------------------
def pretrain(images: np.ndarray | AUDataset | FaceCorpus, mae_cfg: MAEConfig, cfg: PretrainConfig, device: str | Engine = "cpu",
             progress: bool = True, resume_path: Path | None = None, log_every: int = 50,
             mask_ratios: tuple[float, float] | None = None) -> tuple[ViTMAEForPreTraining, dict]:
    """Pretrain a fresh MAE with random masking on uint8 images (N, S, S, 3) or on anything with
    ``batch_images`` (a dataset's files, a :class:`synthfacs.FaceCorpus`), streamed a batch at a
    time; labels are never read. Resumes from ``resume_path`` (:class:`train.EpochCheckpoint`).
    ``mask_ratios`` (low, high): each batch hides a share drawn uniformly from that range, as many
    patches as an occluder may hide, instead of always ``mae_cfg.mask_ratio``.
    Returns the model and its history {"step", "loss", "lr", "images_per_s"}."""
    engine = Engine.of(device)
    config = {"mae": asdict(mae_cfg), "pretrain": asdict(cfg), "n_images": int(len(images)), **engine.key(),
              **_ratios_key(mask_ratios)}
    torch.manual_seed(cfg.seed)
    objective = engine.place(_MaskedObjective(build_mae(mae_cfg)))
    opt = engine.adamw(objective.parameters(), cfg.lr, cfg.weight_decay, betas=(0.9, 0.95))  # MAE's betas
    run = Run("MAE pretraining", objective, opt, n=len(images), schedule=cfg, config=config, engine=engine,
              resume_path=resume_path, progress=progress, log_every=log_every)
    fetch = images.batch_images if hasattr(images, "batch_images") else images.__getitem__
    for epoch in range(run.epoch, cfg.epochs):
        for _, faces in run.batches(fetch):
            x = to_tensor(engine.batch(faces))  # (B, 3, S, S): the whole batch, the same masks on every process
            ratio = mae_cfg.mask_ratio
            if mask_ratios is not None:
                low, high = mask_ratios
                ratio = low + (high - low) * float(torch.rand((), generator=run.gen))
            visible = random_visible(len(x), mae_cfg.num_patches, ratio, run.gen)  # (B, L), True = visible
            with engine.autocast():
                loss = run.net(x[run.mine], visible[run.mine])  # MSE on the hidden patches only
            run.set_lr(opt, loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.log(loss)
        run.end_epoch()
    return objective.mae.eval(), run.finish()


def _ratios_key(mask_ratios: tuple[float, float] | None) -> dict:
    """The key entry of a varying mask ratio: none for the fixed ratio, so its keys stay as they were."""
    if mask_ratios is None:
        return {}
    low, high = mask_ratios
    if not 0 <= low <= high < 1:
        raise ValueError(f"mask_ratios must be (low, high) with 0 <= low <= high < 1; got {mask_ratios}")
    return {"mask_ratios": [float(low), float(high)]}


class _MaskedObjective(nn.Module):
    """:func:`masked_loss` as a module's forward, so DistributedDataParallel (which hooks forward)
    can wrap MAE pretraining."""

    def __init__(self, model: ViTMAEForPreTraining):
        super().__init__()
        self.mae = model

    def forward(self, images: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return masked_loss(self.mae, images, visible)


def mae_key(mae_cfg: MAEConfig, cfg: PretrainConfig, data_key: dict, device: str | Engine = "cpu",
            mask_ratios: tuple[float, float] | None = None) -> dict:
    """The cache key of an MAE pretrained with this architecture, schedule and data (:func:`pretrained_mae`)."""
    return {"mae": asdict(mae_cfg), "pretrain": asdict(cfg), "data": data_key, "version": MAE_VERSION,
            **Engine.of(device).key(), **_ratios_key(mask_ratios)}


def pretrained_mae(images: np.ndarray | AUDataset | FaceCorpus, mae_cfg: MAEConfig, cfg: PretrainConfig, data_key: dict,
                   device: str | Engine = "cpu", progress: bool = True, resume: bool = True,
                   mask_ratios: tuple[float, float] | None = None) -> tuple[ViTMAEForPreTraining, dict]:
    """The MAE for this architecture, schedule and data from the cache, else pretrained (resuming an
    interrupted run) and saved: :func:`cache.checkpoint_or_train`."""
    engine = Engine.of(device)
    config = mae_key(mae_cfg, cfg, data_key, engine, mask_ratios)

    def load(p):
        state = read_state(p)
        model = build_mae(mae_cfg)
        model.load_state_dict(state["model"])
        return (model.to(engine.device).eval(), state["history"]), state["config"]

    return checkpoint_or_train("mae", config, lambda partial: pretrain(
        images, mae_cfg, cfg, engine, progress, resume_path=partial, mask_ratios=mask_ratios), save_model, load, resume)


# --- Probe-ready features of every layer ----------------------------------------------------------
@torch.no_grad()
def extract_features(model: ViTMAEForPreTraining, images: np.ndarray, visible: np.ndarray | None = None,
                     batch_size: int = INFERENCE_BATCH, progress: bool = False,
                     depth: int | None = None) -> dict[str, np.ndarray]:
    """Encode uint8 images (N, S, S, 3) once through ``visible`` (N, L) (None: all) and return
    float32 features of every layer up to ``depth`` (None: all):

    - ``cls``:   (n_layers + 1, N, D) CLS token after the embeddings and after every block
    - ``mean``:  (n_layers + 1, N, D) mean of the visible patch tokens, same layers
    - ``patch``: (N, L, D) last layer's patch tokens on the grid, zeros where hidden
    """
    model.eval()
    device = next(model.parameters()).device
    L = model.vit.embeddings.patch_embeddings.num_patches
    cls, mean, patch = [], [], []
    for i in tqdm(range(0, len(images), batch_size), desc="encoding", disable=not progress):
        x = to_tensor(images[i : i + batch_size]).to(device)
        vis = None if visible is None else torch.as_tensor(visible[i : i + batch_size])
        enc = encode(model, x, vis, output_hidden_states=True, depth=depth)
        layers = range(len(enc.hidden_states))
        cls.append(torch.stack([enc.hidden_states[k][:, 0] for k in layers]).cpu())
        mean.append(torch.stack([enc.mean_pool(k) for k in layers]).cpu())
        patch.append(enc.on_grid(L).cpu())
    return {"cls": torch.cat(cls, 1).numpy(), "mean": torch.cat(mean, 1).numpy(), "patch": torch.cat(patch).numpy()}


# --- What reconstructions tell us (notebook 01) ---------------------------------------------------
@torch.no_grad()
def reconstruct_images(model: ViTMAEForPreTraining, images: np.ndarray, visible: np.ndarray, paste: bool = True,
                       batch_size: int = INFERENCE_BATCH, encoded: list[Encoded] | None = None) -> np.ndarray:
    """uint8 reconstructions (N, S, S, 3) from the visible patches (N, L); with ``paste`` visible
    patches keep their true pixels. ``encoded``: the encoding per ``batch_size`` rows, if computed."""
    out = []
    p = model.config.patch_size
    for j, i in enumerate(range(0, len(images), batch_size)):
        x, vis = to_tensor(images[i : i + batch_size]), torch.as_tensor(visible[i : i + batch_size])
        rec = reconstruct(model, x, vis, None if encoded is None else encoded[j])
        out.append(to_uint8(paste_visible(x, rec, vis, p) if paste else rec))
    return np.concatenate(out)
