"""Tests for occfau_lib.train: the schedule, the optimiser step and the loss log shared by every loop."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occfau_lib import train


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


def test_batches_cover_each_epoch_once_sorted_and_reshuffled():
    out = list(train.batches(10, 3, 2, torch.Generator().manual_seed(0)))
    assert len(out) == 2 * 3 and all(len(b) == 3 and (np.diff(b) > 0).all() for b in out)
    first, second = np.concatenate(out[:3]), np.concatenate(out[3:])
    assert len(set(first)) == 9 and len(set(second)) == 9  # no row twice in an epoch; one left out
    again = list(train.batches(10, 3, 2, torch.Generator().manual_seed(0)))
    assert all(np.array_equal(a, b) for a, b in zip(out, again))
    assert not all(np.array_equal(a, b) for a, b in zip(out[:3], out[3:]))
    with pytest.raises(ValueError, match="2 training images are fewer than one batch of 3"):
        train.steps_per_epoch(2, 3)
