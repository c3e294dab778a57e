"""The pieces every training loop here shares: schedule, one optimiser step, the loss log.

Used by MAE pretraining (:mod:`occfau_lib.mae`), the teacher (:mod:`occfau_lib.teacher`) and the
student (:mod:`occfau_lib.distill`). Each loop keeps its own data handling; what must behave
identically everywhere -- the learning-rate schedule, refusing a NaN loss with a clear error, how
the loss curve is logged, and how an interrupted run resumes -- lives here once.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
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


class EpochCheckpoint:
    """Resume a training loop where it was interrupted, to the same result as an uninterrupted run.

    After every epoch, :meth:`save` writes (atomically) everything the rest of the run depends on:
    model and optimiser state, step and epoch, the loop's random generators (a torch Generator for
    batch order and augmentation, a numpy Generator for occlusion draws, torch's global RNG) and the
    loss log, with the run's ``config``. :meth:`restore` puts them back if the file exists and its
    config matches, so the next epoch draws exactly the batches, augmentations and occlusions it
    would have drawn. ``path=None`` switches checkpointing off. (The learning rate needs no state:
    it is a pure function of the step, :func:`lr_at`.)
    """

    def __init__(self, path: str | Path | None, config: dict):
        self.path = None if path is None else Path(path)
        self.config = config

    def restore(self, model, opt, gen: torch.Generator, rng: np.random.Generator | None = None):
        """``(step, epoch, history)`` to continue from, or ``(0, 0, None)`` when there is nothing to resume."""
        if self.path is None or not self.path.exists():
            return 0, 0, None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("config") != self.config or "torch_rng" not in state:  # another run's, or an old format
            return 0, 0, None
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if rng is not None:
            rng.bit_generator.state = state["numpy_rng"]
        return state["step"], state["epoch"], state["history"]

    def save(self, model, opt, gen: torch.Generator, rng: np.random.Generator | None, step: int, epoch: int,
             history: dict) -> None:
        """Write the state after ``epoch`` epochs (``step`` optimiser steps)."""
        if self.path is None:
            return
        from .cache import atomic_write

        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "numpy_rng": None if rng is None else rng.bit_generator.state,
                 "step": step, "epoch": epoch, "history": history, "config": self.config}
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))


# --------------------------------------------------------------------------------------------
# Several processes: torchrun + DistributedDataParallel
# --------------------------------------------------------------------------------------------
def distributed() -> tuple[int, int]:
    """``(rank, world size)`` of this process. Under ``torchrun`` (``WORLD_SIZE`` > 1) the process
    group is initialised on first use -- NCCL when CUDA is available, gloo on CPU; a plain run is
    ``(0, 1)`` and touches nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def parallel(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when running under torchrun (gradients are
    averaged across processes in backward), else ``model`` itself."""
    _, world = distributed()
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[torch.device(device).index] if "cuda" in device else None)


def shard(batch_size: int) -> slice:
    """This process's share of every global batch: rows ``rank, rank + world, ...``.

    Every process draws the *whole* batch (same batch order, augmentation and occlusion random
    numbers as a single process) and trains on its share; DDP averages the equal-sized shares'
    gradients, which is the gradient of the whole batch's mean loss. (Batch-norm statistics are
    per share, the one difference from a single process.)"""
    rank, world = distributed()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
    return slice(rank, None, world)


class Loop:
    """The bookkeeping of one supervised training run, shared by the teacher and the student.

    Creates the run's random generators from ``seed`` (a torch Generator for batch order and
    augmentation, a numpy Generator for occlusion draws), restores an interrupted run from
    ``resume_path`` (:class:`EpochCheckpoint`), wraps ``model`` for DistributedDataParallel under
    torchrun (:attr:`net`, with :attr:`mine` this process's share of each batch), and runs the
    progress bar. Iterate over it for the row indices of each batch; call :meth:`step` with the
    batch's loss; :meth:`finish` returns the history with ``images_per_s``::

        loop = Loop("teacher", model, opt, len(ds), cfg.batch_size, cfg.epochs, cfg.warmup_epochs, cfg.lr,
                    cfg.seed, resume_path, config, device, progress)
        for rows in loop:
            loss = loss_fn(loop.net(x[loop.mine]), y[loop.mine])
            loop.step(loss)
        history = loop.finish()
    """

    def __init__(self, name: str, model: torch.nn.Module, opt: torch.optim.Optimizer, n: int, batch_size: int,
                 epochs: int, warmup_epochs: float, peak_lr: float, seed: int, resume_path, config: dict,
                 device: str, progress: bool, log_every: int = 20, history: dict | None = None):
        self.name, self.model, self.opt, self.peak_lr, self.log_every = name, model, opt, peak_lr, log_every
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.per_epoch = steps_per_epoch(n, batch_size)
        self.total, self.warmup = epochs * self.per_epoch, int(warmup_epochs * self.per_epoch)
        self.checkpoint = EpochCheckpoint(resume_path, config)
        self.done, epoch, restored = self.checkpoint.restore(model, opt, self.gen, self.rng)
        self.history = restored or history or new_history()
        self.start = self.done
        self.rank, _ = distributed()
        self.mine, self.net = shard(batch_size), parallel(model, device)
        self._batches = batches(n, batch_size, epochs - epoch, self.gen)
        self.bar = None
        self.progress = progress

    def __iter__(self) -> Iterator[np.ndarray]:
        from tqdm.auto import tqdm

        self.model.train()
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=self.total, initial=self.done, desc=self.name, disable=not self.progress or self.rank > 0)
        return iter(self._batches)

    @property
    def logging(self) -> bool:
        """True when the step about to be completed is one the loss log records."""
        return (self.done + 1) % self.log_every == 0 or self.done + 1 == self.total

    def step(self, loss: torch.Tensor) -> float:
        """One optimiser step on ``loss`` at the scheduled learning rate, logged (rank 0's share)
        and, at the end of an epoch, checkpointed by rank 0. Returns the loss value."""
        lr = lr_at(self.done, self.total, self.warmup, self.peak_lr)
        value = optimiser_step(self.opt, loss, lr, self.done, self.name)
        self.done += 1
        record(self.history, self.bar, self.done, self.total, value, lr, self.log_every)
        if self.done % self.per_epoch == 0 and self.rank == 0:
            self.checkpoint.save(self.model, self.opt, self.gen, self.rng, self.done, self.done // self.per_epoch,
                                 self.history)
        return value

    def finish(self) -> dict:
        """Close the bar; the history with ``images_per_s`` of this session's steps."""
        self.bar.close()
        elapsed = max(1e-9, time.perf_counter() - self.t0)
        self.history["images_per_s"] = (self.done - self.start) * self.batch_size / elapsed
        return self.history
