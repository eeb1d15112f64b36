"""Backpropagation by hand, node by node, for a real `nn.Module` — micrograd's picture.

For a dense network (Linear and activation layers) and one example, `trace` computes the
forward pass and then the backward pass with the chain rule written out: every local
derivative, the gradient arriving at each node, and every weight's and bias's gradient.
It is computed here by hand in float64 (not by autograd), so that it can be *checked*
against `torch.autograd` and against finite differences; the page shows both checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .activations import ACTIVATIONS, key_of
from .layerlist import layers_of
from .losses import LOSSES


class TraceError(ValueError):
    """The network cannot be stepped through (a layer without a hand-written rule, or too large)."""


@dataclass
class Node:
    id: str
    kind: str  # input | sum | act | loss
    column: int  # position in the drawing, left to right
    row: int
    label: str  # LaTeX
    short: str  # plain text with Unicode super/subscripts, for the graph's boxes
    value: float = 0.0
    grad: float = 0.0  # ∂L/∂(this node)


@dataclass
class Step:
    phase: str  # forward | backward
    node: str
    title: str
    symbolic: str  # LaTeX; lines joined by \\ (the page sets each in a gathered block)
    numeric: str  # LaTeX, likewise


@dataclass
class Trace:
    nodes: dict[str, Node]
    edges: list[tuple[str, str, str | None]]  # (from, to, parameter name "layers.0.weight[j,i]" or None)
    steps: list[Step]
    loss: float
    grads: dict[str, np.ndarray]  # by hand: parameter name -> gradient
    params: dict[str, np.ndarray] = field(default_factory=dict)


def _layers(model: nn.Module) -> list[tuple[str, nn.Linear, str]]:
    """(module name, Linear, activation key) per dense layer; the last gets "linear" (logits). The name
    is the model's own ("layers.0" in a SpecNet, "0.0" in a Sequential(backbone, head)), so the
    gradients by hand carry the same keys as autograd's named_parameters."""
    names = {m: n for n, m in model.named_modules()}
    out, mods = [], layers_of(model)
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            out.append((names[m], m, key_of(nxt) or "linear"))
        elif key_of(m) is None:
            raise TraceError(f"Layer {i + 1} ({type(m).__name__}) has no hand-written backward rule here; "
                             "step-through works with Linear and activation layers only.")
    if sum(m.out_features for _, m, _ in out) > 40:
        raise TraceError("That network has more than 40 neurons: too many to follow one by one.")
    return out


_SUP, _SUB = str.maketrans("0123456789()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾"), str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _short(base: str, layer: int | None, index: int) -> str:
    return base + (f"({layer})".translate(_SUP) if layer else "") + str(index).translate(_SUB)


def _fmt(v: float) -> str:
    """A number for LaTeX: 4 significant digits, negative ones in brackets so products read right."""
    text = f"{v:.4g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = rf"{mant}\times 10^{{{int(exp)}}}"
    return f"({text})" if v < 0 else text


