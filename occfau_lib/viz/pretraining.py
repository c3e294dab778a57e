"""The masked autoencoder: loss curves, masked and reconstructed views, region errors (notebook 01)."""
from __future__ import annotations

import numpy as np

from .. import mae
from ..patches import patch_pixels, random_patches
from ._base import _figure, _panel_grid, _show_image


def loss_spikes(history: dict, factor: float = 3.0) -> list[dict]:
    """The first of each run of logged steps whose loss exceeds ``factor`` x the median of the five
    before: ``[{"step", "loss", "before", "parts": {part: (before, at)}}]`` for each logged loss part.
    A spike where every part jumps at once is the optimiser leaving its basin."""
    loss = np.asarray(history["loss"], np.float64)
    parts = [k for k in ("wa", "node", "edge", "edge_ce") if len(history.get(k, [])) == len(loss)]
    out, high = [], False
    for i in range(5, len(loss)):
        before = float(np.median(loss[i - 5:i]))
        was_high, high = high, bool(loss[i] > factor * before)
        if high and not was_high:
            out.append({"step": int(history["step"][i]), "loss": float(loss[i]), "before": before,
                        "parts": {k: (float(np.median(history[k][i - 5:i])), float(history[k][i])) for k in parts}})
    return out


def loss_curve(history: dict, ax=None, title: str = "MAE pretraining",
               ylabel: str = "reconstruction loss (hidden patches)", log: bool = True):
    """Training loss (log axis: the early fall and the late plateau both read) and learning rate
    of any training loop's ``history``, each :func:`loss_spikes` spike marked. Notebooks 01, 03, 04."""
    if ax is None:
        ax = _figure(5.5, 3.0).add_subplot()
    ax.plot(history["step"], history["loss"], marker=".", color="#0072B2")
    if log and min(history["loss"], default=1) > 0:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.5, 2, 40 rather than 5x10^-1
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=6)
    for spike in loss_spikes(history):
        ax.annotate(f"step {spike['step']}: x{spike['loss'] / spike['before']:.0f}", (spike["step"], spike["loss"]),
                    xytext=(6, -2), textcoords="offset points", fontsize=7, color="#D55E00")
        ax.plot(spike["step"], spike["loss"], "o", mfc="none", color="#D55E00", ms=8)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel, color="#0072B2")
    lr_ax = ax.twinx()
    lr_ax.plot(history["step"], history["lr"], color="#E69F00", alpha=0.7, ls="--")
    lr_ax.set_ylabel("learning rate (dashed)", color="#9a6700")
    ax.set_title(title)
    return ax.figure


def run_curves(records: list[dict]):
    """Loss curves of a command-line run's ``metrics.jsonl`` records, one panel per kind of model,
    one line per fold; models loaded from the cache are skipped. Notebook 05."""
    trained = [r for r in records if r.get("history", {}).get("loss")]
    kinds = list(dict.fromkeys(r["model"] for r in trained))
    if not kinds:
        raise ValueError("run_curves: no record with a loss history (were all models loaded from the cache?)")
    fig = _figure(4.2 * len(kinds), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(kinds)))
    for ax, kind in zip(axes, kinds):
        for r in (r for r in trained if r["model"] == kind):
            label = f"fold {r['fold']}" if "fold" in r else kind
            ax.plot(r["history"]["step"], r["history"]["loss"], label=label)
        ax.set(title=kind, xlabel="optimiser step", ylabel="training loss")
        if all(min(r["history"]["loss"]) > 0 for r in trained if r["model"] == kind):
            ax.set_yscale("log")  # the early fall and the late plateau both read
        ax.legend(fontsize=7)
    return fig


def masked_view(image: np.ndarray, visible: np.ndarray, patch_size: int) -> np.ndarray:
    """uint8 image (S, S, 3) with its hidden patches light grey: what the encoder receives. Notebook 01."""
    return np.where(patch_pixels(visible, patch_size)[..., None], np.uint8(200), image)


def mae_views(model, images: np.ndarray, visibles: list[np.ndarray], labels: list[str]):
    """One row per visibility mask (L,): original / what the encoder sees / reconstruction /
    reconstruction with the visible pixels pasted in, of one image or one per row. Notebook 01."""
    images = np.asarray(images)
    images = np.repeat(images[None], len(visibles), 0) if images.ndim == 3 else images
    vis = np.stack(visibles)
    raw = mae.reconstruct_images(model, images, vis, paste=False)
    pasted = mae.reconstruct_images(model, images, vis, paste=True)
    p = model.config.patch_size
    titles = ("original", "encoder sees", "reconstruction", "+ visible pixels")
    fig, axes = _panel_grid(4 * len(vis), 4, 1.5, label_width=1.0)
    for r, label in enumerate(labels):
        row = (images[r], masked_view(images[r], vis[r], p), raw[r], pasted[r])
        for c, img in enumerate(row):
            _show_image(axes[4 * r + c], img)
            if r == 0:
                axes[c].set_title(titles[c])
        axes[4 * r].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return fig


def mae_view(model, images: np.ndarray, mask_ratio: float = 0.75, sample: int = 0, seed: int = 0):
    """:func:`mae_views` of ``images[sample]`` under random masking: notebook 01's mask-ratio widget."""
    L = model.vit.embeddings.patch_embeddings.num_patches
    visible = random_patches(1, L, mask_ratio, seed)[0]
    return mae_views(model, images[sample], [visible], [f"{mask_ratio:.0%} hidden"])


def region_error_plot(errors: np.ndarray, ratios, regions, ax=None):
    """Hidden pixels' reconstruction error per region against the mask ratio,
    ``errors`` (n_ratios, n_regions) from ``latent_space.region_errors``. Notebook 01."""
    if ax is None:
        ax = _figure(5.5, 3.2).add_subplot()
    for g, region in enumerate(regions):
        ax.plot(ratios, errors[:, g], marker="o", label=region)
    ax.set_xlabel("fraction of patches hidden")
    ax.set_ylabel("MSE of hidden pixels")
    ax.legend(fontsize=7, ncols=2)
    ax.set_title("Where is the face hard to invent?")
    return ax.figure


def condition_bars(values: dict[str, np.ndarray], ylabel: str, title: str = "", ax=None):
    """Mean (bar) and spread (dots) of a per-sample score per condition. Notebook 01."""
    if ax is None:
        ax = _figure(1.3 * len(values) + 2, 3.2).add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: same figure every time
    for k, (name, v) in enumerate(values.items()):
        v = np.asarray(v, float)
        ax.bar(k, v.mean(), color=f"C{k}", alpha=0.5)
        ax.scatter(k + rng.uniform(-0.25, 0.25, len(v)), v, s=6, color=f"C{k}")
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax.figure
