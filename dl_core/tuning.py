"""Choosing how to train: learning-rate range test, schedules drawn, batch size compared,
and SGD's noise — each on a real model, with torch.optim and the one TrainingJob."""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .engine import TrainConfig, TrainingJob
from .optim import SCHEDULES, scheduler


def train_blocking(job: TrainingJob, timeout: float = 600) -> TrainingJob:
    """Run a job to its end (max_epochs) and wait for it; its thread is stopped afterwards."""
    end = time.monotonic() + timeout
    job.start()
    while job.status()["state"] not in ("finished", "failed") and time.monotonic() < end:
        time.sleep(0.02)
    job.stop()
    job.join(10)
    if job.status()["state"] == "failed":
        raise RuntimeError(job.message)
    return job


def lr_range_test(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, lo: float = 1e-5,
                  hi: float = 10.0, steps: int = 100, batch_size: int = 32, seed: int = 0,
                  optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Smith's (2017) test on a copy of the model: raise the learning rate exponentially from
    `lo` to `hi`, one batch each, and record the smoothed loss; stop once it has blown up.
    `optimizer` builds the optimizer the network really trains with (the best rate for Adam is
    not the best for SGD); the default is SGD with momentum 0.9."""
    model = copy.deepcopy(model).train()
    opt = (optimizer or (lambda ps: torch.optim.SGD(ps, lr=lo, momentum=0.9)))(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    rates, losses, smooth, best = [], [], None, math.inf
    for i in range(steps):
        lr = lo * (hi / lo) ** (i / (steps - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            break
        loss.backward()
        opt.step()
        value = loss.item()
        smooth = value if smooth is None else 0.8 * smooth + 0.2 * value
        rates.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best and i > 10:
            break
    return np.array(rates), np.array(losses)


def suggested_lr(rates: np.ndarray, losses: np.ndarray, min_drop: float = 0.1) -> float | None:
    """A tenth of the rate at the lowest smoothed loss (Smith's rule of thumb, fastai's lr_min):
    the minimum itself is already at the edge where training turns unstable. The steepest
    descent point, the other common pick, landed 3–15× higher on the Playground's data.

    None when the curve has no clear minimum: its lowest point is less than `min_drop` (a tenth)
    below where it started. A flat curve's lowest point is noise, and a tenth of it is not advice
    (on the spiral the test once "suggested" 0.0057 from a curve at about 0.7 throughout)."""
    if len(rates) == 0:
        return None
    start = float(np.median(losses[:5]))
    if start - float(losses.min()) < min_drop * abs(start):
        return None
    return float(max(rates[int(np.argmin(losses))] / 10, rates[0]))


def schedule_curve(key: str, lr: float, epochs: int) -> list[float]:
    """The learning rate at each epoch under SCHEDULES[key], read from torch's own scheduler."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = scheduler(opt, lambda e: SCHEDULES[key].factor(e, epochs))
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def compare_runs(make_job: Callable[[TrainConfig], TrainingJob], configs: dict[str, TrainConfig]) -> dict[str, dict]:
    """Train the same network from the same start under each config (e.g. each batch size, each
    schedule). Returns per label: test loss per epoch, number of updates, and seconds."""
    out = {}
    for label, config in configs.items():
        job = make_job(config)
        t0 = time.perf_counter()
        train_blocking(job)
        epochs_seen = job.view(10_000)["epochs"]
        out[label] = {"test_loss": [e["test_loss"] for e in epochs_seen], "updates": job.step,
                      "seconds": time.perf_counter() - t0}
    return out


def per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
                      param: str) -> np.ndarray:
    """∂loss/∂param for every example separately (torch.func: vmap over grad), flattened (N, P).
    Their mean is the full-batch gradient; a mini-batch gradient is the mean of a random few."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p, xi, yi):
        return loss_fn(functional_call(model, p, (xi[None],)), yi[None])

    g = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)[param]
    return g.reshape(len(x), -1).numpy()


def minibatch_spread(per_example: np.ndarray, sizes: list[int], draws: int = 200,
                     seed: int = 0) -> dict[int, np.ndarray]:
    """For each batch size, `draws` mini-batch gradient estimates (means of random examples)."""
    rng = np.random.default_rng(seed)
    n = len(per_example)
    return {b: np.array([per_example[rng.choice(n, min(b, n), replace=False)].mean(0) for _ in range(draws)])
            for b in sizes}


def epoch_path(job: TrainingJob, epochs: int, timeout: float = 120) -> list[dict[str, torch.Tensor]]:
    """Train `job` epoch by epoch and keep the weights after each (the start included), for
    drawing the path training took across a loss landscape."""
    snap = lambda: {k: v.detach().clone() for k, v in job.model.named_parameters()}
    path = [snap()]
    end = time.monotonic() + timeout
    for _ in range(epochs):
        job.step_epoch()
        while job.active and time.monotonic() < end:
            time.sleep(0.002)
        with job.lock:
            path.append(snap())
    job.stop()
    return path
