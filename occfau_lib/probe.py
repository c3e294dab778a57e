"""Linear probes: how much AU information a frozen feature space holds, and how much survives hiding.

Taught in notebook 02. The method rests on one claim: the latent tokens an MAE computes from the
**visible** patches of a face still carry what is needed to recognise AUs hidden under an occluder.
A *linear probe* measures that without training the encoder: features are computed once by the
frozen encoder and one logistic regression per AU is fitted on top, under the subject-exclusive
3-fold protocol. Probes trained on the *clean* features can be scored on the same faces encoded with
patches hidden: the AU information that survives hiding. The hiding conditions themselves are
:mod:`latent_space`'s.
"""
from __future__ import annotations

import contextlib
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .metrics import aggregate_folds, evaluate
from .patches import patch_pixels

#: Upper bound on the positive-class weight of a rare AU (and 1 / it for a very common one).
MAX_POS_WEIGHT = 10.0


# --- The probe ------------------------------------------------------------------------------------
class LinearProbe(nn.Module):
    """MAE-style linear probe, one logit per AU: ``BatchNorm1d(D, affine=False)`` then ``Linear(D, n_au)``.

    Features of different layers and encoders live on very different scales; He et al. (MAE, 2022,
    appendix A.2) put a batch norm **without** affine parameters first so that one learning rate
    suits them all. It only standardises each feature with the training set's statistics, a fixed
    affine map: the probe stays exactly linear, and layers and encoders compare fairly.
    """

    def __init__(self, dim: int, n_au: int, hidden: int = 0):
        super().__init__()
        # momentum=None: the running statistics are the training set's mean and variance
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=None)
        # hidden > 0: an MLP probe; MAE's features are weak under linear probing and strong under
        # partial fine-tuning (He et al. 2022, fig. 9), and the student is a non-linear reader too
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.GELU()) if hidden else None
        self.linear = nn.Linear(hidden or dim, n_au)
        # MAE's probe head initialisation: the probe starts neutral
        nn.init.trunc_normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, n_au) logits
        x = self.norm(x)
        return self.linear(x if self.hidden is None else self.hidden(x))


