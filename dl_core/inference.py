"""Class probabilities from a trained classifier, shared by every lab that asks a model what it sees,
and `evaluating`, the one way any engine module reads a model in eval mode (probes, evaluation,
feature maps, loss surfaces, the recurrent cells' look inside), and the confusion matrix every
classifier's evaluation counts.

Its own module so that a lab's engine (the CNN Lab's, the explainer's) can use it without
importing another lab's: it needs only the model and torch.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


@contextmanager
def evaluating(model: nn.Module):
    """Eval mode for a reading (dropout off, batch norm on its running statistics), then back to
    whatever mode the model was in, even if the reading fails."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities for a batch of inputs (eval mode, so dropout and batch norm are
    deterministic); the model's training mode is restored afterwards."""
    with evaluating(model), torch.no_grad():
        p = model(torch.as_tensor(x, dtype=torch.float32, device=next(model.parameters()).device)).softmax(1)
    return p.cpu().numpy()


def confusion_matrix(pred: torch.Tensor, true: torch.Tensor, k: int) -> np.ndarray:
    """counts[true, predicted]."""
    return torch.bincount(true * k + pred, minlength=k * k).reshape(k, k).cpu().numpy()
