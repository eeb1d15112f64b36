"""Deep dense networks for the gradient-flow lab: why depth is hard, and what fixes it.

Backpropagation multiplies one factor per layer (weights times the activation's slope).
With sigmoid (slope ≤ 0.25) and small weights the product shrinks layer after layer and
the first layers get almost no gradient (vanishing); with large weights it can grow
instead (exploding). He initialisation with ReLU keeps each factor near one; batch norm
rescales every layer; residual connections add an identity path the gradient takes
unchanged. Here those are switches on one network, trained by the one TrainingJob.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from . import layerstats
from .activations import ACTIVATIONS
from .losses import LOSSES
from .spec import LayerSpec, ModelSpec

MAX_DEPTH = 30
INITS: dict[str, tuple[str, Callable[[nn.Linear, str], None] | None]] = {
    "default": ("PyTorch default (uniform, ±1/√fan-in)", None),
    "small": ("Too small (normal, std 0.01)", lambda m, fn: nn.init.normal_(m.weight, std=0.01)),
    "large": ("Too large (normal, std 1)", lambda m, fn: nn.init.normal_(m.weight, std=1.0)),
    "xavier": ("Xavier/Glorot (for tanh, sigmoid)",
               lambda m, fn: nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain(ACTIVATIONS[fn].gain))),
    "kaiming": ("Kaiming/He (for ReLU)", lambda m, fn: nn.init.kaiming_normal_(m.weight, nonlinearity="relu")),
}


def deep_spec(n_inputs: int, depth: int, width: int, activation: str, n_outputs: int, batchnorm: bool = False,
              residual: bool = False, task: str = "classification", input_names: tuple[str, ...] = ()) -> ModelSpec:
    """`depth` hidden layers of `width`: Linear → [BatchNorm] → activation, or with `residual`
    one Linear into the width, then x + f(Wx + b) blocks. Then the output layer."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"Choose 1 to {MAX_DEPTH} hidden layers.")
    layers = []
    for d in range(depth):
        if residual and d > 0:
            if batchnorm:
                layers.append(LayerSpec.of("batchnorm"))
            layers.append(LayerSpec.of("dense_residual", fn=activation))
            continue
        layers.append(LayerSpec.of("linear", out_features=width))
        if batchnorm:
            layers.append(LayerSpec.of("batchnorm"))
        layers.append(LayerSpec.of("activation", fn=activation))
    layers.append(LayerSpec.of("linear", out_features=n_outputs))
    return ModelSpec((n_inputs,), tuple(layers), task, tuple(input_names))


def initialise(model: nn.Module, scheme: str, activation: str, seed: int = 0) -> nn.Module:
    """Re-draw every Linear weight with `scheme` (biases to zero); "default" keeps PyTorch's."""
    fn = INITS[scheme][1]
    if fn is None:
        return model
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                fn(m, activation)
                nn.init.zeros_(m.bias)
    return model


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str = "classification") -> list[float]:
    """‖∂L/∂W‖ of every weight matrix, input side first, for one batch (no update is made)."""
    model.zero_grad(set_to_none=True)
    LOSSES[task].make()(model(x), y).backward()
    return [float(p.grad.norm()) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]


def first_to_last_ratio(norms: list[float]) -> float:
    """How much smaller the first layer's gradient is than the last's (1 = no vanishing)."""
    return norms[0] / max(norms[-1], 1e-30)


class FlowProbe:
    """Live view for the gradient-flow lab: a histogram of every activation layer's outputs on
    a fixed batch (eval mode), so the learner sees sigmoids pile up at 0 and 1 or ReLUs die."""

    BINS = 24

    def __init__(self, x: torch.Tensor, max_points: int = 256):
        self.x = x[:max_points]

    def __call__(self, model: nn.Module) -> dict:
        was = model.training
        model.eval()
        outputs = []
        hooks = [m.register_forward_hook(lambda mod, a, out: outputs.append(out.detach().float().cpu()))
                 for _, m in layerstats.tracked_layers(model)]
        try:
            with torch.no_grad():
                model(self.x)
        finally:
            for h in hooks:
                h.remove()
            model.train(was)
        hists = []
        for out in outputs:
            values = out.numpy().ravel()
            # The range spans the middle 99 % (the rest counts in the end bins): a few large ReLU
            # outputs would otherwise squeeze everything else into the first bin.
            lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            counts, edges = np.histogram(np.clip(values, lo, hi), bins=self.BINS, range=(lo, hi))
            hists.append((counts / max(counts.sum(), 1), edges))
        return {"histograms": hists}