def positive_weights(labels: np.ndarray, max_weight: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Per-AU weight of the positive term in the BCE loss: ``#absent / #present`` over the known
    labels, clipped to ``[1 / max_weight, max_weight]``; 1 for an AU never present. Most AUs are
    rare: unweighted, a probe almost never predicts them and scores an F1 near 0 at threshold 0.5
    (ME-GraphAU's loss weights AUs for the same reason). The clip keeps an AU with a handful of
    positives from dominating the gradient."""
    y = np.asarray(labels)
    present = (y == 1).sum(0).astype(np.float64)  # (n_au,)
    absent = (y == 0).sum(0).astype(np.float64)  # (n_au,)
    ratio = np.where(present > 0, absent / np.maximum(present, 1), 1.0)
    return np.clip(ratio, 1 / max_weight, max_weight).astype(np.float32)


def _check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D); got shape {x.shape} (flatten or pick a layer first)")
    if y.ndim != 2 or len(y) != len(x):
        raise ValueError(f"labels must be (N, n_au) with N = {len(x)} rows; got shape {y.shape}")
    if len(x) < 2:
        raise ValueError("a probe needs at least 2 training rows (batch norm needs a batch)")
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))


@contextlib.contextmanager
def _threads_for(work: int):
    """Run small probes single-threaded (docs/decisions.md, "Smaller choices")."""
    before = torch.get_num_threads()
    if work < 1_000_000:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, epochs: int, batch_size: int = 256, lr: float = 1e-2,
              weight_decay: float = 1e-4, seed: int = 0, balance: bool = True, hidden: int = 0) -> LinearProbe:
    """Train a :class:`LinearProbe` on frozen features ``train_x`` (N, D) for labels ``train_y``
    (N, n_au) of 1 / 0 / -1: AdamW, cosine decay to 0, BCE averaged over the **known** labels only
    (-1 is not "absent"), positives weighted by :func:`positive_weights` with ``balance``.
    ``hidden`` > 0: an MLP probe of that width. Deterministic in ``seed``; the global RNG is left
    untouched (default ``lr``: docs/decisions.md, "Smaller choices")."""
    x, y = _check_xy(train_x, train_y)
    return _train(lambda: LinearProbe(x.shape[1], y.shape[1], hidden), x, y, epochs, batch_size, lr, weight_decay,
                  seed, balance)


def fit_probes(train_x: np.ndarray, train_y: np.ndarray, epochs: int, **fit_kwargs) -> list[LinearProbe]:
    """:func:`fit_probe` for K feature sets ``train_x`` (K, N, D) with the same labels, in one
    training loop (:class:`StackedProbe`; docs/decisions.md, "Smaller choices"): K linear probes
    equal to K separate calls up to float rounding."""
    train_x = np.asarray(train_x, dtype=np.float32)
    if train_x.ndim != 3:
        raise ValueError(f"train_x must be (K, N, D) feature sets; got shape {train_x.shape}")
    _, y = _check_xy(train_x[0], train_y)  # (N, n_au)
    x = torch.from_numpy(np.ascontiguousarray(train_x.transpose(1, 0, 2)))  # (N, K, D): one row gathers all K
    k, dim = train_x.shape[0], train_x.shape[2]
    stacked = _train(lambda: StackedProbe(LinearProbe(dim, y.shape[1]), k), x, y, epochs, **fit_kwargs)
    return stacked.unstack()


class StackedProbe(nn.Module):
    """K independent :class:`LinearProbe` side by side, (B, K, D) -> (B, K, n_au): one batch norm
    over the K x D features (per-feature statistics, as K separate ones) and K copies of
    ``probe``'s linear map."""

    def __init__(self, probe: LinearProbe, k: int):
        super().__init__()
        dim = probe.linear.in_features
        self.norm = nn.BatchNorm1d(k * dim, affine=False, momentum=None)
        self.weight = nn.Parameter(probe.linear.weight.detach()[None].repeat(k, 1, 1))  # (K, n_au, D)
        self.bias = nn.Parameter(probe.linear.bias.detach()[None].repeat(k, 1))  # (K, n_au)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, K, D) -> (B, K, n_au)
        z = self.norm(x.reshape(len(x), -1)).view_as(x)  # (B, K, D)
        return torch.einsum("bkd,kod->bko", z, self.weight) + self.bias

    def unstack(self) -> list[LinearProbe]:
        """The K probes as ordinary :class:`LinearProbe` (evaluation mode)."""
        k, n_au, dim = self.weight.shape
        probes = []
        for i in range(k):
            probe = LinearProbe(dim, n_au)
            part = slice(i * dim, (i + 1) * dim)
            with torch.no_grad():
                probe.norm.running_mean.copy_(self.norm.running_mean[part])
                probe.norm.running_var.copy_(self.norm.running_var[part])
                probe.norm.num_batches_tracked.copy_(self.norm.num_batches_tracked)
                probe.linear.weight.copy_(self.weight[i])
                probe.linear.bias.copy_(self.bias[i])
            probes.append(probe.eval())
        return probes


def _train(make, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int = 256, lr: float = 1e-2,
           weight_decay: float = 1e-4, seed: int = 0, balance: bool = True):
    """The training loop of :func:`fit_probe` and :func:`fit_probes`: ``make()`` builds the model
    under ``seed``; ``x`` (N, D) or (N, K, D), ``y`` (N, n_au)."""
    known = (y >= 0).float()  # (N, n_au) 1 where the label counts
    target = y.clamp(min=0)  # (N, n_au) unknowns become 0 but are masked out below
    pos_weight = torch.from_numpy(positive_weights(y.numpy())) if balance else None
    n, steps_per_epoch = len(x), math.ceil(len(x) / batch_size)
    with torch.random.fork_rng(devices=[]), _threads_for(x[0].numel() * min(n, batch_size)):
        torch.manual_seed(seed)
        probe = make()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
        probe.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                b = order[i : i + batch_size]
                if len(b) < 2:  # batch norm cannot train on a single row
                    continue
                logits = probe(x.index_select(0, b))  # (B, n_au) or (B, K, n_au); x[b], gathered faster
                t, m = target[b], known[b]  # (B, n_au)
                if logits.ndim == 3:
                    t, m = t[:, None].expand_as(logits), m[:, None].expand_as(logits)
                loss = nn.functional.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight,
                                                                      reduction="none")
                loss = (loss * m).sum() / known[b].sum().clamp(min=1)  # the sum of the K probes' losses
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return probe.eval()


@torch.no_grad()
def probe_probs(probe: LinearProbe, x: np.ndarray, missing: np.ndarray | None = None,
                batch_size: int = 2048) -> np.ndarray:
    """AU probabilities (N, n_au) of a fitted probe on features ``x`` (N, D). ``missing`` (N, D) bool
    marks entries that do not exist (pixels or tokens of hidden patches): they get the training
    mean, which the batch norm maps to 0, so they add nothing to any logit (mean imputation)."""
    probe.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[i : i + batch_size], dtype=np.float32))
        if missing is not None:
            mb = torch.as_tensor(np.asarray(missing[i : i + batch_size], dtype=bool))
            xb = torch.where(mb, probe.norm.running_mean.to(xb.dtype), xb)
        out.append(torch.sigmoid(probe(xb)))
    return torch.cat(out).numpy() if out else np.zeros((0, probe.linear.out_features), np.float32)


