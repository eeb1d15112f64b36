"""The one table of activation functions, with every fact a lab needs about each.

The layer builder, the exported code, the hand-written backward pass, the dead-or-saturated
unit count and the initialisation all read their activation here, so a select box, a
derivative and an exported line cannot disagree. The module is a `torch.nn` class; the
exported source is written from the same class and arguments. The slope is written out by
hand (not taken from autograd) because the backpropagation lab shows it as a formula and
checks it against autograd, and the test suite does the same for every entry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Activation:
    label: str
    cls: type[nn.Module]
    slope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # f'(z), elementwise, given z and a = f(z)
    slope_tex: str  # the same derivative in LaTeX, for the backpropagation lab
    max_slope: float  # the largest f'(z): "flat" units are measured against it
    gain: str  # nn.init.calculate_gain's name for it (Xavier initialisation)
    args: tuple = ()
    gradient_flow: bool = False  # offered in the gradient-flow lab, whose lessons contrast exactly these

    def make(self) -> nn.Module:
        return self.cls(*self.args)

    def code(self) -> str:
        """The PyTorch expression that builds the same module, for exported scripts."""
        return f"nn.{self.cls.__name__}({', '.join(map(repr, self.args))})"


def _gelu_slope(z, a):
    """Φ(z) + z·φ(z); its largest value, about 1.129, is at z ≈ 2.4."""
    return 0.5 * (1 + torch.erf(z / math.sqrt(2))) + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("ReLU", nn.ReLU, lambda z, a: (z > 0).to(z.dtype), r"[z>0]", 1.0, "relu",
                       gradient_flow=True),
    "tanh": Activation("tanh", nn.Tanh, lambda z, a: 1 - a * a, r"1-a^2", 1.0, "tanh", gradient_flow=True),
    "sigmoid": Activation("sigmoid", nn.Sigmoid, lambda z, a: a * (1 - a), r"a(1-a)", 0.25, "sigmoid",
                          gradient_flow=True),
    "linear": Activation("linear (none)", nn.Identity, lambda z, a: torch.ones_like(z), r"1", 1.0, "linear"),
    "gelu": Activation("GELU", nn.GELU, _gelu_slope, r"\Phi(z)+z\,\varphi(z)", 1.129, "linear",
                       gradient_flow=True),
    "leaky_relu": Activation("LeakyReLU", nn.LeakyReLU, lambda z, a: torch.where(z > 0, 1.0, 0.01).to(z.dtype),
                             r"[z>0]+0.01[z\le0]", 1.0, "leaky_relu", (0.01,)),
}


def key_of(module: nn.Module) -> str | None:
    """The ACTIVATIONS key of an activation module (None for any other layer)."""
    return next((k for k, a in ACTIVATIONS.items() if type(module) is a.cls), None)