def trace(model: nn.Module, x: np.ndarray, target: float, task: str = "classification") -> Trace:
    """Forward then backward through `model` for one example, by hand, in float64."""
    layers = _layers(model)
    nodes: dict[str, Node] = {}
    edges: list = []
    steps: list[Step] = []
    params = {}
    for name, lin, _ in layers:
        params[f"{name}.weight"] = lin.weight.detach().double().cpu().numpy()
        params[f"{name}.bias"] = lin.bias.detach().double().cpu().numpy()
    prev = []
    for r, v in enumerate(np.asarray(x, np.float64)):
        nodes[f"x{r}"] = Node(f"x{r}", "input", 0, r, f"x_{{{r + 1}}}", _short("x", None, r + 1), float(v))
        prev.append(f"x{r}")
    col = 1
    for li, (name, lin, act) in enumerate(layers, 1):
        w, b = params[f"{name}.weight"], params[f"{name}.bias"]
        last = li == len(layers)
        current = []
        for j in range(w.shape[0]):
            zid, sup = f"z{li}_{j}", f"^{{({li})}}_{{{j + 1}}}"
            z = float(w[j] @ np.array([nodes[p].value for p in prev]) + b[j])
            nodes[zid] = Node(zid, "sum", col, j, ("o" if last else "z") + sup,
                              _short("o" if last else "z", li, j + 1), z)
            for k, p in enumerate(prev):
                edges.append((p, zid, f"{name}.weight[{j},{k}]"))
            terms = " + ".join(f"w{sup[:-1]}{k + 1}}} {nodes[p].label}" for k, p in enumerate(prev))
            nums = " + ".join(f"{_fmt(w[j, k])}\\cdot {_fmt(nodes[p].value)}" for k, p in enumerate(prev))
            steps.append(Step("forward", zid, f"Weighted sum of neuron {j + 1}, layer {li}",
                              f"{nodes[zid].label} = {terms} + b{sup}", f"= {nums} + {_fmt(b[j])} \\\\ = {_fmt(z)}"))
            current.append(zid)
        if not last:
            acts, fn = [], ACTIVATIONS[act].make()
            for j, zid in enumerate(current):
                aid, sup = f"a{li}_{j}", f"^{{({li})}}_{{{j + 1}}}"
                a = float(fn(torch.tensor(nodes[zid].value, dtype=torch.float64)))
                nodes[aid] = Node(aid, "act", col + 1, j, "a" + sup, _short("a", li, j + 1), a)
                edges.append((zid, aid, None))
                steps.append(Step("forward", aid, f"Activation of neuron {j + 1}, layer {li} "
                                                  f"({ACTIVATIONS[act].label})",
                                  f"a{sup} = f(z{sup})", f"= f({_fmt(nodes[zid].value)}) = {_fmt(a)}"))
                acts.append(aid)
            prev, col = acts, col + 2
        else:
            prev, col = current, col + 1
    outputs = prev
    o = np.array([nodes[p].value for p in outputs])
    if task == "classification":
        t = int(target)
        p = np.exp(o - o.max())
        p /= p.sum()
        loss = float(-np.log(p[t]))
        sym, num = rf"L = -\log \mathrm{{softmax}}(o)_{{{t + 1}}}", rf"= -\log {_fmt(p[t])} = {_fmt(loss)}"
        d_out = p - np.eye(len(o))[t]
        d_sym = [(rf"\frac{{\partial L}}{{\partial o_{{{k + 1}}}}} = p_{{{k + 1}}} - [k = {t + 1}]",
                  rf"= {_fmt(p[k])} - {int(k == t)}") for k in range(len(o))]
    else:
        loss = float((o[0] - target) ** 2)
        sym, num = r"L = (o - t)^2", rf"= ({_fmt(o[0])} - {_fmt(target)})^2 = {_fmt(loss)}"
        d_out = np.array([2 * (o[0] - target)])
        d_sym = [(r"\frac{\partial L}{\partial o} = 2(o - t)", rf"= 2({_fmt(o[0])} - {_fmt(target)})")]
    nodes["L"] = Node("L", "loss", col, 0, "L", "L", loss, 1.0)
    edges += [(p, "L", None) for p in outputs]
    steps.append(Step("forward", "L", "Loss", sym, num))
    grads = _backward(layers, params, nodes, outputs, d_out, d_sym, steps)
    return Trace(nodes, edges, steps, loss, grads, params)


