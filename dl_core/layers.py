"""The layer registry: how each layer type builds, reshapes, counts and prints itself.

Shapes exclude the batch dimension: (features,) for vectors, (channels, height,
width) for images. Each check returns None or the end of a sentence that
starts "Layer 3 (Conv2d) …", so a learner reads what is wrong and how to fix
it at the offending layer. One entry per layer type feeds the builder, the
shape table, the code exporter, the CNN Lab's "add layer" menu and the tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .activations import ACTIVATIONS

MAX_WIDTH = 4096  # neurons or channels in one layer


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with batch norm, added back onto the input (He et al., 2016).
    The skip path lets gradients reach early layers undiminished."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.out = nn.ReLU()

    def forward(self, x):
        return self.out(x + self.body(x))


class DenseResidual(nn.Module):
    """x + f(W·x + b) for flat vectors: the identity path carries the gradient past the layer
    unchanged, so a deep stack still trains (He et al., 2016, for dense layers)."""

    def __init__(self, linear: nn.Linear, act: nn.Module):
        super().__init__()
        self.linear, self.act = linear, act

    def forward(self, x):
        return x + self.act(self.linear(x))


class Recurrent(nn.Module):
    """torch.nn's RNN, LSTM or GRU, passing on its output at every time step (not the
    (output, state) pair it returns), so it stacks in a Sequential like any other layer.

    The gates start set to remember over spans up to the sequence's length (`span`): the
    "chrono" initialisation of Tallec & Ollivier (2018). Each unit's forget gate (LSTM) or
    update gate (GRU) gets a bias log(u), u drawn between 1 and span - 1, so the units keep
    their memory for about u steps; the LSTM's input gate starts as closed as its forget
    gate is open. At torch's default (bias 0) a gate keeps half the memory a step, and an
    LSTM failed to recall a symbol from far back in most seeds; with this start it learns one
    from much further back, quickly. A plain RNN has no gate to set: that
    difference is what the Sequence Lab measures."""

    def __init__(self, cell: str, n_in: int, hidden: int, layers: int = 1, span: int = 2, dropout: float = 0.0):
        super().__init__()
        # dropout: on each layer's outputs but the last, in training only (torch's own option)
        self.cell = getattr(nn, cell)(n_in, hidden, num_layers=layers, batch_first=True,
                                      dropout=dropout if layers > 1 else 0.0)
        if cell == "RNN":
            return
        with torch.no_grad():
            for layer in range(layers):
                keep = torch.log(1 + torch.rand(hidden) * max(span - 2, 0))  # log u, u in [1, span - 1]
                ih, hh = getattr(self.cell, f"bias_ih_l{layer}"), getattr(self.cell, f"bias_hh_l{layer}")
                if cell == "LSTM":  # gate order: input, forget, cell, output
                    ih[:hidden], ih[hidden:2 * hidden] = -keep, keep
                    hh[:2 * hidden] = 0
                else:  # GRU, gate order: reset, update, new; h' = (1 - z)·n + z·h, so z keeps
                    ih[hidden:2 * hidden], hh[hidden:2 * hidden] = keep, 0

    def forward(self, x):
        return self.cell(x)[0]


class LastStep(nn.Module):
    """The last time step of a sequence of vectors: what a classifier reads after the whole input."""

    def forward(self, x):
        return x[:, -1]


class StepLinear(nn.Module):
    """One linear guess at every time step (sequence labelling), classes first: (batch, classes,
    steps), the layout torch's cross-entropy takes for a label per step."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.linear(x).transpose(1, 2)


GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}  # weight blocks per recurrent layer (an LSTM has four gates' worth)


