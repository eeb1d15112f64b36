"""Asking a trained recurrent network why, and testing the answer.

- Token attributions: Captum's LayerIntegratedGradients on the embedding (IntegratedGradients
  on the inputs for a series), from an all-padding (all-zero) baseline, summed over each
  step's vector. Completeness, IG's axiom, is checked: the scores add up to F(x) − F(baseline),
  and the gap is reported. The deletion curve (the Explainability Lab's faithfulness check)
  blanks the most-attributed steps first: a faithful map makes the answer fall fastest.
- Units: which hidden units track a span of the input (correlation over the steps), and what
  removing one does: the unit is held at 0 inside the recurrence at every step (not only at
  the output), and the test loss and accuracy are measured again, a causal check.
- Trajectories: the hidden states of a sequence, projected on their two principal axes.
On CUDA, cuDNN is switched off while attributing (its RNN backward refuses eval mode).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients
from sklearn.decomposition import PCA
from torch import nn

from .explain import eval_copy
from .inference import evaluating
from .layerlist import layers_of
from .recurrence import parts, unroll
from .trust import Curve, _area, random_order


@dataclass
class TokenAttribution:
    scores: np.ndarray  # one per step: how much that step moved the output
    total: float  # their sum
    change: float  # F(x) − F(baseline), measured: completeness says total == change
    gap: float  # |total − change|
    target: Target
    points: int  # points on the path from the baseline


Target = int | tuple[int, int] | None  # a class; (class, step) for a label per step; None: a single output


def _pick(out: torch.Tensor, target: Target) -> torch.Tensor:
    """Each row's output for `target` (what Captum's `target` selects too)."""
    return out[(slice(None), *target)] if isinstance(target, tuple) else out[:, target or 0]


def token_attributions(model: nn.Module, x: torch.Tensor, target: Target,
                       steps: tuple[int, ...] = (64, 256, 1024), tolerance: float = 1e-3) -> TokenAttribution:
    """Per-step attributions for one sequence x (T,) tokens or (T, F) values, toward class
    `target` (a class; (class, step) for sequence labelling; None: the single output of a
    regression). The path integral is taken with more
    points until completeness holds within `tolerance` (relative to the change, at least 1e-3):
    an untrained network needs few points, one trained to certainty on long sequences far more."""
    model = eval_copy(model)
    batch = x[None]
    base = torch.zeros_like(batch)  # token 0 is padding; a value series' zero is its mean
    first = layers_of(model)[0]
    with torch.backends.cudnn.flags(enabled=False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = (LayerIntegratedGradients(model, first) if isinstance(first, nn.Embedding)
                  else IntegratedGradients(model))
        with torch.no_grad():
            change = float(_pick(model(batch), target) - _pick(model(base), target))
        for n in steps:  # Gauss-Legendre points (Captum's "riemann_trapezoid" leaves a 1/n error)
            attr = method.attribute(batch, base, target=target if target is not None else 0, n_steps=n,
                                    internal_batch_size=64)
            scores = attr[0].sum(-1).detach().cpu().double().numpy()
            total = float(scores.sum())
            if abs(total - change) <= tolerance * max(1.0, abs(change)):
                break
    return TokenAttribution(scores, total, change, abs(total - change), target, n)


def deletion_curve(model: nn.Module, x: torch.Tensor, target: Target, order: np.ndarray, points: int = 20) -> Curve:
    """Blank (pad or zero) the steps in `order`, a growing share at a time, and read the target
    class's probability after each (one batched forward pass); lower area: more faithful."""
    fractions = np.linspace(0, 1, points + 1)
    batch = x[None].repeat(points + 1, *([1] * x.dim()))
    for i, f in enumerate(fractions):
        batch[i, torch.as_tensor(order[:int(round(f * len(order)))], dtype=torch.long)] = 0
    with evaluating(model), torch.no_grad():
        scores = _pick(model(batch).softmax(1), target).cpu().numpy()
    return Curve(fractions, scores, _area(fractions, scores))


def faithfulness(model: nn.Module, x: torch.Tensor, target: Target, result: TokenAttribution) -> dict[str, Curve]:
    """Deletion curves for the attribution's order (most evidence for the class first) and a random one."""
    return {"most attributed first": deletion_curve(model, x, target, np.argsort(-result.scores, kind="stable")),
            "random order": deletion_curve(model, x, target, random_order(len(result.scores)))}


# ---- units: which follow a span, and what happens without one ----
def tracking_units(h: np.ndarray, span: tuple[int, int], top: int = 5) -> list[tuple[int, float]]:
    """Units whose activity over the steps (h: T × H) correlates most with being inside
    steps span[0]..span[1] (inclusive): [(unit, Pearson r)], strongest |r| first."""
    inside = np.zeros(h.shape[0])
    inside[span[0]:span[1] + 1] = 1
    if inside.std() == 0:
        return []
    hc, ic = h - h.mean(0), inside - inside.mean()
    denom = np.sqrt((hc ** 2).sum(0) * (ic ** 2).sum())
    r = np.divide(hc.T @ ic, denom, out=np.zeros(h.shape[1]), where=denom > 0)
    return [(int(u), float(r[u])) for u in np.argsort(-np.abs(r), kind="stable")[:top]]


def forward_without(model: nn.Module, x: torch.Tensor, units: list[int]) -> torch.Tensor:
    """The model's outputs with `units` of its last recurrent layer held at 0 at every step."""
    before, rnn, after = parts(model)
    keep = torch.ones(rnn.hidden_size, device=x.device)
    keep[list(units)] = 0
    return after(unroll(rnn, before(x), keep)["output"])


def ablation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, units: list[int]) -> dict:
    """Test loss (and accuracy, for classes) with and without `units`."""
    with evaluating(model), torch.no_grad():
        out = {"with": model(x), "without": forward_without(model, x, units)}
    res = {}
    for k, o in out.items():
        res[f"loss_{k}"] = float(loss_fn(o, y))
        if y.dtype == torch.long:  # classes: one per sequence or one per step
            res[f"acc_{k}"] = float((o.argmax(1) == y).float().mean())
    return res


def trajectory(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hidden states (T × H) on their first two principal axes (T × 2), and the share of
    the states' variance each axis holds."""
    pca = PCA(n_components=min(2, *h.shape)).fit(h)
    xy = pca.transform(h)
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return xy, pca.explained_variance_ratio_
