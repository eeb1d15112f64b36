"""The one dataset type a training job reads: train and test tensors on the job's device."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TensorData:
    """Train and test tensors, already on the job's device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str

    @classmethod
    def from_arrays(cls, x_train, y_train, x_test, y_test, task: str, device="cpu") -> "TensorData":
        def target(y):
            t = torch.as_tensor(y, device=device)
            return t.long() if task == "classification" else t.float().reshape(-1, 1)

        if len(x_train) == 0:
            raise ValueError("The training set is empty: add points or lower the test share.")
        return cls(torch.as_tensor(x_train, dtype=torch.float32, device=device), target(y_train),
                   torch.as_tensor(x_test, dtype=torch.float32, device=device), target(y_test), task)