@dataclass(frozen=True)
class LayerType:
    label: str
    build: Callable[[tuple, dict], nn.Module]
    out_shape: Callable[[tuple, dict], tuple]
    code: Callable[[tuple, dict], str]
    check: Callable[[tuple, dict], str | None] = lambda shape, p: None
    params: Callable[[tuple, dict], int] = lambda shape, p: 0
    macs: Callable[[tuple, dict], int] = lambda shape, p: 0  # multiply-adds per example
    defaults: tuple = ()  # (name, default) of the parameters a learner sets
    module_class: type | None = None  # a class of ours the exported code must define
    sequence: bool = False  # a layer of sequences (the Sequence Lab), not offered in the CNN Lab's menu


def _flat(shape, p):
    if len(shape) != 1:
        return (f"expects a flat vector, but gets a {'×'.join(map(str, shape))} stack of feature maps; "
                "add a Flatten or global-average-pool layer before it")
    return None


def _image(shape, p):
    if len(shape) != 3:
        return (f"expects images (channels × height × width), but gets a flat vector of {shape[0]}; "
                "convolution and pooling layers must come before Flatten")
    return None


def _count(value, what):
    if not isinstance(value, int) or value < 1:
        return f"has {value} {what}; it needs at least 1"
    if value > MAX_WIDTH:
        return f"has {value:,} {what}; at most {MAX_WIDTH:,} fit in this app"
    return None


def _window(shape, p, what):
    """Kernel/stride/padding checks shared by convolution and pooling."""
    problem = _image(shape, p)
    if problem:
        return problem
    k, s, pad = p.get("kernel", 2), p.get("stride", p.get("kernel", 2)), p.get("padding", 0)
    if not all(isinstance(v, int) for v in (k, s, pad)) or k < 1 or s < 1 or pad < 0:
        return f"needs a kernel and stride of at least 1 and padding of at least 0 (got {k}, {s}, {pad})"
    if pad > k // 2:
        return f"pads by {pad}, more than half its {k}×{k} kernel; use padding ≤ {k // 2}"
    h, w = shape[1] + 2 * pad, shape[2] + 2 * pad
    if k > h or k > w:
        return (f"has a {k}×{k} {what} but its input is only {shape[1]}×{shape[2]}"
                f"{f' (with padding {pad})' if pad else ''}; use a smaller kernel, add padding, "
                "or remove a pooling layer before it")
    return None


