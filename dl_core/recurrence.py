"""Inside a recurrent network: its states, gates and gradients through time, step by step.

torch.nn's RNN, LSTM and GRU run every step in one fused kernel and give back only the
outputs. To show a learner what each gate does, this module runs the cells' equations by
hand (PyTorch's documented ones), fed the module's own weights: a test holds the hand-run
states to the module's outputs, and its input gradients to the module's. The gradient of
the loss with respect to every hidden state hₜ, read from this unrolled graph, is the
"vanishing gradient through time" the page draws.
"""
from __future__ import annotations

import torch
from torch import nn

from .inference import evaluating
from .layerlist import layers_of
from .layers import Recurrent

GATE_NAMES = {"LSTM": ("input", "forget", "cell candidate", "output"), "GRU": ("reset", "update", "candidate"),
              "RNN": ()}


def _cell(kind: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w_ih, w_hh, b_ih, b_hh):
    """One step of one layer: (h', c', {gate: values})."""
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if kind == "RNN":
        return torch.tanh(gi + gh), None, {}
    if kind == "LSTM":
        i, f, g, o = (gi + gh).chunk(4, -1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        return o * torch.tanh(c), c, dict(zip(GATE_NAMES["LSTM"], (i, f, g, o)))
    (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, None, dict(zip(GATE_NAMES["GRU"], (r, z, n)))


def unroll(rnn: nn.RNNBase, x: torch.Tensor, keep: torch.Tensor | None = None) -> dict:
    """Run `rnn` (batch_first, tanh RNN / LSTM / GRU) over x (B, T, F) by its equations.
    Returns per layer the hidden states h (B, T, H) as a list of step tensors that keep their
    gradients, the LSTM's cell states c, and each gate's values (B, T, H). `keep` (H,), 0 or 1
    per unit, multiplies the last layer's state after every step: a unit at 0 is removed from
    the recurrence itself (an ablation), not only from what the layer passes on."""
    kind = type(rnn).__name__
    layers, inp = [], x
    for k in range(rnn.num_layers):
        w = [getattr(rnn, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h = inp.new_zeros(inp.shape[0], rnn.hidden_size)
        c = h.clone() if kind == "LSTM" else None
        hs, cs, gates = [], [], {name: [] for name in GATE_NAMES[kind]}
        for t in range(inp.shape[1]):
            h, c, g = _cell(kind, inp[:, t], h, c, *w)
            if keep is not None and k == rnn.num_layers - 1:
                h, c = h * keep, (None if c is None else c * keep)
            if h.requires_grad:
                h.retain_grad()
            hs.append(h)
            cs.append(c)
            for name, v in g.items():
                gates[name].append(v)
        layers.append({"h": hs, "c": torch.stack(cs, 1) if kind == "LSTM" else None,
                       "gates": {n: torch.stack(v, 1) for n, v in gates.items()}})
        inp = torch.stack(hs, 1)
    return {"kind": kind, "layers": layers, "output": inp}


def parts(model: nn.Module) -> tuple[nn.Module, nn.RNNBase, nn.Module]:
    """(what comes before the recurrent layer, the layer's torch module, what comes after)."""
    mods = layers_of(model)
    at = next(i for i, m in enumerate(mods) if isinstance(m, Recurrent))
    return nn.Sequential(*mods[:at]), mods[at].cell, nn.Sequential(*mods[at + 1:])


def look_inside(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> dict:
    """For one sequence x (T,) or (T, F) with answer y: states, gates, the prediction, and
    ‖∂L/∂hₜ‖ for every step of the last recurrent layer (numbers, ready to draw)."""
    before, rnn, after = parts(model)
    with evaluating(model):
        try:
            inputs = before(x[None]).detach().requires_grad_()
            run = unroll(rnn, inputs)
            out = after(run["output"])
            loss = loss_fn(out, y[None])
            loss.backward()
            last = run["layers"][-1]
            grads = [float(h.grad.norm()) if h.grad is not None else 0.0 for h in last["h"]]
        finally:
            model.zero_grad(set_to_none=True)
    return {"kind": run["kind"], "h": torch.stack(last["h"], 1)[0].detach().numpy(),
            "c": None if last["c"] is None else last["c"][0].detach().numpy(),
            "gates": {n: v[0].detach().numpy() for n, v in last["gates"].items()},
            "grad_h": grads, "input_grad": inputs.grad[0].norm(dim=-1).tolist(),
            "output": out.detach()[0].numpy(), "loss": float(loss.detach())}


class SequenceProbe:
    """What the live view shows of one example sequence (travels to worker processes: a
    module-level class holding tensors only)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, task: str):
        self.x, self.y, self.task = x, y, task

    def __call__(self, model: nn.Module) -> dict:
        from .losses import LOSSES

        return look_inside(model, self.x, self.y, LOSSES[self.task].make()) | {"spectrum": spectrum(parts(model)[1])}


def spectrum(rnn: nn.RNNBase) -> dict[str, list[float]]:
    """Singular values of the last layer's recurrent weight matrix, per gate block: above 1 a
    state can grow step after step, below 1 it (and its gradient) shrinks."""
    w = getattr(rnn, f"weight_hh_l{rnn.num_layers - 1}").detach()
    names = GATE_NAMES[type(rnn).__name__] or ("recurrent",)
    return {n: torch.linalg.svdvals(block).tolist() for n, block in zip(names, w.chunk(len(names), 0))}
