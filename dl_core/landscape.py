"""Loss landscapes (Li et al., 2018): the loss of a trained network along one or two
directions in weight space, L(θ* + α·d₁ + β·d₂), and the path training took.

Random directions are *filter-normalised*: each neuron's slice of a direction is scaled
to the norm of that neuron's weights, so a step of 1 means "as far as the weights
themselves" in every layer and pictures of different networks compare fairly. Biases and
batch-norm parameters get no direction (as in the paper). Random directions are nearly
orthogonal to the training path in high dimensions, so the path is drawn on the plane of
its own two principal components instead (the paper's fig. 9).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from .inference import evaluating


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def random_direction(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, w in _weights(model).items():
        if w.dim() < 2:  # biases, batch-norm scales and shifts
            out[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device)
        rows_w, rows_d = w.reshape(len(w), -1).norm(dim=1), d.reshape(len(d), -1).norm(dim=1)
        out[name] = d * (rows_w / rows_d.clamp_min(1e-12)).reshape(-1, *([1] * (w.dim() - 1)))
    return out


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in state.values()])


def _unflat(vector: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i:i + v.numel()].reshape(v.shape)
        i += v.numel()
    return out


def pca_directions(path: list[dict[str, torch.Tensor]], final: dict[str, torch.Tensor]):
    """The two principal directions of the path's offsets from the final weights, and the
    path's coordinates on them (with the share of the path's variance they explain)."""
    final = {k: v.detach() for k, v in final.items()}
    offsets = torch.stack([_flat(p) - _flat(final) for p in path]).double()
    _, s, vt = torch.linalg.svd(offsets, full_matrices=False)
    d1, d2 = vt[0], vt[1] if len(vt) > 1 else torch.zeros_like(vt[0])
    coords = (offsets @ torch.stack([d1, d2]).T).numpy()
    explained = float((s[:2] ** 2).sum() / (s ** 2).sum()) if s.numel() else 0.0
    return _unflat(d1.float(), final), _unflat(d2.float(), final), coords, explained


def loss_surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, d1: dict, d2: dict | None,
                 span: float = 1.0, n: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Loss on an n (1-D) or n×n (2-D) grid of α, β in [−span, span] around the model's weights."""
    base = _weights(model)
    alphas = np.linspace(-span, span, n)
    betas = alphas if d2 is not None else np.zeros(1)
    out = np.zeros((len(betas), n))
    a = torch.as_tensor(alphas, dtype=torch.float32, device=x.device)

    def loss_at(params):
        return loss_fn(functional_call(model, params, (x,)), y)

    with evaluating(model), torch.no_grad():
        for bi, b in enumerate(betas):  # one row of the grid per call, vectorised over α with vmap
            params = {k: base[k] + a.reshape(-1, *[1] * base[k].dim()) * d1[k] +
                      (float(b) * d2[k] if d2 is not None else 0) for k in base}
            out[bi] = vmap(loss_at)(params).cpu().numpy()
    return alphas, out if d2 is not None else out[0]