# --- The subject-exclusive 3-fold protocol --------------------------------------------------------
def fit_folds(train_features: np.ndarray, ds, epochs: int, folds: Sequence[int] = (1, 2, 3),
              **fit_kwargs) -> dict[int, LinearProbe]:
    """``{fold: probe}`` trained on the ``train_features`` (N, D) of the fold's training subjects."""
    train_features = np.asarray(train_features)
    if len(train_features) != len(ds):
        raise ValueError(f"train_features has {len(train_features)} rows for a dataset of {len(ds)}")
    probes = {}
    for k in folds:
        train, _ = ds.fold_rows(k)
        probes[k] = fit_probe(train_features[train], ds.labels[train], epochs, **fit_kwargs)
    return probes


def score_folds(probes: dict[int, LinearProbe], ds, features: np.ndarray, test_rows: np.ndarray | None = None,
                missing: np.ndarray | None = None) -> dict:
    """Score each fold's probe on that fold's test subjects: ``features`` (M, D), row ``i`` of
    dataset row ``test_rows[i]`` (default: all rows), e.g. the faces encoded with patches hidden;
    ``missing`` as in :func:`probe_probs`. Returns :func:`metrics.aggregate_folds` of the per-fold
    results, which are kept under ``"folds"``."""
    rows = np.arange(len(ds)) if test_rows is None else np.asarray(test_rows, np.int64)
    if len(features) != len(rows):
        raise ValueError(f"test features have {len(features)} rows; test_rows lists {len(rows)}")
    if missing is not None and np.shape(missing) != np.shape(features):
        raise ValueError(f"missing has shape {np.shape(missing)}; features have {np.shape(features)}")
    results = []
    for k, model in probes.items():
        _, test = ds.fold_rows(k)
        pos = np.flatnonzero(np.isin(rows, test))  # positions in the test arrays
        if not len(pos):
            raise ValueError(f"test_rows holds no row of fold {k}'s test subjects")
        probs = probe_probs(model, features[pos], None if missing is None else missing[pos])
        results.append(evaluate(ds.labels[rows[pos]], probs, ds.aus))
    return {**aggregate_folds(results), "folds": results}


def probe_folds(train_features: np.ndarray, ds, epochs: int, test_features: np.ndarray | None = None,
                test_rows: np.ndarray | None = None, missing: np.ndarray | None = None,
                folds: Sequence[int] = (1, 2, 3), **fit_kwargs) -> dict:
    """:func:`fit_folds` on the clean ``train_features``, then :func:`score_folds` on
    ``test_features`` (default: the same)."""
    probes = fit_folds(train_features, ds, epochs, folds, **fit_kwargs)
    test = train_features if test_features is None else test_features
    return score_folds(probes, ds, np.asarray(test), test_rows, missing)


