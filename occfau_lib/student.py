"""The method's student: AUs from the latent tokens an MAE computes on the *visible* patches only.

Taught in notebook 04. A frozen MAE encoder (:mod:`occfau_lib.mae`) encodes exactly the patches an
occluder leaves visible -- the hidden ones are dropped before the encoder, never reconstructed.
A **mapping network** turns those latent tokens into the teacher's feature spaces: one node
feature per AU ``(B, N, C)`` and one edge feature per ordered AU pair ``(B, N, N, C)``, from which
AUs are classified. The mapping network is ME-GraphAU's head (:class:`teacher.GraphHead`: a width-C
linear block on the tokens, per-AU blocks, facial graph, FAM/ARM edges, two gated graph
convolutions, cosine-prototype classifier, edge classifier) put on MAE tokens instead of CNN
tokens, so its node and edge features live where the teacher's do and can be distilled
(:mod:`occfau_lib.distill`).

Choices where the paper is silent [ours]: the encoder is frozen (its weights never change and it
stays in eval mode); the CLS token is not used (MAE never trains it for anything); the student
classifies with its own prototypes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import mae
from .teacher import GraphHead, TeacherOutput


class Student(nn.Module):
    """Frozen MAE encoder on visible patches -> :class:`teacher.GraphHead` -> :class:`TeacherOutput`."""

    def __init__(self, mae_model, aus: tuple[int, ...], width: int, k_neighbours: int):
        super().__init__()
        self.aus = tuple(aus)
        self.mae = mae_model.eval()
        for p in self.mae.parameters():
            p.requires_grad_(False)
        self.patch_size = mae_model.config.patch_size
        self.head = GraphHead(mae_model.config.hidden_size, len(self.aus), width, k_neighbours)

    def train(self, mode: bool = True) -> Student:
        """Train the mapping network only: the frozen encoder stays in eval mode."""
        super().train(mode)
        self.mae.eval()
        return self

    def forward(self, images: torch.Tensor, visible: torch.Tensor | np.ndarray | None) -> TeacherOutput:
        """images (B, 3, S, S) in [0, 1], visible (B, L) bool (None = every patch) -> TeacherOutput."""
        with torch.no_grad():
            enc = mae.encode(self.mae, images, visible)  # tokens (B, 1 + K, D), valid (B, K)
        return self.head(enc.tokens[:, 1:], enc.valid)  # the visible patch tokens, padding masked

    def head_state(self) -> dict:
        """The trainable part's weights (what a checkpoint stores; the encoder is stored once elsewhere)."""
        return self.head.state_dict()


@torch.no_grad()
def predict(student: Student, images: np.ndarray, visible: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Run the student over uint8 faces (N, S, S, 3) seen through ``visible`` (N, L):
    ``{"probs": (N, n_au), "node": (N, n_au, C)}``."""
    student.eval()
    device = next(student.head.parameters()).device
    probs, nodes = [], []
    for i in range(0, len(images), batch_size):
        out = student(mae.to_tensor(images[i: i + batch_size]).to(device), visible[i: i + batch_size])
        probs.append(out.probs.cpu())
        nodes.append(out.node.cpu())
    return {"probs": torch.cat(probs).numpy(), "node": torch.cat(nodes).numpy()}
