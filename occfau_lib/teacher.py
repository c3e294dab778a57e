"""The AU-relation-graph teacher: a re-implementation of ME-GraphAU (Luo et al., IJCAI 2022).

Taught in notebook 03; distilled from in notebook 04. The teacher sees **clean** faces and describes
each as a graph: one *node* feature per AU ``(B, N, C)`` and one *edge* feature per ordered AU pair
``(B, N, N, C)``, which the student (:mod:`occfau_lib.student`) learns to produce from an occluded
face. Nodes are read by cosine prototypes (AU probabilities), edges by a classifier of the 4
co-occurrence states ``2 * y_i + y_j``. Loss: ME-GraphAU's weighted asymmetric loss plus lambda x the
edges' cross-entropy, unknown labels (-1) masked out. Departures from ME-GraphAU (one training stage,
a pooled ARM query, a token position embedding) are explained where they are made.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cache import checkpoint_or_train, model_fingerprint, read_state, save_model
from .config import INFERENCE_BATCH, TEACHER_CONFIGS, TeacherConfig, TeacherTrainConfig
from .patches import IMAGENET_MEAN, IMAGENET_STD, to_tensor, to_uint8
from .occlusion import training_occlusion
from .train import Engine, Run

#: Bump when the architecture or training changes in a way the config does not capture.
TEACHER_VERSION = 1
EPS = 1e-8


# --- Building blocks ------------------------------------------------------------------------------
class LinearBlock(nn.Module):
    """Linear -> BatchNorm over channels -> ReLU, applied to every token: (B, D, C_in) -> (B, D, C)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out)
        self.norm = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)  # (B, D, C)
        return torch.relu(self.norm(x.transpose(1, 2)).transpose(1, 2))


class AUBlocks(nn.Module):
    """ANFL's AU-specific feature extractors, (B, D, C) -> U (B, N, D, C): one linear block per AU,
    stored as stacked weights (N, C, C) and applied as one batched product."""

    def __init__(self, n_au: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_au, width, width))
        self.bias = nn.Parameter(torch.zeros(n_au, width))
        bound = 1 / math.sqrt(width)  # nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.norm = nn.BatchNorm2d(n_au)  # per-AU statistics over (tokens, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.einsum("bdc,nce->bnde", x, self.weight) + self.bias[None, :, None, :]  # (B, N, D, C)
        return torch.relu(self.norm(u))


