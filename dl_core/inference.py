"""Class probabilities from a trained classifier, shared by every lab that asks a model what it sees.

Its own module so that a lab's engine (the CNN Lab's, the explainer's) can use it without
importing another lab's: it needs only the model and torch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities for a batch of inputs (eval mode, so dropout and batch norm are
    deterministic); the model's training mode is restored afterwards."""
    was = model.training
    model.eval()
    with torch.no_grad():
        p = model(torch.as_tensor(x, dtype=torch.float32, device=next(model.parameters()).device)).softmax(1)
    model.train(was)
    return p.cpu().numpy()
