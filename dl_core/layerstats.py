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
from .layerlist import layers_of
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
    inner = [(i, m.act if isinstance(m, DenseResidual) else m) for i, m in enumerate(layers_of(model))]
    return [(i, m) for i, m in inner if type(m) in _SLOPES]


def layer_names(model: nn.Module) -> list[tuple[str, str]]:
    """(short, long) name of every top-level layer, numbered as the learner built the network,
    so every chart, picture and table says the same. A stack of dense layers is built by
    hidden layers (the Playground's #1…#8, the gradient-flow lab's depth): a Linear starts the
    next hidden layer, its batch norm and activation belong to it, the last Linear is the output
    layer. A network with convolutions is built row by row in the layer table: its numbers."""
    layers = layers_of(model)
    dense = (nn.Linear, DenseResidual)
    if not any(isinstance(m, dense) for m in layers) or any(isinstance(m, (nn.Conv2d, ResidualBlock)) for m in layers):
        return [(str(i + 1), f"layer {i + 1}") for i in range(len(layers))]
    last = max(i for i, m in enumerate(layers) if isinstance(m, nn.Linear))
    out, k = [], 0
    for i, m in enumerate(layers):
        if i >= last:
            out.append(("out", "output layer"))
            continue
        k += isinstance(m, dense)
        out.append((str(k), f"hidden layer {k}") if k else ("in", "input"))
    return out


def labels(model: nn.Module) -> list[str]:
    names = layer_names(model)
    return [f"{names[i][1]} · {type(m).__name__}" for i, m in tracked_layers(model)]


def weight_labels(model: nn.Module, names: list[str]) -> list[str]:
    """Readable names for weight tensors in the builder's numbering (layer_names): "layers.3.weight"
    → "hidden layer 2 · Linear" or "layer 4 · Conv2d"; weights inside a block are numbered:
    "layer 4 · Conv2d #2"."""
    numbers, out, seen = layer_names(model), [], {}
    for name in names:
        path = name.rsplit(".", 1)[0]
        parts = path.split(".")
        kind = type(model.get_submodule(path)).__name__
        if len(parts) < 2 or parts[0] != "layers" or not parts[1].isdigit():
            out.append(f"{path} · {kind}")
            continue
        top = int(parts[1])
        if len(parts) > 2:
            seen[top] = seen.get(top, 0) + 1
            kind += f" #{seen[top]}"
        out.append(f"{numbers[top][1]} · {kind}")
    return out


def weight_numbers(model: nn.Module) -> list[str]:
    """The short builder number of each weight matrix (a bar chart's axis: 1, 2, …, out)."""
    numbers = layer_names(model)
    return [numbers[int(n.split(".")[1])][0] for n, p in model.named_parameters()
            if n.endswith("weight") and p.dim() > 1 and n.startswith("layers.")]


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