def layer_sweep(features: dict[str, np.ndarray], ds, epochs: int, poolings: Sequence[str] = ("cls", "mean"),
                folds: Sequence[int] = (1, 2, 3), **fit_kwargs) -> dict[str, list[dict]]:
    """:func:`probe_folds` for every layer of every pooling of :func:`mae.extract_features`
    (``features[pooling]``: (n_layers + 1, N, D)): ``{pooling: [result per layer]}``."""
    out = {}
    for pooling in poolings:
        layers = np.asarray(features[pooling])  # (K, N, D)
        per_fold = {}
        for k in folds:
            train, _ = ds.fold_rows(k)
            per_fold[k] = fit_probes(layers[:, train], ds.labels[train], epochs, **fit_kwargs)
        out[pooling] = [score_folds({k: per_fold[k][i] for k in folds}, ds, layer) for i, layer in enumerate(layers)]
    return out


def frame_subset(ds, data_key: dict, stride: int = 1):
    """The faces notebook 02 probes: every ``stride``-th frame of each video (docs/decisions.md,
    "The demo profile"), and ``data_key`` extended to name that selection: ``(subset, key)``.
    The subset keeps the same people in each fold."""
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a whole number >= 1 (every n-th frame); got {stride!r}")
    if stride == 1:
        return ds, data_key
    return ds.subset(np.arange(0, len(ds), int(stride))), {**data_key, "every_nth_frame": int(stride)}


def chance_folds(ds, folds: Sequence[int] = (1, 2, 3)) -> dict:
    """The "always present" baseline under the same protocol (F1 = 2p / (1 + p) for positive rate p)."""
    results = []
    for k in folds:
        _, test = ds.fold_rows(k)
        results.append(evaluate(ds.labels[test], np.ones(ds.labels[test].shape), ds.aus))
    return {**aggregate_folds(results), "folds": results}


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Raw-pixel baseline features: uint8 images (N, S, S, 3) -> float32 (N, S * S * 3) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, S, S, 3); got shape {images.shape}")
    return images.reshape(len(images), -1).astype(np.float32) / 255


def subject_centred(features: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Person-specific normalisation: each subject's mean feature subtracted from their frames, as
    OpenFace's AU detectors do (Baltrusaitis et al., 2015). It uses no labels; what stays is how a
    frame differs from its person's average (expression, pose), not identity."""
    features = np.asarray(features, np.float32)
    subjects = np.asarray(subjects)
    if len(subjects) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(subjects)} subject ids")
    out = features.copy()
    for subject in np.unique(subjects):
        rows = subjects == subject
        out[rows] -= features[rows].mean(0)
    return out


def retained(results: dict[str, dict], aus: Sequence[int], reference: dict | None = None) -> np.ndarray:
    """F1 per condition and AU (n_conditions, n_au); with a ``reference`` result, the fraction of
    its F1 each condition keeps (nan where the reference F1 is 0)."""
    f1 = np.array([[r["f1"][a] for a in aus] for r in results.values()], np.float64)
    if reference is None:
        return f1
    ref = np.array([reference["f1"][a] for a in aus], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ref > 0, f1 / ref, np.nan)


def missing_tokens(visible: np.ndarray, dim: int) -> np.ndarray:
    """Missing-entry mask (M, L * dim) of flattened patch tokens for patch visibility (M, L)."""
    return np.repeat(~np.asarray(visible, bool), dim, axis=1)


def missing_pixels(visible: np.ndarray, img_size: int, patch_size: int) -> np.ndarray:
    """Missing-entry mask (M, S * S * 3) of :func:`pixel_features` for patch visibility (M, L)."""
    hidden = patch_pixels(np.asarray(visible, bool), patch_size).reshape(len(visible), -1)  # (M, S * S)
    return np.repeat(hidden, 3, axis=1)  # (M, S * S * 3), channels last as in the images