def _backward(layers, params, nodes, outputs, d_out, d_sym, steps) -> dict[str, np.ndarray]:
    grads = {}
    for k, (nid, (sym, num)) in enumerate(zip(outputs, d_sym)):
        nodes[nid].grad = float(d_out[k])
        steps.append(Step("backward", nid, f"Gradient at output {k + 1}", sym, f"{num} = {_fmt(d_out[k])}"))
    upstream = list(outputs)
    for li in range(len(layers), 0, -1):
        name = layers[li - 1][0]
        w = params[f"{name}.weight"]
        below = [f"a{li - 1}_{k}" for k in range(w.shape[1])] if li > 1 else [f"x{k}" for k in range(w.shape[1])]
        dz = np.array([nodes[z].grad for z in upstream])
        a_prev = np.array([nodes[p].value for p in below])
        grads[f"{name}.weight"], grads[f"{name}.bias"] = np.outer(dz, a_prev), dz.copy()
        for j, zid in enumerate(upstream):
            sup = f"^{{({li})}}_{{{j + 1}}}"
            steps.append(Step("backward", zid, f"Weights into neuron {j + 1}, layer {li}",
                              rf"\frac{{\partial L}}{{\partial w{sup[:-1]}k}}}} = \frac{{\partial L}}"
                              rf"{{\partial {nodes[zid].label}}}\, a_k \\ \frac{{\partial L}}{{\partial b{sup}}} "
                              rf"= \frac{{\partial L}}{{\partial {nodes[zid].label}}}",
                              r" \\ ".join(rf"\partial L/\partial w{sup[:-1]}{k + 1}}} = {_fmt(dz[j])}\cdot{_fmt(a)} = "
                                             f"{_fmt(dz[j] * a)}" for k, a in enumerate(a_prev))
                              + rf" \\ \partial L/\partial b{sup} = {_fmt(dz[j])}"))
        if li == 1:
            break
        act = layers[li - 2][2]
        for k, aid in enumerate(below):
            da = float(w[:, k] @ dz)
            nodes[aid].grad = da
            steps.append(Step("backward", aid, f"Gradient reaching neuron {k + 1}, layer {li - 1}",
                              rf"\frac{{\partial L}}{{\partial {nodes[aid].label}}} = \sum_j w_{{j{k + 1}}}"
                              rf"\frac{{\partial L}}{{\partial z_j}}",
                              "= " + " + ".join(f"{_fmt(w[j, k])}\\cdot {_fmt(dz[j])}" for j in range(len(dz)))
                              + f" \\\\ = {_fmt(da)}"))
        new_up = []
        for k, aid in enumerate(below):
            zid = f"z{li - 1}_{k}"
            z_a = torch.tensor([nodes[zid].value, nodes[aid].value], dtype=torch.float64)
            local = float(ACTIVATIONS[act].slope(*z_a))
            nodes[zid].grad = nodes[aid].grad * local
            steps.append(Step("backward", zid, f"Through the activation of neuron {k + 1}, layer {li - 1}",
                              rf"\frac{{\partial L}}{{\partial {nodes[zid].label}}} = \frac{{\partial L}}"
                              rf"{{\partial {nodes[aid].label}}}\cdot f'(z),\quad f'(z) = {ACTIVATIONS[act].slope_tex}",
                              f"= {_fmt(nodes[aid].grad)} \\cdot {_fmt(local)} = {_fmt(nodes[zid].grad)}"))
            new_up.append(zid)
        upstream = new_up
    return grads


def autograd_grads(model: nn.Module, x: np.ndarray, target: float, task: str) -> dict[str, np.ndarray]:
    """The oracle: PyTorch's own gradients for the same example, in float64."""
    m = _double(model)
    out = m(torch.as_tensor(np.asarray(x, np.float64))[None])
    loss = _loss(out, target, task)
    loss.backward()
    return {n: p.grad.numpy() for n, p in m.named_parameters()}


def finite_difference_grads(model: nn.Module, x: np.ndarray, target: float, task: str,
                            eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences (L(w+ε) − L(w−ε)) / 2ε, one parameter at a time: the second oracle."""
    m = _double(model)
    xt = torch.as_tensor(np.asarray(x, np.float64))[None]
    out = {}
    with torch.no_grad():
        for name, p in m.named_parameters():
            g = np.zeros(p.shape)
            flat = p.view(-1)
            for idx in range(flat.numel()):
                old = float(flat[idx])
                flat[idx] = old + eps
                up = float(_loss(m(xt), target, task))
                flat[idx] = old - eps
                down = float(_loss(m(xt), target, task))
                flat[idx] = old
                g.flat[idx] = (up - down) / (2 * eps)
            out[name] = g
    return out


def _double(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double().eval().cpu()


def _loss(out: torch.Tensor, target: float, task: str) -> torch.Tensor:
    """The task's loss in the model's float64: regression targets are cast up to it."""
    loss = LOSSES[task]
    t = loss.target([target])
    return loss.make()(out, t.to(out.dtype) if t.is_floating_point() else t)


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)
