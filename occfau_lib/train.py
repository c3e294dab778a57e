"""What every training loop shares: the schedule, the loss log, resume, the engine (device,
precision, data loading) and the torchrun plumbing.

MAE pretraining, the teacher and the student are plain loops (``zero_grad``, ``backward``,
``step``) around a :class:`Run`, so these behave the same everywhere.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .cache import CorruptFile, atomic_write, read_state
from .config import EngineConfig, Schedule


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


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Row indices of one epoch's batches: ``n`` rows shuffled by ``generator``, full batches
    only, each batch sorted (cheaper gathers from memory and from files in order)."""
    steps = steps_per_epoch(n, batch_size)
    order = torch.randperm(n, generator=generator)[: steps * batch_size]
    return [np.sort(rows.numpy()) for rows in order.view(steps, batch_size)]


def new_history() -> dict:
    return {"step": [], "loss": [], "lr": []}


@dataclass(frozen=True)
class Engine:
    """Where and how a run computes: a device plus :class:`~occfau_lib.config.EngineConfig`
    (a plain device name means the defaults). On CUDA: bf16 autocast when asked, fused AdamW,
    channels-last convolutions, loader processes with pinned memory; on CPU with the defaults
    each of these is a no-op."""

    device: str = "cpu"
    cfg: EngineConfig = field(default_factory=EngineConfig)

    @staticmethod
    def of(device: "str | Engine") -> "Engine":
        return device if isinstance(device, Engine) else Engine(str(device))

    @property
    def cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"

    def autocast(self):
        """bfloat16 autocast of forward passes when ``precision="bf16"`` (no loss scaling needed)."""
        if self.cfg.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)

    def adamw(self, params, lr: float, weight_decay: float, betas=(0.9, 0.999)) -> torch.optim.AdamW:
        """AdamW; on CUDA its fused kernel."""
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay,
                                 fused=True if self.cuda else None)

    @property
    def channels_last(self) -> bool:
        return self.cfg.channels_last and self.cuda

    def place(self, model: torch.nn.Module, conv: bool = False) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if conv and self.channels_last else model

    def batch(self, x: torch.Tensor, conv: bool = False) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if conv and self.channels_last and x.ndim == 4 else x

    def key(self) -> dict:
        """What a cached model's key must add: a non-default precision changes the weights."""
        return {"precision": self.cfg.precision} if self.cfg.precision != "fp32" else {}


class _Rows(torch.utils.data.Dataset):
    """A 'dataset' whose items are whole batches: ``self[rows]`` = ``fetch(rows)`` (uint8 faces)."""

    def __init__(self, fetch: Callable[[np.ndarray], np.ndarray]):
        self.fetch = fetch

    def __getitem__(self, rows):
        return self.fetch(rows)


class EpochCheckpoint:
    """Resume a training loop where it stopped, to the same result as an uninterrupted run.

    :meth:`save` writes (atomically) after every epoch what the rest of the run depends on: model,
    optimiser, step, epoch, the random generators and the loss log, with the run's ``config``;
    :meth:`restore` puts them back when the file holds this config. ``path=None``: off.
    """

    def __init__(self, path: str | Path | None, config: dict):
        self.path = None if path is None else Path(path)
        self.config = config

    def restore(self, model, opt, gen: torch.Generator, rng: np.random.Generator | None = None):
        """``(step, epoch, history)`` to continue from, or ``(0, 0, None)`` when there is nothing to resume."""
        if self.path is None or not self.path.exists():
            return 0, 0, None
        try:
            state = read_state(self.path)
        except CorruptFile as err:  # e.g. truncated by a full disk: start over rather than crash
            warnings.warn(f"{err}; starting this training over", stacklevel=2)
            return 0, 0, None
        if state.get("config") != self.config or "torch_rng" not in state:  # another run's, or an old format
            return 0, 0, None
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:  # written by an older version of the loop: start over
            return 0, 0, None
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
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "numpy_rng": None if rng is None else rng.bit_generator.state,
                 "step": step, "epoch": epoch, "history": history, "config": self.config}
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))


# Several processes: torchrun + DistributedDataParallel
def distributed() -> tuple[int, int]:
    """``(rank, world size)``; under torchrun the process group is initialised on first use
    (NCCL with CUDA, else gloo). A plain run is ``(0, 1)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def local_device(device: str) -> str:
    """Under torchrun ``"cuda"`` means this process's own GPU (``cuda:$LOCAL_RANK``)."""
    if device != "cuda" or distributed()[1] == 1:
        return device
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return f"cuda:{index}"


