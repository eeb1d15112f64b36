"""Snapshots of a Playground network for live views.

One forward pass over a grid of the plane gives the output map and, through
forward hooks, every hidden neuron's own map; weights and the test-set
confusion matrix come along. The training job calls the probe at a fixed
wall-clock rate, so the cost per second is bounded whatever the model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data.data2d import DOMAIN, feature_matrix
from .inference import confusion_matrix, evaluating
from .layerlist import layers_of
from .spec import ModelSpec, linear_layers, neuron_layers


def grid_points(resolution: int, curve: bool = False) -> np.ndarray:
    """Points covering the plane, row-major from the top-left (y = +DOMAIN),
    or, for 1-D curve data, `resolution` points along x (y = 0)."""
    axis = np.linspace(-DOMAIN, DOMAIN, resolution, dtype=np.float32)
    if curve:
        return np.stack([axis, np.zeros_like(axis)], 1)
    xs, ys = np.meshgrid(axis, axis[::-1])
    return np.stack([xs.ravel(), ys.ravel()], 1)


class PlaygroundProbe:
    """Callable probe: model -> snapshot dict (numpy arrays only, safe to hand to the UI)."""

    def __init__(self, spec: ModelSpec, features: tuple[str, ...], resolution: int = 40, curve: bool = False,
                 test: tuple[np.ndarray, np.ndarray] | None = None, device="cpu"):
        self.spec, self.curve = spec, curve
        self.shape = (resolution,) if curve else (resolution, resolution)
        self.grid = torch.as_tensor(feature_matrix(grid_points(resolution, curve), features), device=device)
        self.test = None
        if test is not None and len(test[0]):
            self.test = (torch.as_tensor(feature_matrix(test[0], features), device=device),
                         torch.as_tensor(test[1], device=device))
        self.neuron_idx = neuron_layers(spec)
        self.linear_idx = linear_layers(spec)

    def __call__(self, model: nn.Module) -> dict:
        layers = layers_of(model)
        captured: dict[int, torch.Tensor] = {}
        hooks = [layers[i].register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(i, out))
                 for i in self.neuron_idx]
        try:
            with evaluating(model), torch.no_grad():
                out = model(self.grid)
                snap = {"output": self._output_map(out),
                        "neurons": [captured[i].T.reshape(-1, *self.shape).cpu().numpy() for i in self.neuron_idx],
                        "weights": [layers[i].weight.detach().cpu().numpy().copy() for i in self.linear_idx],
                        "biases": [layers[i].bias.detach().cpu().numpy().copy() for i in self.linear_idx]}
                if self.test is not None and self.spec.task == "classification":
                    snap["confusion"] = confusion_matrix(model(self.test[0]).argmax(1), self.test[1],
                                                         out.shape[1])
        finally:
            for h in hooks:
                h.remove()
        return snap

    def _output_map(self, out: torch.Tensor) -> np.ndarray:
        """Regression: the value. Two classes: P(class 1). More: all class probabilities (..., K)."""
        if self.spec.task == "regression":
            return out[:, 0].reshape(self.shape).cpu().numpy()
        probs = out.softmax(1)
        if probs.shape[1] == 2:
            return probs[:, 1].reshape(self.shape).cpu().numpy()
        return probs.reshape(*self.shape, -1).cpu().numpy()
