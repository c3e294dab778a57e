"""Tests for occfau_lib.train: the schedule, the optimiser step and the loss log shared by every loop."""
from __future__ import annotations

import math
import time

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


def _run(n=12, batch=3, epochs=2, lr=0.25, log_every=3, resume_path=None):
    from occfau_lib.config import TeacherTrainConfig

    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=123.0)
    schedule = TeacherTrainConfig(epochs=epochs, batch_size=batch, lr=lr, warmup_epochs=0, weight_decay=0.0)
    run = train.Run("toy", torch.nn.ParameterList([w]), opt, n=n, schedule=schedule, config={"run": "toy"},
                    progress=False, log_every=log_every, resume_path=resume_path)
    return w, opt, run


def test_a_run_sets_the_scheduled_rate_logs_and_counts_steps():
    w, opt, run = _run()
    loss = (2 * w).sum()
    assert run.set_lr(opt, loss) == pytest.approx(0.25) and opt.param_groups[0]["lr"] == pytest.approx(0.25)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert run.log(loss, part=1.0) == pytest.approx(2.0) and run.step == 1
    assert w.item() == pytest.approx(1.0 - 0.25 * 2)  # one SGD step at the scheduled rate
    for _ in range(7):
        run.set_lr(opt, loss)
        run.log(loss, part=1.0)
    assert run.history["step"] == [3, 6, 8] and run.history["part"] == [1.0, 1.0, 1.0]  # every 3rd and the last
    assert run.history["lr"][-1] == pytest.approx(train.lr_at(7, 8, 0, 0.25))
    assert run.finish()["images_per_s"] > 0


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_run_refuses_a_non_finite_loss(bad):
    w, opt, run = _run()
    with pytest.raises(FloatingPointError, match=f"toy loss became {bad} at step 0"):
        run.set_lr(opt, w.sum() * bad)
    assert w.item() == 1.0 and w.grad is None  # nothing was applied


def test_a_run_resumes_from_its_epoch_checkpoint(tmp_path):
    """The generators, weights, step and log come back: the next epoch draws what it would have."""
    path = tmp_path / "toy.partial.pt"
    w, opt, run = _run(resume_path=path)
    for rows, faces in run.batches(lambda rows: np.zeros((len(rows), 1), np.uint8)):
        run.set_lr(opt, w.sum())
        run.log(w.sum())
    time.sleep(0.05)
    run.end_epoch()
    following = [r.tolist() for r in train.epoch_batches(12, 3, run.gen)]
    _, _, again = _run(resume_path=path)
    assert (again.step, again.epoch) == (4, 1) and again.history["step"] == run.history["step"]
    assert [r.tolist() for r in train.epoch_batches(12, 3, again.gen)] == following
    assert again.finish()["seconds"] >= 0.05  # wall time counts the session it resumes


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
