"""The method's student: AUs from the latent tokens an MAE computes on the *visible* patches only.

Taught in notebook 04. The frozen MAE encoder (:mod:`occfau_lib.mae`) encodes exactly the patches an
occluder leaves visible (hidden ones are dropped, never reconstructed); a **mapping network** turns
those tokens (B, K, D) into the teacher's spaces, node features (B, N, C) and edge features
(B, N, N, C), which the **teacher's own classifiers** (frozen copies) read. A student node feature
then means what a teacher node feature means, and distillation (:mod:`occfau_lib.distill`) has a
fixed target. How the latent is read is this project's choice: the paper's abstract does not say.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from . import mae
from .config import INFERENCE_BATCH
from .patches import to_tensor
from .teacher import EPS, TeacherOutput, collect

#: The mapping networks a student can use (``DistillConfig.mapping``).
MAPPINGS = ("linear", "attention")
#: The attention mapping's width, heads and transformer decoder layers.
ATTENTION_WIDTH, ATTENTION_HEADS, ATTENTION_LAYERS = 128, 4, 2
#: MAE's layer-wise learning-rate decay for fine-tuned blocks (``DistillConfig.layer_decay`` None).
LAYER_DECAY = 0.75


class Student(nn.Module):
    """MAE encoder on visible patches -> mapping network -> the teacher's classifiers.

    ``"linear"`` mapping: each token projected to ``rank``, back on the patch grid (hidden patches
    zero), then two position-specific linear maps (edges through an ``edge_rank`` bottleneck).
    ``"attention"``: one learned query per AU cross-attends to the visible tokens only (each with a
    learned position embedding) in :data:`ATTENTION_LAYERS` decoder layers; edges come from pairs of
    AU states. ``depth``: encoder blocks run (None: all), of which the top ``finetune_blocks`` train
    (MAE's partial fine-tuning). ``teacher`` lends its sizes and classifiers; it is not kept.
    """

    def __init__(self, mae_model, teacher, depth: int | None = None, rank: int = 32, edge_rank: int = 256,
                 mapping: str = "linear", finetune_blocks: int | None = None, node_relu: bool | None = None):
        super().__init__()
        if mapping not in MAPPINGS:
            raise ValueError(f"unknown mapping {mapping!r}; choose one of {MAPPINGS}")
        self.mapping, self.depth = mapping, depth
        self.aus = tuple(teacher.aus)
        n, c = len(self.aus), teacher.cfg.width
        self.blocks = len(mae_model.vit.layers) if depth is None else depth
        self.finetune_blocks = finetune_blocks or 0
        if not 0 <= self.finetune_blocks <= self.blocks:
            raise ValueError(f"finetune_blocks must be in 0..{self.blocks} (the blocks read); got {finetune_blocks}")
        # a student that fine-tunes gets its own copy: the encoder it was given stays as it is for every other reader
        self.mae = (copy.deepcopy(mae_model) if self.finetune_blocks else mae_model).eval()
        for p in self.mae.parameters():
            p.requires_grad_(False)
        for p in self.tuned_blocks().parameters():
            p.requires_grad_(True)
        self.node_relu = bool(node_relu) or mapping == "attention"
        self.patch_size = mae_model.config.patch_size
        self.num_patches = (mae_model.config.image_size // self.patch_size) ** 2
        d = mae_model.config.hidden_size
        if mapping == "linear":
            self.project = nn.Linear(d, rank)  # per visible token
            self.node_map = nn.Linear(self.num_patches * rank, n * c)
            self.edge_map = nn.Sequential(nn.Linear(self.num_patches * rank, edge_rank), nn.Linear(edge_rank, n * n * c))
        else:
            w = ATTENTION_WIDTH
            self.project = nn.Linear(d, w)
            self.position = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, self.num_patches, w), std=0.02))
            self.queries = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, n, w), std=0.02))  # one per AU
            self.layers = nn.ModuleList(nn.TransformerDecoderLayer(w, ATTENTION_HEADS, 2 * w, dropout=0.0,
                                                                   batch_first=True, norm_first=True)
                                        for _ in range(ATTENTION_LAYERS))
            self.norm = nn.LayerNorm(w)
            self.node_out = nn.Linear(w, c)
            self.pair_a, self.pair_b = nn.Linear(w, w), nn.Linear(w, w, bias=False)
            self.edge_out = nn.Linear(w, c)
            self.node_mean = nn.Parameter(torch.zeros(n, c))  # per AU (set by start_at)
            self.edge_mean = nn.Parameter(torch.zeros(n, n, c))  # per AU pair
        # the teacher's classifiers, frozen buffers: the student is read exactly as the teacher is
        self.register_buffer("prototypes", torch.relu(teacher.head.prototypes.detach()).clone())  # (N, C)
        self.register_buffer("edge_weight", teacher.head.edge_classifier.weight.detach().clone())  # (4, C)
        self.register_buffer("edge_bias", teacher.head.edge_classifier.bias.detach().clone())  # (4,)

    @classmethod
    def from_config(cls, mae_model, teacher, cfg) -> Student:
        """The student a :class:`config.DistillConfig` describes."""
        return cls(mae_model, teacher, cfg.depth, cfg.rank, cfg.edge_rank, cfg.mapping, cfg.finetune_blocks,
                   cfg.node_relu)

    def tuned_blocks(self) -> nn.ModuleList:
        """The encoder blocks that train with the mapping (empty for a frozen encoder)."""
        return self.mae.vit.layers[self.blocks - self.finetune_blocks: self.blocks]

    @property
    def input_depth(self) -> int | None:
        """The block whose frozen output the student starts from (what a shared encoding must give it)."""
        return self.blocks - self.finetune_blocks if self.finetune_blocks else self.depth

    def parameter_groups(self, decay: float | None = None) -> list[dict]:
        """Optimiser groups: the mapping at the schedule's rate, fine-tuned block k below the top at
        ``decay ** (k + 1)`` of it (MAE's layer-wise decay, the ``"scale"`` of :meth:`train.Run.set_lr`)."""
        decay = LAYER_DECAY if decay is None else decay
        tuned = {id(p) for p in self.tuned_blocks().parameters()}
        groups = [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in tuned], "scale": 1.0}]
        for k, block in enumerate(reversed(list(self.tuned_blocks()))):
            groups.append({"params": list(block.parameters()), "scale": decay ** (k + 1)})
        return groups

    @torch.no_grad()
    def start_at(self, node: torch.Tensor, edge: torch.Tensor) -> None:
        """Start the mapping at the teacher's average face: the mean node (N, C) and edge (N, N, C)
        features become the output biases. The teacher's features share a large common component
        (norm 14 against a spread of 0.7 per channel on SynthFACS) that a zero start spends most of
        its steps on."""
        if self.mapping == "linear":
            self.node_map.bias.copy_(node.flatten())
            self.edge_map[-1].bias.copy_(edge.flatten())
        else:
            self.node_mean.copy_(node)
            self.edge_mean.copy_(edge)

    def train(self, mode: bool = True) -> Student:
        """The encoder stays in eval mode (MAE's ViT has no dropout; its frozen blocks must not change)."""
        super().train(mode)
        self.mae.eval()
        return self

    def encode(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None,
               enc: mae.Encoded | None = None) -> mae.Encoded:
        """The encoder's tokens at ``depth``: the frozen blocks without gradients, then the tuned ones.
        ``enc``: the frozen encoding at :attr:`input_depth`, if already computed."""
        if enc is None:
            with torch.no_grad():
                enc = mae.encode(self.mae, images, visible, depth=self.input_depth)  # tokens (B, 1 + K, D)
        if self.finetune_blocks:
            enc = mae.run_blocks(self.mae, enc, self.blocks - self.finetune_blocks, self.blocks)
        return enc

    def latent(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None,
               enc: mae.Encoded | None = None) -> torch.Tensor:
        """The linear mapping's input: projected visible tokens on the patch grid, hidden = 0, (B, L, r)."""
        enc = self.encode(images, visible, enc)
        tokens = nn.functional.layer_norm(enc.tokens[:, 1:], enc.tokens.shape[-1:])  # (B, K, D)
        z = self.project(tokens) * enc.valid.unsqueeze(-1).to(tokens.dtype)  # (B, K, r), padding = 0
        grid = z.new_zeros(len(z), self.num_patches, z.shape[-1])  # (B, L, r)
        return grid.scatter_add(1, enc.ids_keep.unsqueeze(-1).expand_as(z), z)

    def au_states(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None,
                  enc: mae.Encoded | None = None) -> torch.Tensor:
        """The attention mapping's AU states (B, N, W): AU queries attending to the visible tokens."""
        enc = self.encode(images, visible, enc)
        tokens = nn.functional.layer_norm(enc.tokens[:, 1:], enc.tokens.shape[-1:])  # (B, K, D)
        where = self.position.expand(len(tokens), -1, -1).gather(
            1, enc.ids_keep.unsqueeze(-1).expand(-1, -1, self.position.shape[-1]))  # (B, K, W)
        memory = self.project(tokens) + where  # (B, K, W)
        q = self.queries.expand(len(tokens), -1, -1)  # (B, N, W)
        for layer in self.layers:  # AU queries: self-attention, then cross-attention to visible tokens only
            q = layer(q, memory, memory_key_padding_mask=~enc.valid)
        return self.norm(q)

    def forward(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None,
                enc: mae.Encoded | None = None) -> TeacherOutput:
        """images (B, 3, S, S) in [0, 1], visible (B, L) bool (None = every patch) -> TeacherOutput."""
        n, c = self.prototypes.shape
        if self.mapping == "linear":
            z = self.latent(images, visible, enc).flatten(1)  # (B, L * r)
            node = self.node_map(z).view(-1, n, c)  # (B, N, C)
            edge = self.edge_map(z).view(-1, n, n, c)  # (B, N, N, C)
        else:
            q = self.au_states(images, visible, enc)  # (B, N, W)
            node = self.node_mean + self.node_out(q)  # (B, N, C)
            pair = torch.relu(self.pair_a(q)[:, :, None] + self.pair_b(q)[:, None, :])  # (B, N, N, W): AU i, AU j
            edge = self.edge_mean + self.edge_out(pair)  # (B, N, N, C)
        if self.node_relu:  # non-negative like the teacher's nodes: the cosine below is never negative
            node = torch.relu(node)
        probs = nn.functional.cosine_similarity(node, self.prototypes[None], dim=-1, eps=EPS)  # (B, N)
        edge_logits = edge @ self.edge_weight.T + self.edge_bias  # (B, N, N, 4)
        return TeacherOutput(probs.clamp(0, 1), node, edge, edge_logits)

    def head_state(self) -> dict:
        """What a checkpoint stores: everything but the frozen encoder blocks."""
        tuned = {f"mae.vit.layers.{i}." for i in range(self.blocks - self.finetune_blocks, self.blocks)}
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith("mae.") or any(k.startswith(t) for t in tuned)}

    def load_head_state(self, state: dict) -> None:
        """Inverse of :meth:`head_state`; every mapping-network weight must be present."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if k in self.head_state()]
        if missing or unexpected:
            raise ValueError(f"student checkpoint does not match the mapping network: missing {missing}, "
                             f"unexpected {unexpected}")


@torch.no_grad()
def predict(student: Student, images: np.ndarray, visible: np.ndarray, batch_size: int = INFERENCE_BATCH,
            encoded: list[mae.Encoded] | None = None) -> dict[str, np.ndarray]:
    """:func:`teacher.predict` for the student, on faces (N, S, S, 3) seen through ``visible`` (N, L).
    ``encoded``: the frozen encoding per ``batch_size`` rows, if already computed (students reading
    one encoder share it: :class:`occfau_lib.experiments.SharedEncoding`)."""
    student.eval()
    device = student.prototypes.device
    return collect(student(to_tensor(images[i: i + batch_size]).to(device), visible[i: i + batch_size],
                           None if encoded is None else encoded[j])
                   for j, i in enumerate(range(0, len(images), batch_size)))
