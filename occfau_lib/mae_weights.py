"""Official MAE weights from a local path, never downloaded: Hugging Face folders and facebookresearch/timm files.

With ``$OCCFAU_MAE_WEIGHTS`` (:data:`WEIGHTS_ENV`) set, the notebooks and the command line use
those weights instead of pretraining (:func:`experiments.mae_for_profile`, notebook 05).
:func:`load_mae` reads a Hugging Face ``ViTMAEForPreTraining`` folder, or converts a
facebookresearch/mae or timm ``vit_*.mae`` checkpoint (:func:`convert_timm_state_dict`) into it.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from transformers import ViTMAEForPreTraining

from .cache import read_state
from .config import MAE_CONFIGS, MAEConfig
from .mae import build_mae, mae_config_of

#: The environment variable naming a local folder or file of official MAE weights.
WEIGHTS_ENV = "OCCFAU_MAE_WEIGHTS"
#: The fields of :class:`MAEConfig` that fix the weights' shapes (checked when loading weights).
ARCHITECTURE_FIELDS = ("img_size", "patch_size", "hidden_size", "num_layers", "num_heads", "decoder_hidden_size",
                       "decoder_layers", "decoder_heads")


def _from_timm_keys(sd: dict[str, torch.Tensor], prefix: str, hf_prefix: str) -> dict[str, torch.Tensor]:
    """Map one stack of timm/facebookresearch ViT blocks (``blocks.i.attn.qkv`` ...) to HF names."""
    out = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        i, rest = key[len(prefix):].split(".", 1)
        base = f"{hf_prefix}.{i}."
        if rest.startswith("attn.qkv."):
            kind = rest.rsplit(".", 1)[1]  # weight | bias
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{base}attention.{name}.{kind}"] = part
            continue
        rename = {"norm1.": "layernorm_before.", "norm2.": "layernorm_after.", "attn.proj.": "attention.o_proj.",
                  "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."}
        for old, new in rename.items():
            if rest.startswith(old):
                out[base + new + rest[len(old):]] = value
                break
        else:
            raise KeyError(f"unexpected weight {key!r} in the MAE checkpoint")
    return out


def convert_timm_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """facebookresearch/mae or timm ``vit_*.mae`` weights -> ``ViTMAEForPreTraining`` names (the
    decoder only where present: timm's ``.mae`` weights are encoder-only)."""
    out = {
        "vit.embeddings.cls_token": sd["cls_token"],
        "vit.embeddings.position_embeddings": sd["pos_embed"],
        "vit.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "vit.layernorm.weight": sd["norm.weight"],
        "vit.layernorm.bias": sd["norm.bias"],
    }
    out.update(_from_timm_keys(sd, "blocks.", "vit.layers"))
    if "decoder_embed.weight" in sd:
        for name in ("decoder_embed.weight", "decoder_embed.bias", "decoder_norm.weight", "decoder_norm.bias",
                     "decoder_pred.weight", "decoder_pred.bias", "mask_token", "decoder_pos_embed"):
            out[f"decoder.{name}"] = sd[name]
        out.update(_from_timm_keys(sd, "decoder_blocks.", "decoder.decoder_layers"))
    return out


def load_mae(path: str | Path, cfg: MAEConfig | str = "paper") -> ViTMAEForPreTraining:
    """Official MAE weights of architecture ``cfg`` from a Hugging Face folder (e.g. a saved
    ``facebook/vit-mae-base``) or a facebookresearch/mae or timm ``.mae`` file (timm's: encoder only,
    the decoder stays random, so reconstructions need the facebookresearch file). Never downloads."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no MAE weights at {path}: expected a Hugging Face directory (config.json + model.safetensors, "
            f"e.g. facebook/vit-mae-base saved with save_pretrained) or a facebookresearch/timm MAE .pth file"
        )
    wanted = MAE_CONFIGS[cfg] if isinstance(cfg, str) else cfg
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} is a directory without config.json: not a Hugging Face model folder")
        try:
            model = ViTMAEForPreTraining.from_pretrained(path, local_files_only=True).eval()
        except Exception as err:  # bad config.json, truncated safetensors, ...
            raise ValueError(f"{path}: cannot load the Hugging Face MAE folder ({type(err).__name__}: {err})") from None
        differ = {k: (v, getattr(wanted, k)) for k, v in asdict(mae_config_of(model)).items()
                  if k in ARCHITECTURE_FIELDS and v != getattr(wanted, k)}
        if differ:
            raise ValueError(f"{path} holds a different MAE than the {cfg if isinstance(cfg, str) else 'requested'} "
                             f"one: (found, expected) {differ}")
        return model
    state = read_state(path)  # a user's file: unreadable -> CorruptFile naming it
    state = state.get("model", state.get("state_dict", state))
    model = build_mae(cfg)
    try:
        converted = convert_timm_state_dict(state)
    except (KeyError, AttributeError) as err:
        raise ValueError(f"{path} is not an MAE pretraining checkpoint: no {err} "
                         f"(expected facebookresearch/mae or timm vit_*.mae encoder weights)") from None
    expected = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
             for k, v in converted.items() if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"{path.name} does not fit the {cfg} MAE: wrong shapes {wrong[:3]}")
    missing, unexpected = model.load_state_dict(converted, strict=False)
    encoder_missing = [k for k in missing if k.startswith("vit.")]
    if encoder_missing or unexpected:
        raise ValueError(f"{path.name} does not fit the {cfg} MAE: missing {encoder_missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model.eval()
