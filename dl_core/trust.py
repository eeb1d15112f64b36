"""Can an attribution map be trusted? Measurements, not impressions.

- Faithfulness: delete the most-attributed pixels first; if the map is right the class
  score falls faster than when pixels go in random order (deletion curve, lower area is
  better). Insertion is the mirror (reveal the most-attributed first, higher is better).
  Captum's own `infidelity` measures the same idea with random perturbations.
- Robustness: `captum.metrics.sensitivity_max`, how much the map moves when the input
  moves a little.
- Sanity checks (Adebayo et al., 2018): a map that explains *this model* must change when
  the model's weights are randomised, layer by layer from the top, and when the model
  was trained on shuffled labels. A method whose maps barely change is showing the input
  (edges), not the model's reasons.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from captum.metrics import infidelity, sensitivity_max
from torch import nn

from . import explain
from .layerlist import layers_of


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties share their average rank), as in Adebayo et al."""
    ra, rb = _ranks(a.ravel()), _ranks(b.ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def _ranks(a: np.ndarray) -> np.ndarray:
    order = a.argsort(kind="mergesort")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a))
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, ranks) / counts)[inverse]


@dataclass
class Curve:
    fractions: np.ndarray  # share of pixels removed (or revealed)
    scores: np.ndarray  # probability of the target class at each share
    area: float


def _tensor(image: np.ndarray, model: nn.Module) -> torch.Tensor:
    """One image as a batch of one, on the model's device."""
    return torch.as_tensor(image[None], dtype=torch.float32, device=next(model.parameters()).device)


def _area(fractions: np.ndarray, scores: np.ndarray) -> float:
    return float(((scores[1:] + scores[:-1]) / 2 * np.diff(fractions)).sum())


def perturbation_curve(model: nn.Module, image: np.ndarray, target: int, order: np.ndarray,
                       insertion: bool = False, steps: int = 20, fill: float = 0.0) -> Curve:
    """Remove (or, for insertion, reveal onto a `fill` image) pixels in `order`, all channels
    together, and read the target probability after each step (one batched forward pass)."""
    c, h, w = image.shape
    fractions = np.linspace(0, 1, steps + 1)
    masks = np.zeros((steps + 1, h * w), np.float32)
    for i, f in enumerate(fractions):
        masks[i, order[:int(round(f * h * w))]] = 1
    masks = masks.reshape(-1, 1, h, w)
    x = torch.as_tensor(image[None], dtype=torch.float32)
    m = torch.as_tensor(masks)
    batch = fill * (1 - m) + x * m if insertion else x * (1 - m) + fill * m
    with torch.no_grad():
        device = next(model.parameters()).device
        scores = model(batch.to(device)).softmax(1)[:, target].cpu().numpy()
    return Curve(fractions, scores, _area(fractions, scores))


def most_attributed_first(attribution: np.ndarray) -> np.ndarray:
    """Pixel order for the curves: highest summed attribution (evidence for the class) first."""
    return np.argsort(-explain.heat(attribution).ravel(), kind="stable")


def random_order(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def infidelity_score(model: nn.Module, image: np.ndarray, target: int, attribution: np.ndarray,
                     noise: float = 0.1, samples: int = 20, seed: int = 0) -> float:
    """captum.metrics.infidelity with small Gaussian perturbations (lower is more faithful)."""
    gen = torch.Generator().manual_seed(seed)

    def perturb(inputs):
        eps = torch.randn(inputs.shape, generator=gen).to(inputs) * noise
        return eps, inputs - eps

    x = _tensor(image, model)
    a = torch.as_tensor(attribution[None], dtype=torch.float32, device=x.device)
    return float(infidelity(model, perturb, x, a, target=target, n_perturb_samples=samples))


def sensitivity(model: nn.Module, image: np.ndarray, target: int, key: str, params: dict | None = None,
                radius: float = 0.02, samples: int = 8) -> float:
    """captum.metrics.sensitivity_max: the largest relative change of the map within `radius`."""
    x = _tensor(image, model)

    def explain_fn(inputs, target=None):  # Captum hands the inputs over as a tuple
        maps = [explain.attribute(model, xi[None], target, key, params).attribution for xi in inputs[0]]
        return (torch.as_tensor(np.stack(maps), device=x.device),)

    torch.manual_seed(0)
    return float(sensitivity_max(explain_fn, x, target=target, perturb_radius=radius,
                                 n_perturb_samples=samples, max_examples_per_batch=1))


def faithfulness(model: nn.Module, image: np.ndarray, target: int, attribution: np.ndarray | None) -> dict:
    """The deletion and insertion curves for the pixel order a map gives (a random order when
    `attribution` is None), and the map's infidelity: one piece of work for an explanation job."""
    order = random_order(image[0].size) if attribution is None else most_attributed_first(attribution)
    out = {"deletion": perturbation_curve(model, image, target, order),
           "insertion": perturbation_curve(model, image, target, order, insertion=True)}
    if attribution is not None:
        out["infidelity"] = infidelity_score(model, image, target, attribution)
    return out


def parametrised_layers(model: nn.Module) -> list[int]:
    return [i for i, layer in enumerate(layers_of(model)) if any(True for _ in layer.parameters())]


def randomised(model: nn.Module, top: int, seed: int = 0) -> nn.Module:
    """A copy of `model` with its `top` topmost parametrised layers re-initialised, from the top
    down, always from `seed`: each depth of the cascade can be made alone, in any process."""
    net = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in list(reversed(parametrised_layers(model)))[:top]:
            for module in layers_of(net)[i].modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return net


def randomised_maps(model: nn.Module, image: np.ndarray, target: int, keys: list[str], top: int = 0,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """|map| of each method for the model with its `top` layers randomised (0: the model itself),
    at each method's default settings."""
    net = randomised(model, top, seed) if top else model
    x = _tensor(image, net)
    return {k: np.abs(explain.heat(explain.attribute(net, x, target, k).attribution)) for k in keys}


def cascade_steps(model: nn.Module) -> list[str]:
    """The cascade's steps, named by the lowest layer randomised so far."""
    return [f"to layer {i + 1}" for i in reversed(parametrised_layers(model))]


def cascading_randomisation(model: nn.Module, image: np.ndarray, target: int, keys: list[str],
                            seed: int = 0) -> tuple[list[str], dict[str, list[float]]]:
    """Randomise the weights of the top layer, then the top two, … down to the first. After each
    step, each method's map is compared with the trained model's (rank correlation of |map|)."""
    steps = cascade_steps(model)
    return steps, similarity([randomised_maps(model, image, target, keys, top, seed)
                              for top in range(len(steps) + 1)])


def similarity(maps: list[dict[str, np.ndarray]]) -> dict[str, list[float]]:
    """Per method, the rank correlation of each of maps[1:] with maps[0] (the trained model's)."""
    return {k: [rank_correlation(maps[0][k], m[k]) for m in maps[1:]] for k in maps[0]}
