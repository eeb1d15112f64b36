"""Activation statistics per layer, taken from a training batch's own forward pass.

Why: gradient sizes say *that* early layers stop learning; activations say *why*. A
ReLU that outputs 0 for every input ("dead") and a sigmoid or tanh pinned near its
limits ("saturated") both have a flat slope, so almost no gradient passes back through
them. For every activation layer we record the mean and spread of its outputs and the
share of units whose slope is under 5 % of its largest value.

The hooks live only for the one batch that is measured (at the job's snapshot rate),
so the model carries no hooks the rest of the time (copies, exports and Captum see a
plain model) and ordinary batches pay nothing.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from .activations import ACTIVATIONS
from .layers import DenseResidual, ResidualBlock

FLAT_SLOPE = 0.05  # a unit counts as "flat" where its slope is under this share of the largest slope

_SLOPES: dict[type, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    # module type: (input, output) -> slope relative to the largest slope, elementwise.
    # An identity passes every gradient unchanged: nothing to watch there.
    **{a.cls: (lambda x, y, a=a: a.slope(x, y) / a.max_slope)
       for a in ACTIVATIONS.values() if a.cls is not nn.Identity},
    ResidualBlock: lambda x, y: (y > 0).float(),  # ends in a ReLU
}


def tracked_layers(model: nn.Module) -> list[tuple[int, nn.Module]]:
    """(position, module) of each top-level layer whose output is an activation."""
    layers = model.layers if hasattr(model, "layers") else list(model.children())
    inner = [(i, m.act if isinstance(m, DenseResidual) else m) for i, m in enumerate(layers)]
    return [(i, m) for i, m in inner if type(m) in _SLOPES]


def labels(model: nn.Module) -> list[str]:
    return [f"layer {i + 1} · {type(m).__name__}" for i, m in tracked_layers(model)]


def weight_labels(model: nn.Module, names: list[str]) -> list[str]:
    """Readable names for weight tensors, 1-based as the layer table counts: "layers.3.weight"
    → "layer 4 · Conv2d"; weights inside a block are numbered: "layer 4 · Conv2d #2"."""
    out, seen = [], {}
    for name in names:
        path = name.rsplit(".", 1)[0]
        parts = path.split(".")
        kind = type(model.get_submodule(path)).__name__
        if len(parts) < 2 or parts[0] != "layers" or not parts[1].isdigit():
            out.append(f"{path} · {kind}")
            continue
        top = int(parts[1]) + 1
        if len(parts) > 2:
            seen[top] = seen.get(top, 0) + 1
            kind += f" #{seen[top]}"
        out.append(f"layer {top} · {kind}")
    return out


@contextmanager
def recording(model: nn.Module) -> Iterator[list[tuple[float, float, float]]]:
    """Within the block, each forward pass appends (mean, std, flat share) per tracked layer."""
    stats: list[tuple[float, float, float]] = []

    def hook(module, inputs, output):
        with torch.no_grad():
            y = output.detach().float()
            slope = _SLOPES[type(module)](inputs[0].detach().float(), y)
            stats.append((float(y.mean()), float(y.std()) if y.numel() > 1 else 0.0,
                          float((slope < FLAT_SLOPE).float().mean())))

    handles = [m.register_forward_hook(hook) for _, m in tracked_layers(model)]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()
