"""The method's student: AUs from the latent tokens an MAE computes on the *visible* patches only.

Taught in notebook 04. A frozen MAE encoder (:mod:`occfau_lib.mae`) encodes exactly the patches an
occluder leaves visible -- the hidden ones are dropped before the encoder, never reconstructed.
A **mapping network** turns those latent tokens into the teacher's feature spaces: one node
feature per AU ``(B, N, C)`` and one edge feature per ordered AU pair ``(B, N, N, C)``; AUs and
AU-pair states are then read by the **teacher's own classifiers** (its cosine prototypes and its
edge classifier, frozen), so a student node feature means exactly what a teacher node feature
means, and distillation (:mod:`occfau_lib.distill`) has a fixed target space.

Data flow (B faces, K visible of L grid patches, encoder width D, N AUs, teacher width C)::

    occluded face (B, 3, S, S), visible (B, L)
      -> frozen MAE, first ``depth`` blocks, visible patches only   tokens (B, K, D)
      -> layer norm, per-token projection to ``rank``                (B, K, r)
      -> back onto the patch grid, hidden patches = 0, flattened     z (B, L * r)
      -> node map                                                    node (B, N, C)
      -> edge map (through a ``edge_rank`` bottleneck)               edge (B, N, N, C)
      -> teacher's prototypes: p_i = cos(ReLU(s_i), node_i)          probs (B, N)
         teacher's edge classifier                                   edge_logits (B, N, N, 4)

Choices where the paper is silent [ours], each measured on SynthFACS (demo, fold 1; notebook 04):

- **a linear, position-specific mapping** (``mapping="linear"``, the default). The paper-notes
  design puts ME-GraphAU's head (per-AU blocks, token mean, graph convolutions) on the MAE tokens,
  as the teacher has it on CNN tokens; ``mapping="graph"`` is that head on the projected tokens,
  each with a learned position embedding, read by the teacher's classifiers. On renderer v2's
  world it fitted the training subjects and failed on new ones (test AUC 55-58 against the
  teacher's 74), where a ridge regression from the flattened token grid reached 75. Measured
  again on renderer v3's demo world (fold 1, 8 epochs, block 3; clean F1 / AUC, mean F1 under
  the four large blocks): linear 61.3 / 90.4 / 48.0 with node+edge KD and 63.1 / 91.0 / 52.9
  without; graph 26.3 / 77.8 / 21.9 and 34.7 / 76.0 / 30.6. The linear map stays: factorised
  (per-token projection, then grid -> features) so its size stays small, and trained by the
  distillation loss.
- **an intermediate block.** The tiny MAE's last block is the worst for this map (ridge, test AUC
  63); blocks 1-3 of 6 give 70-73. On renderer v3's world (MAE pretrained on the unlabelled
  corpus) blocks 3 and 6 are level (fold 1, 8 epochs, clean / large-block F1: 61.3 / 48.0 and
  63.2 / 48.3 with node+edge KD), so block 3 stays. ``depth`` picks the block; the blocks after it
  are never run, which also makes the student cheaper. (The paper preset uses every block of ViT-B.)
- the encoder is frozen (its weights never change and it stays in eval mode); the CLS token is
  not used (MAE never trains it for anything).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import mae
from .config import INFERENCE_BATCH
from .patches import to_tensor
from .teacher import EPS, GraphHead, TeacherOutput

#: The mapping networks a student can use (``DistillConfig.mapping``).
MAPPINGS = ("linear", "graph")


class Student(nn.Module):
    """Frozen MAE encoder on visible patches -> linear mapping network -> the teacher's classifiers.

    ``teacher`` provides the target feature sizes and its classifiers (copied, frozen); it is not
    kept. ``depth``: encoder blocks run (None = all). ``rank``: per-token projection width;
    ``edge_rank``: bottleneck of the edge map.
    """

    def __init__(self, mae_model, teacher, depth: int | None = None, rank: int = 32, edge_rank: int = 256,
                 mapping: str = "linear"):
        super().__init__()
        if mapping not in MAPPINGS:
            raise ValueError(f"unknown mapping {mapping!r}; choose one of {MAPPINGS}")
        self.mapping = mapping
        self.aus = tuple(teacher.aus)
        n, c = len(self.aus), teacher.cfg.width
        self.mae = mae_model.eval()
        for p in self.mae.parameters():
            p.requires_grad_(False)
        self.depth = depth
        self.patch_size = mae_model.config.patch_size
        self.num_patches = (mae_model.config.image_size // self.patch_size) ** 2
        d = mae_model.config.hidden_size
        self.project = nn.Linear(d, rank)  # per visible token
        if mapping == "linear":
            self.node_map = nn.Linear(self.num_patches * rank, n * c)
            self.edge_map = nn.Sequential(nn.Linear(self.num_patches * rank, edge_rank), nn.Linear(edge_rank, n * n * c))
        else:  # ME-GraphAU's head on the projected tokens, each with a learned position embedding
            self.position = nn.Parameter(torch.zeros(1, self.num_patches, rank))  # (1, L, r)
            nn.init.trunc_normal_(self.position, std=0.02)
            self.graph = GraphHead(rank, n, c, teacher.cfg.k_neighbours)
        # the teacher's classifiers, frozen buffers: the student is read exactly as the teacher is
        self.register_buffer("prototypes", torch.relu(teacher.head.prototypes.detach()).clone())  # (N, C)
        self.register_buffer("edge_weight", teacher.head.edge_classifier.weight.detach().clone())  # (4, C)
        self.register_buffer("edge_bias", teacher.head.edge_classifier.bias.detach().clone())  # (4,)

    @torch.no_grad()
    def start_at(self, node: torch.Tensor, edge: torch.Tensor) -> None:
        """Start the mapping at the teacher's average face: node (N, C) and edge (N, N, C) mean
        features become the maps' output biases, so training only has to learn how a face departs
        from the average. (The teacher's features share a large common component -- norm 14 against
        a spread of 0.7 per channel on SynthFACS -- which a zero start spends most of its steps on.)
        The graph mapping has no output bias to set and starts from its initialisation."""
        if self.mapping != "linear":
            return
        self.node_map.bias.copy_(node.flatten())
        self.edge_map[-1].bias.copy_(edge.flatten())

    def train(self, mode: bool = True) -> Student:
        """Train the mapping network only: the frozen encoder stays in eval mode."""
        super().train(mode)
        self.mae.eval()
        return self

    def latent(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None,
               enc: mae.Encoded | None = None) -> torch.Tensor:
        """The mapping network's input: projected visible tokens on the patch grid, hidden = 0, (B, L, r).
        ``enc``: the frozen encoder's output at ``self.depth`` for these faces, if already computed."""
        with torch.no_grad():
            if enc is None:
                enc = mae.encode(self.mae, images, visible, depth=self.depth)  # tokens (B, 1 + K, D), valid (B, K)
            tokens = nn.functional.layer_norm(enc.tokens[:, 1:], enc.tokens.shape[-1:])  # (B, K, D)
        z = self.project(tokens) * enc.valid.unsqueeze(-1).to(tokens.dtype)  # (B, K, r), padding = 0
        grid = z.new_zeros(len(z), self.num_patches, z.shape[-1])  # (B, L, r)
        if self.mapping == "graph":  # the position embedding marks where each visible token sits
            z = z + torch.gather(self.position.expand(len(z), -1, -1), 1,
                                 enc.ids_keep.unsqueeze(-1).expand_as(z)) * enc.valid.unsqueeze(-1).to(z.dtype)
        return grid.scatter_add(1, enc.ids_keep.unsqueeze(-1).expand_as(z), z)

    def forward(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None,
                enc: mae.Encoded | None = None) -> TeacherOutput:
        """images (B, 3, S, S) in [0, 1], visible (B, L) bool (None = every patch) -> TeacherOutput.
        ``enc``: as in :meth:`latent`."""
        z = self.latent(images, visible, enc)  # (B, L, r)
        n, c = self.prototypes.shape
        if self.mapping == "linear":
            node = self.node_map(z.flatten(1)).view(-1, n, c)  # (B, N, C)
            edge = self.edge_map(z.flatten(1)).view(-1, n, n, c)  # (B, N, N, C)
        else:
            node, edge = self.graph.features(z)  # (B, N, C), (B, N, N, C)
        probs = nn.functional.cosine_similarity(node, self.prototypes[None], dim=-1, eps=EPS)  # (B, N)
        edge_logits = edge @ self.edge_weight.T + self.edge_bias  # (B, N, N, 4)
        return TeacherOutput(probs.clamp(0, 1), node, edge, edge_logits)

    def head_state(self) -> dict:
        """The mapping network's weights and the copied classifiers (what a checkpoint stores; the
        encoder is stored once elsewhere)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("mae.")}

    def load_head_state(self, state: dict) -> None:
        """Inverse of :meth:`head_state`; every mapping-network weight must be present."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("mae.")]
        if missing or unexpected:
            raise ValueError(f"student checkpoint does not match the mapping network: missing {missing}, "
                             f"unexpected {unexpected}")