def parallel(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """``model`` in DistributedDataParallel under torchrun, else ``model`` itself."""
    _, world = distributed()
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    gpu = torch.device(device)
    return DistributedDataParallel(model, device_ids=[gpu.index or 0] if gpu.type == "cuda" else None)


def shard(batch_size: int) -> slice:
    """This process's share of every global batch: rows ``rank, rank + world, ...``. Every process
    draws the whole batch (the same random numbers as one process) and DDP averages the shares'
    gradients: the whole batch's gradient (batch-norm statistics are per share)."""
    rank, world = distributed()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
    return slice(rank, None, world)


class Run:
    """What one training run keeps besides its model and optimiser: the random generators, the
    learning-rate schedule, the loss log and progress bar, the epoch checkpoint, and the
    DistributedDataParallel wrapper. The MAE, the teacher and the student train in plain loops
    around it::

        run = Run("teacher", model, opt, n=len(ds), schedule=cfg, config=config, engine=engine)
        for epoch in range(run.epoch, cfg.epochs):
            for rows, faces in run.batches(ds.batch_images):   # this epoch's shuffled full batches
                loss = loss_fn(run.net(to_tensor(faces)[run.mine]), labels[rows][run.mine])
                run.set_lr(opt, loss)                          # warm-up + cosine; a NaN loss stops here
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                run.log(loss)
            run.end_epoch()                                    # the checkpoint an interrupted run resumes from
        history = run.finish()

    ``run.gen`` (torch: batch order, masks, augmentation) and ``run.rng`` (numpy: occlusions) start
    from ``schedule.seed`` and are restored with the rest by :class:`EpochCheckpoint` from
    ``resume_path``. Under torchrun :attr:`net` is the DDP model, :attr:`mine` this process's rows.
    """

    def __init__(self, name: str, model: torch.nn.Module, opt: torch.optim.Optimizer, *, n: int, schedule: Schedule,
                 config: dict, engine: "str | Engine" = "cpu", resume_path: str | Path | None = None,
                 progress: bool = True, log_every: int = 20, history: dict | None = None):
        from tqdm.auto import tqdm

        self.name, self.model, self.opt, self.peak_lr, self.log_every = name, model, opt, schedule.lr, log_every
        self.engine = Engine.of(engine)
        self.n, self.batch_size = n, schedule.batch_size
        self.gen = torch.Generator().manual_seed(schedule.seed)
        self.rng = np.random.default_rng(schedule.seed)
        self.per_epoch = steps_per_epoch(n, self.batch_size)
        self.total, self.warmup = schedule.epochs * self.per_epoch, int(schedule.warmup_epochs * self.per_epoch)
        self.checkpoint = EpochCheckpoint(resume_path, config)
        self.step, self.epoch, restored = self.checkpoint.restore(model, opt, self.gen, self.rng)
        self.history, self.start = restored or history or new_history(), self.step
        self.seconds_before = self.history.get("seconds", 0.0)  # wall time of the sessions this one resumes
        self.rank, _ = distributed()
        self.mine, self.net = shard(self.batch_size), parallel(model, self.engine.device)
        self.lr, self._loader = 0.0, None
        model.train()
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=self.total, initial=self.step, desc=name, disable=not progress or self.rank > 0)

    def batches(self, fetch: Callable[[np.ndarray], np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """This epoch's ``(rows, uint8 faces)``: the order drawn from :attr:`gen` first, faces from
        ``fetch(rows)`` (in ``engine.cfg.workers`` loader processes when > 0, same result)."""
        order = epoch_batches(self.n, self.batch_size, self.gen)
        if not self.engine.cfg.workers:
            return zip(order, (torch.from_numpy(fetch(rows)) for rows in order))
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                _Rows(fetch), sampler=[], batch_size=None, num_workers=self.engine.cfg.workers,
                pin_memory=self.engine.cuda, persistent_workers=True)
        self._loader.sampler[:] = order  # the sampler is this list: the epoch's batches
        return zip(order, iter(self._loader))

    def set_lr(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> float:
        """Set this step's rate (:func:`lr_at`, times a group's ``"scale"``); a loss that is not
        finite is a FloatingPointError naming the run and the step."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.name} loss became {loss.item()} at step {self.step}; "
                                     "lower the learning rate")
        self.lr = lr_at(self.step, self.total, self.warmup, self.peak_lr)
        for group in opt.param_groups:
            group["lr"] = self.lr * group.get("scale", 1.0)
        return self.lr

    @property
    def logging(self) -> bool:
        return (self.step + 1) % self.log_every == 0 or self.step + 1 == self.total

    def log(self, loss: torch.Tensor, **parts: float) -> float:
        """Count the step; every ``log_every`` steps and at the last, log loss, rate and ``parts``."""
        value = loss.item()
        if self.logging:
            for key, v in {"step": self.step + 1, "loss": value, "lr": self.lr, **parts}.items():
                self.history.setdefault(key, []).append(v)
            self.bar.set_postfix(loss=f"{value:.4f}")
        self.step += 1
        self.bar.update(1)
        return value

    def end_epoch(self) -> None:
        """Write the epoch checkpoint (rank 0)."""
        self.epoch += 1
        self.history["seconds"] = self.seconds_before + time.perf_counter() - self.t0
        if self.rank == 0:
            self.checkpoint.save(self.model, self.opt, self.gen, self.rng, self.step, self.epoch, self.history)

    def finish(self) -> dict:
        """The history, with ``images_per_s`` of this session and ``seconds`` over all sessions."""
        self.bar.close()
        elapsed = max(1e-9, time.perf_counter() - self.t0)
        self.history["images_per_s"] = (self.step - self.start) * self.batch_size / elapsed
        self.history["seconds"] = self.seconds_before + elapsed  # wall time, over resumed sessions
        return self.history
