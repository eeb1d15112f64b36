"""The one table of optimizers and the one table of learning-rate schedules.

Every optimizer is a `torch.optim` class with the settings a learner can move; the same
entry builds it for a training job, for a point rolling down a 2-D surface, and writes the
line of exported code, so the three can never disagree (they once did about RMSprop).

A schedule is a factor of the chosen rate per epoch, run through torch's own `LambdaLR`.
Being a pure function of (epoch, run length), a job can change the rate, the schedule or
the run length mid-run and land exactly where the new settings say, without restarting it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

SETTINGS = ("lr", "momentum", "beta1", "beta2", "weight_decay")
DEFAULT_SETTINGS = {"lr": 0.01, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01}


@dataclass(frozen=True)
class OptimizerType:
    label: str
    cls: type[torch.optim.Optimizer]
    settings: tuple[str, ...]  # which of SETTINGS it uses
    fixed: tuple[tuple[str, object], ...] = ()  # constructor arguments that make it this variant

    def kwargs(self, s: dict) -> dict:
        """torch keyword arguments from the learner's settings (β₂ is RMSprop's smoothing α)."""
        out = dict(self.fixed)
        for name in self.settings:
            if name in ("beta1", "beta2") and "beta1" in self.settings:
                out["betas"] = (s["beta1"], s["beta2"])
            elif name == "beta2":
                out["alpha"] = s["beta2"]
            else:
                out[name] = s[name]
        return out

    def make(self, params, s: dict) -> torch.optim.Optimizer:
        return self.cls(params, **self.kwargs(DEFAULT_SETTINGS | s))

    def code(self, s: dict, params: str = "model.parameters()") -> str:
        """The PyTorch line that builds the same optimizer, for exported scripts."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs(DEFAULT_SETTINGS | s).items())
        return f"torch.optim.{self.cls.__name__}({params}, {args})"


OPTIMIZERS: dict[str, OptimizerType] = {
    "sgd": OptimizerType("SGD", torch.optim.SGD, ("lr",)),
    "momentum": OptimizerType("SGD + momentum", torch.optim.SGD, ("lr", "momentum")),
    "nesterov": OptimizerType("Nesterov", torch.optim.SGD, ("lr", "momentum"), (("nesterov", True),)),
    "rmsprop": OptimizerType("RMSprop", torch.optim.RMSprop, ("lr", "beta2")),
    "adagrad": OptimizerType("Adagrad", torch.optim.Adagrad, ("lr",)),
    "adam": OptimizerType("Adam", torch.optim.Adam, ("lr", "beta1", "beta2")),
    "adamw": OptimizerType("AdamW", torch.optim.AdamW, ("lr", "beta1", "beta2", "weight_decay")),
}


def _one_cycle(epoch: int, total: int, warm: float = 0.3, low: float = 0.04) -> float:
    """Smith's one-cycle shape: cosine up from `low` over the first 30 % of the run, cosine down
    towards zero after; past the end it stays at the bottom."""
    total = max(2, total)
    t = min(epoch, total - 1) / (total - 1)
    if t < warm:
        return low + (1 - low) * (1 - math.cos(math.pi * t / warm)) / 2
    return 1e-3 + (1 - 1e-3) * (1 + math.cos(math.pi * (t - warm) / (1 - warm))) / 2


@dataclass(frozen=True)
class Schedule:
    label: str
    factor: Callable[[int, int], float]  # (epoch, epochs in the run) -> multiple of the chosen rate


SCHEDULES: dict[str, Schedule] = {  # the closed forms of torch's StepLR(gamma=0.3), CosineAnnealingLR, one-cycle
    "constant": Schedule("Constant", lambda e, n: 1.0),
    "step": Schedule("Step: ×0.3 every third of the run", lambda e, n: 0.3 ** (e // max(1, n // 3))),
    "cosine": Schedule("Cosine: glide down to zero",
                       lambda e, n: (1 + math.cos(math.pi * min(e, max(1, n)) / max(1, n))) / 2),
    "onecycle": Schedule("One-cycle: warm up, then anneal", _one_cycle),
}
DEFAULT_RUN_EPOCHS = 30  # the length a schedule assumes when a run has no end


def scheduler(optimizer: torch.optim.Optimizer, factor: Callable[[int], float]):
    """torch's LambdaLR over `factor(epoch)`; the caller's factor may read settings that change."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def track_steps(optimizer: torch.optim.Optimizer) -> None:
    """Mark `optimizer.step` as a scheduler does (LambdaLR wraps it to check the order of calls).
    A pickle carries the optimizer without that wrapper, so a job that travelled to another
    process puts it back, or every epoch would warn that step() "has been overridden"."""
    step = optimizer.step

    def wrapper(*args, **kwargs):
        optimizer._opt_called = True
        return step(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    optimizer.step = wrapper
