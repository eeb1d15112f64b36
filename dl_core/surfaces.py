"""Optimizers on 2-D loss surfaces: every trajectory is `torch.optim` stepping two numbers.

Each surface is a differentiable torch function of (x, y) with a start point chosen to show
its difficulty; each optimizer is a `torch.optim` class with the settings a learner can
move. Nothing here re-implements an update rule: the tests compare these trajectories with
the textbook formulas written out, step for step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .optim import DEFAULT_SETTINGS, OPTIMIZERS


@dataclass(frozen=True)
class Surface:
    label: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    about: str
    log_colour: bool = False  # colour the contours by log(1 + f): steep walls, flat floor
    # A race that shows something: no one rate suits both families (on the banana SGD blows up
    # above 0.001, where Adam barely moves), so each surface sets its own pair, and its steps.
    lr: float = 0.01  # SGD, momentum, Nesterov: the step is the rate times the slope
    adaptive_lr: float = 0.1  # ADAPTIVE: the step is about the rate, whatever the slope
    steps: int = 150


SURFACES: dict[str, Surface] = {
    "bowl": Surface("Ill-conditioned bowl", lambda x, y: 0.5 * (x ** 2 + 25 * y ** 2), (-4, 4), (-2, 2),
                    (-3.5, 1.5), ((0, 0),), "25× steeper across than along: plain SGD zig-zags across the "
                    "valley, momentum and Adam go along it."),
    "rosenbrock": Surface("Rosenbrock banana", lambda x, y: (1 - x) ** 2 + 100 * (y - x ** 2) ** 2, (-2, 2),
                          (-1, 3), (-1.5, 2.5), ((1, 1),), "A long, curved, flat-floored valley: easy to find, "
                          "slow to follow to the minimum at (1, 1).", True, 0.001, 0.1, 500),
    "saddle": Surface("Saddle point", lambda x, y: x ** 2 - y ** 2 + 0.25 * y ** 4, (-2, 2), (-2.5, 2.5),
                      (-1.8, 1e-3), ((0, 2 ** 0.5), (0, -(2 ** 0.5))), "Flat at the centre in the y-direction: "
                      "gradients there are tiny, so plain SGD lingers before it slides off to a minimum.",
                      False, 0.003, 0.03),
    "multiple": Surface("Several minima", lambda x, y: (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2,
                        (-5, 5), (-5, 5), (0.0, -0.5), ((3, 2), (-2.805, 3.131), (-3.779, -3.283), (3.584, -1.848)),
                        "Himmelblau's function: four minima of equal depth. Where you start, and how you "
                        "step, decides which one you end in.", True, 0.001, 0.03),
    "beale": Surface("Beale", lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 +
                     (2.625 - x + x * y ** 3) ** 2, (-4.5, 4.5), (-4.5, 4.5), (1.0, 1.4), ((3, 0.5),),
                     "Sharp ridges and a flat plateau around the minimum at (3, 0.5).", True, 0.003, 0.1, 200),
}
ADAPTIVE = ("rmsprop", "adagrad", "adam", "adamw")  # optimizers that scale each step by its own gradients' size


def rate(surface: str, optimizer: str) -> float:
    """The surface's default learning rate for this optimizer's family."""
    surf = SURFACES[surface]
    return surf.adaptive_lr if optimizer in ADAPTIVE else surf.lr


def trajectory(surface: str, optimizer: str, settings: dict | None = None, steps: int = 100,
               start: tuple[float, float] | None = None) -> np.ndarray:
    """(steps + 1, 3) array of x, y, f(x, y): the start, then the point after each step.
    A point that leaves the picture far behind (divergence) ends the path there."""
    surf, s = SURFACES[surface], DEFAULT_SETTINGS | (settings or {})
    point = torch.tensor(start or surf.start, dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS[optimizer].make([point], s)
    path = []
    for _ in range(steps + 1):
        opt.zero_grad()
        value = surf.f(point[0], point[1])
        x, y = point.detach().tolist()
        path.append((x, y, float(value.detach())))
        if not np.isfinite(path[-1]).all() or abs(path[-1][0]) > 1e6 or abs(path[-1][1]) > 1e6:
            break
        if len(path) == steps + 1:
            break
        value.backward()
        opt.step()
    return np.array(path)


def grid(surface: str, n: int = 121) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xs, ys and f on an n×n grid, for contours."""
    surf = SURFACES[surface]
    xs = torch.linspace(*surf.x_range, n, dtype=torch.float64)
    ys = torch.linspace(*surf.y_range, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return xs.numpy(), ys.numpy(), surf.f(gx, gy).numpy()
