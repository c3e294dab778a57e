"""Tests for occfau_lib.train: the schedule, the optimiser step and the loss log shared by every loop."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occfau_lib import train
from occfau_lib.config import EngineConfig


def test_lr_schedule():
    total, warmup, peak = 100, 10, 3e-3
    lrs = [train.lr_at(s, total, warmup, peak) for s in range(total + 1)]
    steps = np.diff(lrs[:warmup])
    assert np.allclose(steps, peak / warmup)  # linear warm-up
    assert lrs[0] == pytest.approx(peak / warmup)
    assert lrs[warmup - 1] == pytest.approx(peak) and lrs[warmup] == pytest.approx(peak)
    assert max(lrs) == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))  # monotone cosine decay
    assert lrs[warmup + (total - warmup) // 2] == pytest.approx(peak / 2)  # cosine midpoint
    assert lrs[total] == pytest.approx(0, abs=1e-12)
    assert lrs[total - 1] < 0.01 * peak
    assert train.lr_at(0, 10, 0, 1.0) == pytest.approx(1.0)  # no warm-up: start at the peak
    assert train.lr_at(500, 100, 10, 1.0) == pytest.approx(0, abs=1e-12)  # clamped after the end


def test_optimiser_step_sets_lr_and_steps():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=123.0)
    value = train.optimiser_step(opt, (2 * w).sum(), lr=0.25, step=0, what="toy")
    assert value == pytest.approx(2.0)
    assert opt.param_groups[0]["lr"] == 0.25
    assert w.item() == pytest.approx(1.0 - 0.25 * 2)  # one SGD step with the new rate


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_optimiser_step_refuses_a_non_finite_loss(bad):
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    with pytest.raises(FloatingPointError, match=f"student loss became {bad} at step 7"):
        train.optimiser_step(opt, w.sum() * bad, lr=0.1, step=7, what="student")
    assert w.item() == 1.0 and w.grad is None  # nothing was applied


def test_record_logs_every_n_steps_and_the_last():
    class Bar:
        def __init__(self):
            self.n, self.postfix = 0, None

        def update(self, k):
            self.n += k

        def set_postfix(self, **kw):
            self.postfix = kw

    history, bar = train.new_history(), Bar()
    for step in range(1, 8):
        train.record(history, bar, step, total=7, loss=float(step), lr=0.1 * step, log_every=3)
    assert history["step"] == [3, 6, 7] and history["loss"] == [3.0, 6.0, 7.0]
    assert history["lr"] == pytest.approx([0.3, 0.6, 0.7])
    assert bar.n == 7 and bar.postfix == {"loss": "7.0000"}


def test_epoch_batches_cover_each_epoch_once_sorted_and_reshuffled():
    gen = torch.Generator().manual_seed(0)
    first, second = train.epoch_batches(10, 3, gen), train.epoch_batches(10, 3, gen)
    assert len(first) == len(second) == 3
    assert all(len(b) == 3 and (np.diff(b) > 0).all() for b in first + second)
    assert len(set(np.concatenate(first))) == 9 and len(set(np.concatenate(second))) == 9  # one row left out
    again = torch.Generator().manual_seed(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, train.epoch_batches(10, 3, again)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="2 training images are fewer than one batch of 3"):
        train.steps_per_epoch(2, 3)


def test_engine_defaults_change_nothing_on_cpu():
    engine = train.Engine.of("cpu")
    assert engine == train.Engine("cpu") and train.Engine.of(engine) is engine
    assert not engine.cuda and not engine.channels_last and engine.key() == {}
    lin = torch.nn.Linear(4, 4)
    with engine.autocast():
        assert lin(torch.ones(1, 4)).dtype == torch.float32
    conv = engine.place(torch.nn.Conv2d(3, 4, 3), conv=True)
    assert conv.weight.is_contiguous()  # no channels-last on CPU
    opt = engine.adamw(lin.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    assert not opt.defaults["fused"] and opt.defaults["betas"] == (0.9, 0.95)
    assert train.local_device("cuda") == "cuda" and train.local_device("cpu") == "cpu"  # not under torchrun


def test_engine_bf16_autocasts_and_keys_the_cache():
    engine = train.Engine("cpu", EngineConfig(precision="bf16"))
    lin = torch.nn.Linear(4, 4)
    with engine.autocast():
        assert lin(torch.ones(1, 4)).dtype == torch.bfloat16
    assert lin.weight.dtype == torch.float32
    assert engine.key() == {"precision": "bf16"}


def test_engine_on_cuda_uses_the_fused_optimiser_and_channels_last():
    engine = train.Engine("cuda:0", EngineConfig(precision="bf16", workers=8))
    assert engine.cuda and engine.channels_last
    assert not train.Engine("cuda", EngineConfig(channels_last=False)).channels_last
    if torch.cuda.is_available():
        conv = engine.place(torch.nn.Conv2d(3, 4, 3), conv=True)
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert engine.adamw(conv.parameters(), lr=1e-3, weight_decay=0.0).defaults["fused"]


@pytest.mark.parametrize("bad, message", [({"precision": "fp16"}, "precision must be 'fp32' or 'bf16'"),
                                          ({"workers": -1}, "workers must be >= 0")])
def test_engine_config_refuses_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**bad)