def _window_out(shape, p, channels):
    k = p.get("kernel", 2)
    s, pad = p.get("stride", k), p.get("padding", 0)
    return (channels, (shape[1] + 2 * pad - k) // s + 1, (shape[2] + 2 * pad - k) // s + 1)


def _conv_check(shape, p):
    return _count(p.get("out_channels", 0), "output channels") or _window(shape, {"stride": 1, **p}, "kernel")


def _conv_out(shape, p):
    return _window_out(shape, {"stride": 1, **p}, p["out_channels"])


def _conv_params(shape, p):
    return p["out_channels"] * (shape[0] * p["kernel"] ** 2 + 1)


def _pool_check(shape, p):
    return _window(shape, p, "pooling window")


def _pool_out(shape, p):
    return _window_out(shape, p, shape[0])


def _pool_code(name):
    return lambda s, p: f"nn.{name}({p.get('kernel', 2)}, stride={p.get('stride', p.get('kernel', 2))})"


def _linear_check(shape, p):
    return _count(p.get("out_features", 0), "neurons") or _flat(shape, p)


def _tokens_check(shape, p):
    if len(shape) != 1:
        return "takes a sequence of token numbers; it must be the first layer"
    return _count(p.get("vocab", 0), "tokens in its vocabulary") or _count(p.get("dim", 0), "dimensions")


def _steps_check(shape, p):
    if len(shape) != 2:
        return "expects a sequence of vectors (time steps × features); put it after an embedding or first"
    return None


def _recurrent_check(shape, p):
    if p.get("cell") not in GATES:
        return f"uses unknown cell {p.get('cell')!r} (choose from {', '.join(GATES)})"
    return _steps_check(shape, p) or _count(p.get("hidden", 0), "hidden units") or _count(p.get("layers", 0),
                                                                                            "layers")


def _recurrent_params(shape, p):
    g, h, n = GATES[p["cell"]], p["hidden"], p.get("layers", 1)
    return g * h * (shape[1] + h + 2) + (n - 1) * g * h * (2 * h + 2)


def _activation_check(shape, p):
    fn = p.get("fn")
    return None if fn in ACTIVATIONS else f"uses unknown activation {fn!r} (choose from {', '.join(ACTIVATIONS)})"


def _dropout_check(shape, p):
    rate = p.get("p", 0.5)
    return None if 0 <= rate < 1 else f"drops {rate:.0%} of its inputs; choose a rate from 0 up to (not including) 1"


def _flatten_check(shape, p):
    return "gets an already flat vector; remove this Flatten" if len(shape) == 1 else None


def _residual_params(shape, p):
    c = shape[0]
    return 2 * (c * c * 9) + 4 * c


LAYERS: dict[str, LayerType] = {
    "conv2d": LayerType(
        "Conv2d (convolution)",
        build=lambda s, p: nn.Conv2d(s[0], p["out_channels"], p["kernel"], p.get("stride", 1), p.get("padding", 0)),
        out_shape=_conv_out,
        code=lambda s, p: (f"nn.Conv2d({s[0]}, {p['out_channels']}, kernel_size={p['kernel']}, "
                           f"stride={p.get('stride', 1)}, padding={p.get('padding', 0)})"),
        check=_conv_check,
        params=_conv_params,
        macs=lambda s, p: math.prod(_conv_out(s, p)) * s[0] * p["kernel"] ** 2,
        defaults=(("out_channels", 8), ("kernel", 3), ("stride", 1), ("padding", 1)),
    ),
    "maxpool": LayerType(
        "MaxPool (keep the strongest)",
        build=lambda s, p: nn.MaxPool2d(p.get("kernel", 2), p.get("stride", p.get("kernel", 2))),
        out_shape=_pool_out, code=_pool_code("MaxPool2d"), check=_pool_check,
        defaults=(("kernel", 2), ("stride", 2)),
    ),
    "avgpool": LayerType(
        "AvgPool (average)",
        build=lambda s, p: nn.AvgPool2d(p.get("kernel", 2), p.get("stride", p.get("kernel", 2))),
        out_shape=_pool_out, code=_pool_code("AvgPool2d"), check=_pool_check,
        defaults=(("kernel", 2), ("stride", 2)),
    ),
    "gap": LayerType(
        "Global average pool",
        build=lambda s, p: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        out_shape=lambda s, p: (s[0],),
        code=lambda s, p: "nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())",
        check=_image,
    ),
    "residual": LayerType(
        "Residual block",
        build=lambda s, p: ResidualBlock(s[0]),
        out_shape=lambda s, p: s,
        code=lambda s, p: f"ResidualBlock({s[0]})",
        check=_image,
        params=_residual_params,
        macs=lambda s, p: 2 * math.prod(s) * s[0] * 9,
        module_class=ResidualBlock,
    ),
    "dense_residual": LayerType(
        "Residual dense layer (x + f(Wx + b))",
        build=lambda s, p: DenseResidual(nn.Linear(s[0], s[0]), ACTIVATIONS[p["fn"]].make()),
        out_shape=lambda s, p: s,
        code=lambda s, p: f"DenseResidual(nn.Linear({s[0]}, {s[0]}), {ACTIVATIONS[p['fn']].code()})",
        check=lambda s, p: _flat(s, p) or _activation_check(s, p),
        params=lambda s, p: s[0] * s[0] + s[0],
        macs=lambda s, p: s[0] * s[0],
        defaults=(("fn", "relu"),),
        module_class=DenseResidual,
    ),
    "flatten": LayerType(
        "Flatten",
        build=lambda s, p: nn.Flatten(),
        out_shape=lambda s, p: (math.prod(s),),
        code=lambda s, p: "nn.Flatten()",
        check=_flatten_check,
    ),
    "linear": LayerType(
        "Linear (fully connected)",
        build=lambda s, p: nn.Linear(s[0], p["out_features"]),
        out_shape=lambda s, p: (p["out_features"],),
        code=lambda s, p: f"nn.Linear({s[0]}, {p['out_features']})",
        check=_linear_check,
        params=lambda s, p: s[0] * p["out_features"] + p["out_features"],
        macs=lambda s, p: s[0] * p["out_features"],
        defaults=(("out_features", 32),),
    ),
    "activation": LayerType(
        "Activation",
        build=lambda s, p: ACTIVATIONS[p["fn"]].make(),
        out_shape=lambda s, p: s,
        code=lambda s, p: ACTIVATIONS[p["fn"]].code(),
        check=_activation_check,
        defaults=(("fn", "relu"),),
    ),
    "batchnorm": LayerType(
        "Batch norm",
        build=lambda s, p: nn.BatchNorm1d(s[0]) if len(s) == 1 else nn.BatchNorm2d(s[0]),
        out_shape=lambda s, p: s,
        code=lambda s, p: f"nn.BatchNorm{'1' if len(s) == 1 else '2'}d({s[0]})",
        params=lambda s, p: 2 * s[0],
    ),
    "embedding": LayerType(
        "Embedding (a learned vector per token)",
        build=lambda s, p: nn.Embedding(p["vocab"], p["dim"]),
        out_shape=lambda s, p: (s[0], p["dim"]),
        code=lambda s, p: f"nn.Embedding({p['vocab']}, {p['dim']})",
        check=_tokens_check,
        params=lambda s, p: p["vocab"] * p["dim"],
        defaults=(("vocab", 16), ("dim", 8)),
        sequence=True,
    ),
    "recurrent": LayerType(
        "Recurrent (RNN, LSTM or GRU)",
        build=lambda s, p: Recurrent(p["cell"], s[1], p["hidden"], p.get("layers", 1), s[0], p.get("dropout", 0.0)),
        out_shape=lambda s, p: (s[0], p["hidden"]),
        code=lambda s, p: (f"Recurrent({p['cell']!r}, {s[1]}, {p['hidden']}, {p.get('layers', 1)}, span={s[0]}"
                           + (f", dropout={p['dropout']})" if p.get("dropout") else ")")),
        check=_recurrent_check,
        params=_recurrent_params,
        macs=lambda s, p: s[0] * _recurrent_params(s, p),
        defaults=(("cell", "LSTM"), ("hidden", 32), ("layers", 1), ("dropout", 0.0)),
        module_class=Recurrent,
        sequence=True,
    ),
    "last_step": LayerType(
        "Last time step",
        build=lambda s, p: LastStep(),
        out_shape=lambda s, p: (s[1],),
        code=lambda s, p: "LastStep()",
        check=_steps_check,
        module_class=LastStep,
        sequence=True,
    ),
    "step_linear": LayerType(
        "Linear at every time step",
        build=lambda s, p: StepLinear(s[1], p["out_features"]),
        out_shape=lambda s, p: (p["out_features"], s[0]),
        code=lambda s, p: f"StepLinear({s[1]}, {p['out_features']})",
        check=lambda s, p: _steps_check(s, p) or _count(p.get("out_features", 0), "outputs"),
        params=lambda s, p: (s[1] + 1) * p["out_features"],
        macs=lambda s, p: s[0] * s[1] * p["out_features"],
        defaults=(("out_features", 2),),
        module_class=StepLinear,
        sequence=True,
    ),
    "dropout": LayerType(
        "Dropout",
        build=lambda s, p: nn.Dropout(p.get("p", 0.5)),
        out_shape=lambda s, p: s,
        code=lambda s, p: f"nn.Dropout({p.get('p', 0.5)})",
        check=_dropout_check,
        defaults=(("p", 0.25),),
    ),
}
