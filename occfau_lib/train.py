"""The pieces every training loop here shares: schedule, one optimiser step, the loss log.

Used by MAE pretraining (:mod:`occfau_lib.mae`), the teacher (:mod:`occfau_lib.teacher`) and, later,
the student. Each loop keeps its own data handling; what must behave identically everywhere --
the learning-rate schedule, refusing a NaN loss with a clear error, and how the loss curve is
logged -- lives here once.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped); at least one, else ValueError."""
    steps = n // batch_size
    if steps == 0:
        raise ValueError(f"{n} training images are fewer than one batch of {batch_size}")
    return steps


def batches(n: int, batch_size: int, epochs: int, generator: torch.Generator) -> Iterator[np.ndarray]:
    """Row indices of every training batch: ``epochs`` passes over ``n`` rows, reshuffled each
    pass by ``generator``, full batches only, each batch sorted (cheaper gathers from memory)."""
    steps = steps_per_epoch(n, batch_size)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)[: steps * batch_size]
        for rows in order.view(steps, batch_size):
            yield np.sort(rows.numpy())


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float, step: int, what: str) -> float:
    """Set the learning rate, then back-propagate ``loss`` and step -- unless the loss is not
    finite, which raises FloatingPointError naming ``what`` and the step (a NaN would otherwise
    silently turn every weight into NaN). Returns the loss value."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} loss became {loss.item()} at step {step}; lower the learning rate")
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def new_history() -> dict:
    """An empty loss log: ``{"step": [], "loss": [], "lr": []}``."""
    return {"step": [], "loss": [], "lr": []}


def record(history: dict, bar, step: int, total: int, loss: float, lr: float, log_every: int) -> None:
    """Log ``(step, loss, lr)`` every ``log_every`` steps and at the last one, and show the loss
    on the progress bar (a tqdm bar, advanced by one step here)."""
    bar.update(1)
    if step % log_every == 0 or step == total:
        history["step"].append(step)
        history["loss"].append(loss)
        history["lr"].append(lr)
        bar.set_postfix(loss=f"{loss:.4f}")