@torch.no_grad()
def predict(student: Student, images: np.ndarray, visible: np.ndarray, batch_size: int = INFERENCE_BATCH,
            encoded: list[mae.Encoded] | None = None) -> dict[str, np.ndarray]:
    """Run the student over uint8 faces (N, S, S, 3) seen through ``visible`` (N, L):
    ``{"probs": (N, n_au), "node": (N, n_au, C), "both": (N, n_au, n_au)}`` (edge
    classifier's probability that both AUs of a pair are present). ``encoded``: the frozen
    encoder's output at the student's depth per ``batch_size`` rows, if already computed (several
    students reading one encoder share it: :class:`occfau_lib.experiments.SharedEncoding`)."""
    student.eval()
    device = student.prototypes.device
    probs, nodes, both = [], [], []
    for j, i in enumerate(range(0, len(images), batch_size)):
        out = student(to_tensor(images[i: i + batch_size]).to(device), visible[i: i + batch_size],
                      None if encoded is None else encoded[j])
        probs.append(out.probs.cpu())
        nodes.append(out.node.cpu())
        both.append(out.edge_logits.softmax(-1)[..., 3].cpu())  # state 3 = 2*1 + 1: both AUs present
    return {"probs": torch.cat(probs).numpy(), "node": torch.cat(nodes).numpy(), "both": torch.cat(both).numpy()}
