"""The one table of losses, one per task: what a network of that task is trained to lower.

A training job, a hand-written backward pass, a gradient probe and an exported script all
pick their loss here by task, so they cannot disagree on what "the loss" is. Each entry is
a `torch.nn` loss class; the exported line is written from the same class, and the entry
says what targets the loss expects, so a script's docstring and demo data fit it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Loss:
    label: str
    cls: type[nn.Module]
    targets: str  # the targets it expects, in words, for exported docstrings
    target: Callable[[object], torch.Tensor]  # targets (any array-like) in the dtype and shape it expects
    example: str  # PyTorch source of random targets for {n} examples and {n_out} outputs

    def make(self) -> nn.Module:
        return self.cls()

    def code(self) -> str:
        """The PyTorch expression that builds the same loss, for exported scripts."""
        return f"nn.{self.cls.__name__}()"


LOSSES: dict[str, Loss] = {  # key: the task
    "classification": Loss("cross-entropy", nn.CrossEntropyLoss, "labels (N,) int64",
                           lambda y: torch.as_tensor(y).long(), "torch.randint(0, {n_out}, ({n},))"),
    "regression": Loss("mean squared error", nn.MSELoss, "targets (N, outputs) float32",
                       lambda y: torch.as_tensor(y).float().reshape(len(y), -1), "torch.randn({n}, {n_out})"),
}
