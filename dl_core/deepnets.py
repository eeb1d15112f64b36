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
from .data import Dataset2D, TensorData
from .data.data2d import feature_matrix
from .engine import TrainConfig, TrainingJob
from .inference import evaluating
from .losses import LOSSES
from .spec import LayerSpec, ModelSpec, build

MAX_DEPTH = 30
INITS: dict[str, tuple[str, Callable[[nn.Linear, str], None] | None]] = {
    "default": ("PyTorch default", None),  # uniform, ±1/√fan-in
    "small": ("Too small (std 0.01)", lambda m, fn: nn.init.normal_(m.weight, std=0.01)),
    "large": ("Too large (std 1)", lambda m, fn: nn.init.normal_(m.weight, std=1.0)),
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


def make_job(ds: Dataset2D, spec: ModelSpec, init: str, activation: str, seed: int = 0) -> TrainingJob:
    """A fresh `spec` network, its weights drawn by `init`, learning the points `ds` with Adam;
    its probe shows each activation layer's outputs on the training inputs (FlowProbe)."""
    model = initialise(build(spec, seed=seed), init, activation, seed)
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    data = TensorData.from_arrays(feature_matrix(xtr, spec.input_names), ytr, feature_matrix(xte, spec.input_names),
                                  yte, "classification")
    config = TrainConfig(optimizer="adam", lr=0.003, batch_size=32, seed=seed)
    return TrainingJob.supervised(model, data, config, FlowProbe(data.x_train))


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str = "classification") -> list[float]:
    """‖∂L/∂W‖ of every weight matrix, input side first, for one batch (no update is made)."""
    model.zero_grad(set_to_none=True)
    LOSSES[task].make()(model(x), y).backward()
    return [float(p.grad.norm()) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]


def first_to_last_ratio(norms: list[float]) -> float:
    """How much smaller the first layer's gradient is than the last's (1 = no vanishing)."""
    return norms[0] / max(norms[-1], 1e-30)


TOO_LARGE = 1e2  # a weight matrix's ‖∂L/∂W‖ above this: the outputs (and the loss) have blown up
TOO_SMALL = 1e-3  # first ÷ last below this: the early layers get far less than the last ...
USABLE = 1e-4  # ... and below this in size they barely move (Adam or not)


def verdict(norms: list[float]) -> tuple[str, str]:
    """(kind, plain words) about one pass's gradient norms: their sizes and how they change
    from the last layer back to the first. The ratio alone called a network "healthy" whose
    gradients were all 10³–10⁵ (loss 10⁸): uniformly huge is as broken as uniformly shrinking."""
    ratio, top = first_to_last_ratio(norms), max(norms)
    if not np.isfinite(norms).all() or top > TOO_LARGE:
        return "exploding", (f"exploding: gradients up to {top:.0e}, so every update throws the weights far "
                             "and the loss jumps")
    if ratio < TOO_SMALL and norms[0] < USABLE:
        return "vanishing", f"vanishing: the first layer gets {ratio:.0e} of the last's gradient and barely moves"
    if ratio < TOO_SMALL:  # residual sigmoids: 3e-4 of the last layer's, yet about 1e-2 in size
        return "weak", (f"weakened: the first layer gets {ratio:.0e} of the last's gradient, but {norms[0]:.0e} is "
                        "still enough to learn from")
    if ratio > 1 / TOO_SMALL:
        return "exploding", f"exploding: the first layer gets {ratio:.0e}× the last's gradient"
    if top < 1e-4:
        return "healthy", (f"tiny everywhere (at most {top:.0e}): either the data have been learnt (see the loss) "
                           "or nothing is left to learn from")
    return "healthy", f"healthy: every layer gets a usable signal (from {min(norms):.0e} to {top:.0e})"


class FlowProbe:
    """Live view for the gradient-flow lab: a histogram of every activation layer's outputs on
    a fixed batch (eval mode), so the learner sees sigmoids pile up at 0 and 1 or ReLUs die."""

    BINS = 24

    def __init__(self, x: torch.Tensor, max_points: int = 256):
        self.x = x[:max_points]

    def __call__(self, model: nn.Module) -> dict:
        outputs = []
        hooks = [m.register_forward_hook(lambda mod, a, out: outputs.append(out.detach().float().cpu()))
                 for _, m in layerstats.tracked_layers(model)]
        try:
            with evaluating(model), torch.no_grad():
                model(self.x)
        finally:
            for h in hooks:
                h.remove()
        return {"histograms": [self.histogram(out.numpy().ravel()) for out in outputs]}

    @classmethod
    def histogram(cls, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(share per bin, bin edges, share exactly 0). Outputs that are exactly 0 (ReLUs that are
        off) are counted apart and the bins cover the rest: with them in, one bar at 0 and an axis
        to a few large outputs looked empty. The range spans the middle 99 % of the rest (the
        others count in the end bins), so a few large outputs do not squeeze it into one bin."""
        off = float((values == 0).mean()) if len(values) else 0.0
        on = values[values != 0] if off and values.min() >= 0 else values
        if not len(on):
            on = values
        lo, hi = (float(v) for v in np.percentile(on, [0.5, 99.5]))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(np.clip(on, lo, hi), bins=cls.BINS, range=(lo, hi))
        return counts / max(len(values), 1), edges, off if on is not values else 0.0