class FacialGraph(nn.Module):
    """ANFL's graph step: connect each AU node to its K most similar nodes (dot product of the
    detached features) and apply one residual graph convolution with a symmetric-normalised
    adjacency: the graph is *inferred* per face, not given."""

    def __init__(self, n_au: int, width: int, k: int):
        super().__init__()
        self.k = min(k, n_au)
        self.self_map = nn.Linear(width, width)
        self.neighbour_map = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(n_au)

    def adjacency(self, v: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> normalised adjacency (B, N, N) of the top-K similarity graph."""
        sim = torch.einsum("bic,bjc->bij", v.detach(), v.detach())  # (B, N, N)
        top = sim.topk(self.k, dim=-1).indices  # (B, N, K) each node's K most similar nodes
        adj = torch.zeros_like(sim).scatter_(-1, top, 1.0)
        deg = adj.sum(-1).clamp(min=1).rsqrt()  # (B, N)
        return deg[:, :, None] * adj * deg[:, None, :]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        message = self.adjacency(v) @ self.neighbour_map(v)  # (B, N, C)
        return torch.relu(v + self.norm(message + self.self_map(v)))


class CrossAttention(nn.Module):
    """Single-head scaled dot-product attention of queries from one token set to another."""

    def __init__(self, width: int):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.scale = width**-0.5

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(..., Dq, C), (..., Dk, C) -> (..., Dq, C)."""
        attn = (self.q(queries) @ self.k(keys).transpose(-1, -2)) * self.scale  # (..., Dq, Dk)
        return attn.softmax(-1) @ self.v(keys)


class EdgeFeatures(nn.Module):
    """MEFL: an edge feature for every ordered AU pair. FAM lets each AU map attend to the full face;
    ARM lets AU i attend to AU j's map, so edge (i, j) encodes how the two relate on this face.

    [ours] ME-GraphAU cross-attends every token of AU i's map to AU j's map and averages over
    tokens; here AU i's tokens are pooled into *one* query first: attention (B, N, N, D) instead of
    (B, N, N, D, D), the same output, D x less compute (docs/decisions.md, "Occlusions and the teacher").
    """

    def __init__(self, n_au: int, width: int):
        super().__init__()
        self.fam = CrossAttention(width)
        self.arm_q, self.arm_k, self.arm_v = (nn.Linear(width, width) for _ in range(3))
        self.proj = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(n_au * n_au)
        self.scale = width**-0.5

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """U (B, N, D, C) and X (B, D, C) -> edges (B, N, N, C)."""
        B, N, D, C = u.shape
        f = self.fam(u, x[:, None])  # (B, N, D, C)
        q = self.arm_q(f.mean(-2))  # (B, N, C): one query per AU i, its tokens pooled
        k, v = self.arm_k(f), self.arm_v(f)  # (B, N, D, C): AU j's tokens
        attn = torch.einsum("bic,bjdc->bijd", q, k).mul(self.scale).softmax(-1)  # (B, N, N, D)
        e = torch.einsum("bijd,bjdc->bijc", attn, v)  # (B, N, N, C)
        e = self.norm(self.proj(e).reshape(B, N * N, C))  # batch norm per edge
        return e.reshape(B, N, N, C)


class GatedGraphConv(nn.Module):
    """Residual gated graph convolution (Bresson & Laurent, 2017) over the complete AU graph:
    each edge gates the message from node j to node i, and is itself updated from both ends."""

    def __init__(self, n_au: int, width: int):
        super().__init__()
        self.src, self.dst, self.edge = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.self_map, self.msg = nn.Linear(width, width), nn.Linear(width, width)
        self.node_norm = nn.BatchNorm1d(n_au)
        self.edge_norm = nn.BatchNorm1d(n_au * n_au)

    def forward(self, v: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nodes (B, N, C), edges (B, N, N, C) -> updated (nodes, edges), same shapes."""
        B, N, C = v.shape
        e_new = self.dst(v)[:, :, None] + self.src(v)[:, None, :] + self.edge(e)  # (B, N, N, C)
        gate = torch.sigmoid(e_new)
        msg = (gate * self.msg(v)[:, None, :, :]).sum(2) / (gate.sum(2) + 1e-6)  # (B, N, C), over j
        v = torch.relu(v + self.node_norm(self.self_map(v) + msg))
        e = e + torch.relu(self.edge_norm(e_new.reshape(B, N * N, C))).reshape(B, N, N, C)
        return v, e


@dataclass
class TeacherOutput:
    """What the teacher says about a batch of faces."""

    probs: torch.Tensor  # (B, N) AU occurrence probabilities (cosine scores in [0, 1])
    node: torch.Tensor  # (B, N, C) final node features: one per AU
    edge: torch.Tensor  # (B, N, N, C) final edge features: one per ordered AU pair
    edge_logits: torch.Tensor  # (B, N, N, 4) co-occurrence state scores (2 * y_i + y_j)

    @property
    def logits(self) -> torch.Tensor:
        """``probs`` in logit space (sigmoid(logits) = probs; > 0 exactly where probs > 0.5)."""
        return torch.logit(self.probs.clamp(1e-6, 1 - 1e-6))


class GraphHead(nn.Module):
    """Everything after the backbone: tokens (B, D, C_in) -> linear block -> ANFL (AU maps, nodes,
    facial graph) -> MEFL (edges) -> two gated graph convolutions -> :class:`TeacherOutput`.
    [ours] Trained end to end in one stage, which fits a CPU budget (ME-GraphAU trains ANFL first)."""

    def __init__(self, c_in: int, n_au: int, width: int, k_neighbours: int):
        super().__init__()
        self.n_au = n_au
        self.input = LinearBlock(c_in, width)
        self.au_blocks = AUBlocks(n_au, width)
        self.graph = FacialGraph(n_au, width, k_neighbours)
        self.edges = EdgeFeatures(n_au, width)
        self.gated = nn.ModuleList([GatedGraphConv(n_au, width) for _ in range(2)])
        self.prototypes = nn.Parameter(torch.empty(n_au, width))
        nn.init.xavier_uniform_(self.prototypes)
        self.edge_classifier = nn.Linear(width, 4)

    def features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, D, C_in) -> final node (B, N, C) and edge (B, N, N, C) features."""
        x = self.input(tokens)  # (B, D, C)
        u = self.au_blocks(x)  # (B, N, D, C)
        v = self.graph(u.mean(-2))  # (B, N, C): node = the AU map averaged over tokens
        e = self.edges(u, x)  # (B, N, N, C)
        for layer in self.gated:
            v, e = layer(v, e)
        return v, e

    def forward(self, tokens: torch.Tensor) -> TeacherOutput:
        v, e = self.features(tokens)
        probs = nn.functional.cosine_similarity(v, torch.relu(self.prototypes)[None], dim=-1, eps=EPS)  # (B, N)
        return TeacherOutput(probs.clamp(0, 1), v, e, self.edge_classifier(e))


class Teacher(nn.Module):
    """A timm backbone feature stage + :class:`GraphHead`, on images (B, 3, S, S) in [0, 1]
    (ImageNet-normalised inside).

    [ours] The backbone's tokens get a learned position embedding: ANFL's AU blocks act on each
    token alone, then average, so without it a small CNN trained from scratch cannot tell a raised
    brow from a lowered lip corner (docs/decisions.md). ME-GraphAU's deep backbones see the whole
    face in every token instead.
    """

    def __init__(self, cfg: TeacherConfig | str, aus: tuple[int, ...], img_size: int):
        super().__init__()
        import timm  # heavy (seconds): loaded when a teacher is built, not when the module is imported

        self.cfg = TEACHER_CONFIGS[cfg] if isinstance(cfg, str) else cfg
        self.aus = tuple(aus)
        self.img_size = int(img_size)
        self.backbone = timm.create_model(self.cfg.backbone, pretrained=False, features_only=True,
                                          out_indices=(self.cfg.feature_stage,))
        if self.cfg.backbone_weights:
            load_backbone_weights(self.backbone, self.cfg.backbone_weights)
        c_in = self.backbone.feature_info.channels()[-1]
        side = -(-self.img_size // self.backbone.feature_info.reduction()[-1])  # feature map side
        self.position = nn.Parameter(torch.zeros(1, side * side, c_in))  # (1, D, C_in)
        nn.init.trunc_normal_(self.position, std=0.02)
        self.head = GraphHead(c_in, len(self.aus), self.cfg.width, self.cfg.k_neighbours)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> backbone tokens (B, D, C_in), row-major over the feature map."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (self.img_size, self.img_size):
            raise ValueError(f"the teacher takes images (B, 3, {self.img_size}, {self.img_size}); "
                             f"got shape {tuple(images.shape)}")
        fmap = self.backbone((images - self.mean) / self.std)[-1]  # (B, C_in, h, w)
        return fmap.flatten(2).transpose(1, 2) + self.position

    def forward(self, images: torch.Tensor) -> TeacherOutput:
        return self.head(self.tokens(images))


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local timm state dict (or ``{"state_dict": ...}``) into a ``features_only`` backbone,
    ignoring classifier weights. Never downloads."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no backbone weights at {path} (a timm state dict saved with torch.save)")
    state = read_state(path)  # a user's file: unreadable -> CorruptFile naming it
    state = state.get("state_dict", state)
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path.name} holds no weight of the {type(backbone).__name__} backbone")
    backbone.load_state_dict(usable, strict=False)


# --- Losses ---------------------------------------------------------------------------------------
def au_weights(labels: np.ndarray) -> torch.Tensor:
    """ME-GraphAU's per-AU weights (N,): inverse positive rate over the known training labels,
    normalised to sum to N (an AU that never occurs counts as occurring once)."""
    labels = np.asarray(labels)
    known = (labels >= 0).sum(0)
    pos = np.maximum((labels == 1).sum(0), 1)
    w = np.maximum(known, 1) / pos  # (N,) = 1 / positive rate
    return torch.tensor(w / w.sum() * len(w), dtype=torch.float32)


def wa_loss(probs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted asymmetric loss on probabilities (B, N) for labels of 1 / 0 / -1:
    -sum over known (b, i) of w_i [y log p + (1 - y) sg(p) log(1 - p)] / (number known).
    The negative term is scaled by the detached probability: confident negatives cost almost
    nothing, so the many easy absent frames do not swamp the rare present ones."""
    known = (labels >= 0).float()
    y = labels.clamp(min=0).float()
    p = probs.float().clamp(EPS, 1 - EPS)  # fp32 even from a bf16 forward pass
    term = y * torch.log(p) + (1 - y) * p.detach() * torch.log(1 - p)  # (B, N)
    if weights is not None:
        term = term * weights.to(term)[None]
    return -(term * known).sum() / known.sum().clamp(min=1)


def edge_labels(labels: torch.Tensor) -> torch.Tensor:
    """AU labels (B, N) -> co-occurrence states (B, N, N): 2 * y_i + y_j, -1 where either is unknown."""
    y = labels.long()
    states = 2 * y[:, :, None] + y[:, None, :]
    return torch.where((y[:, :, None] < 0) | (y[:, None, :] < 0), torch.full_like(states, -1), states)


def edge_loss(edge_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 4 co-occurrence states over all known ordered pairs (i, j)."""
    target = edge_labels(labels).reshape(-1)  # (B * N * N,)
    return nn.functional.cross_entropy(edge_logits.float().reshape(-1, 4), target, ignore_index=-1)


def teacher_loss(out: TeacherOutput, labels: torch.Tensor, weights: torch.Tensor | None,
                 edge_weight: float) -> torch.Tensor:
    """L_WA + lambda x edge CE: the teacher's full training objective."""
    return wa_loss(out.probs, labels, weights) + edge_weight * edge_loss(out.edge_logits, labels)


# --- Training and prediction ----------------------------------------------------------------------
def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift (reflect-pad by 1/16 of the side, crop back) and horizontal flip per image:
    ME-GraphAU's random crop + flip, at small scale."""
    B, _, S, _ = images.shape
    pad = max(1, S // 16)
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    dx, dy = (torch.randint(0, 2 * pad + 1, (B,), generator=generator).tolist() for _ in range(2))
    flip = (torch.rand(B, generator=generator) < 0.5).to(images.device)  # drawn on the CPU generator
    out = torch.stack([padded[b, :, dy[b]: dy[b] + S, dx[b]: dx[b] + S] for b in range(B)])
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def train_teacher(ds, cfg: TeacherConfig | str = "tiny", train_cfg: TeacherTrainConfig = TeacherTrainConfig(),
                  device: str | Engine = "cpu", progress: bool = True, log_every: int = 20,
                  init: Teacher | None = None, resume_path: str | Path | None = None) -> tuple[Teacher, dict]:
    """Train a teacher on every row of ``ds`` (one fold's training part), from scratch or from
    ``init``'s weights (fine-tuning); resumable from ``resume_path``.
    Returns ``(teacher in eval mode, history {"step", "loss", "lr", "images_per_s"})``."""
    engine = Engine.of(device)
    torch.manual_seed(train_cfg.seed)
    model = Teacher(cfg, ds.aus, ds.image_size)
    if init is not None:
        model.load_state_dict(init.state_dict())
    model = engine.place(model, conv=True)
    weights = au_weights(ds.labels).to(engine.device)
    opt = engine.adamw(model.parameters(), train_cfg.lr, train_cfg.weight_decay)
    config = {"teacher": asdict(model.cfg), "train": asdict(train_cfg), "n": len(ds), "aus": list(ds.aus),
              **engine.key()}
    run = Run("teacher", model, opt, n=len(ds), schedule=train_cfg, config=config, engine=engine,
              resume_path=resume_path, progress=progress, log_every=log_every)
    mine = run.mine  # this process's rows of every batch (all of them without torchrun)
    for epoch in range(run.epoch, train_cfg.epochs):
        for rows, faces in run.batches(ds.batch_images):
            x = to_tensor(engine.batch(faces))  # (B, 3, S, S) the whole batch: every process draws the same augmentation
            if train_cfg.augment:
                x = augment(x, run.gen)
            if train_cfg.occlusion_patch:  # the "teacher + occlusion augmentation" baseline
                x = to_tensor(training_occlusion(to_uint8(x), train_cfg.occlusion_patch, run.rng).images)
            y = torch.from_numpy(ds.labels[rows][mine]).to(engine.device)  # (B, N) AU labels, -1 = unknown
            with engine.autocast():
                loss = teacher_loss(run.net(engine.batch(x[mine], conv=True)), y, weights, train_cfg.edge_weight)
            run.set_lr(opt, loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.log(loss)
        run.end_epoch()
    return model.eval(), run.finish()


@torch.no_grad()
def predict(model: Teacher, images: np.ndarray, batch_size: int = INFERENCE_BATCH) -> dict[str, np.ndarray]:
    """Run the teacher over uint8 faces (N, S, S, 3): ``{"probs": (N, n_au), "node": (N, n_au, C),
    "both": (N, n_au, n_au)}``, "both" the edge classifier's P(both AUs of a pair present)."""
    model.eval()
    device = next(model.parameters()).device
    return collect(model(to_tensor(images[i: i + batch_size]).to(device)) for i in range(0, len(images), batch_size))


def collect(outputs) -> dict[str, np.ndarray]:
    """The probs, nodes and "both" probabilities of per-batch :class:`TeacherOutput`, concatenated."""
    probs, nodes, both = [], [], []
    for out in outputs:
        probs.append(out.probs.cpu())
        nodes.append(out.node.cpu())
        both.append(out.edge_logits.softmax(-1)[..., 3].cpu())  # state 3 = 2*1 + 1: both AUs present
    return {"probs": torch.cat(probs).numpy(), "node": torch.cat(nodes).numpy(), "both": torch.cat(both).numpy()}


# --- Checkpoint or train, per fold ----------------------------------------------------------------
def trained_teacher(ds, fold: int, data_key: dict, cfg: TeacherConfig | str = "tiny",
                    train_cfg: TeacherTrainConfig = TeacherTrainConfig(), device: str | Engine = "cpu",
                    progress: bool = True, init: Teacher | None = None, resume: bool = True) -> tuple[Teacher, dict]:
    """The teacher of subject-exclusive ``fold`` (trained on its training subjects only) from the
    cache, else trained and saved (:func:`cache.checkpoint_or_train`). ``data_key`` names the
    dataset; a fine-tuned teacher's key also holds a hash of the ``init`` weights."""
    engine = Engine.of(device)
    cfg = TEACHER_CONFIGS[cfg] if isinstance(cfg, str) else cfg
    config = {"teacher": asdict(cfg), "train": asdict(train_cfg), "data": data_key, "fold": int(fold),
              "aus": list(ds.aus), "n": int(len(ds)), "version": TEACHER_VERSION, **engine.key()}
    if init is not None:
        config["init"] = model_fingerprint(init)
    train, _ = ds.fold(fold)

    def load(p):
        state = read_state(p)
        model = Teacher(cfg, ds.aus, ds.image_size)
        model.load_state_dict(state["model"])
        return (model.to(engine.device).eval(), state["history"]), state["config"]

    return checkpoint_or_train("teacher", config, lambda partial: train_teacher(
        train, cfg, train_cfg, engine, progress, init=init, resume_path=partial), save_model, load, resume)
