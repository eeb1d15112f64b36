"""Backpropagation, step by step: forward pass, chain rule, update — every number a real one."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dl_core import backprop, tuning
from dl_core.activations import ACTIVATIONS
from dl_core.data import data2d
from dl_core.losses import LOSSES
from dl_core.spec import build, mlp_spec
from ui import backprop_figures as bf
from ui import charts, shell, state, widgets

ss = st.session_state
SHAPES = {"2-3-2": [3], "2-2-2": [2], "2-4-3-2": [4, 3], "2-3-3-2": [3, 3]}


def reset_model():
    ss.pop(state.BP_MODEL, None)
    ss[state.BP_STEP] = 0


def on_move(delta: int, n: int):
    ss[state.BP_STEP] = min(max(ss.get(state.BP_STEP, 0) + delta, 0), n - 1)


def on_sgd(trace, lr: float, times: int, x, target, task):
    """w ← w − η·∂L/∂w, with the gradients of the hand trace (then re-traced for the next step)."""
    model = ss[state.BP_MODEL]
    losses = [trace.loss]
    for _ in range(times):
        grads = backprop.trace(model, x, target, task).grads
        with torch.no_grad():
            for name, p in model.named_parameters():
                p -= lr * torch.as_tensor(grads[name], dtype=p.dtype)
        losses.append(backprop.trace(model, x, target, task).loss)
    ss[state.BP_LOSSES] = (ss[state.BP_LOSSES] + losses[1:]) if ss.get(state.BP_LOSSES) else losses


def on_edit_weight(name: str, j: int, i: int, key: str):
    with torch.no_grad():
        dict(ss[state.BP_MODEL].named_parameters())[name][j, i] = float(ss[key])
    ss.pop(state.BP_LOSSES, None)


widgets.keep_alive()
st.title("⛓️ Backpropagation, step by step")
st.caption("A network learns by nudging every weight against its gradient ∂L/∂w. Backpropagation finds all those "
           "gradients in one sweep backwards, with the chain rule. Walk through it, one node at a time.")

c = st.columns([1, 1, 1, 1.2, 1.2])
shape = c[0].selectbox("Network", list(SHAPES), key=state.kept("bp_shape"), on_change=reset_model)
act = c[1].selectbox("Activation", list(ACTIVATIONS), format_func=lambda k: ACTIVATIONS[k].label,
                     key=state.kept("bp_act"), on_change=reset_model)
task = c[2].radio("Task", list(LOSSES), format_func=lambda k: f"{k} ({LOSSES[k].label})", key=state.kept("bp_task"),
                  on_change=reset_model, help="Classification: 2 class scores, then softmax. Regression: 1 output.")
x1 = c[3].slider("Input x₁", -3.0, 3.0, 1.0, 0.1, key=state.kept("bp_x1"))
x2 = c[4].slider("Input x₂", -3.0, 3.0, -0.5, 0.1, key=state.kept("bp_x2"))
target = (st.radio("True class", [0, 1], horizontal=True, key=state.kept("bp_target")) if task == "classification"
          else st.slider("Target value", -2.0, 2.0, 0.5, 0.1, key=state.kept("bp_target_value")))
x = np.array([x1, x2])
pg = next(iter(shell.networks("points")), None)
pg_job = pg.job if pg else None
use_pg = st.toggle("Use my Playground network instead", key=state.kept("bp_use_pg"), on_change=reset_model,
                   disabled=pg_job is None, help="Its current weights, and one of its training points as the example.")
if use_pg and pg_job is not None:
    pg_data, pg_spec = pg.extra["data"], pg.extra["spec"]
    pick = st.slider("Training point", 0, len(pg_data.train[0]) - 1, 0, key="bp_pg_point")
    x, target, task = data2d.feature_matrix(pg_data.train[0][pick:pick + 1], pg_spec.input_names)[0], \
        pg_data.train[1][pick], pg_data.task
    if state.BP_MODEL not in ss:
        with pg_job.lock:
            ss[state.BP_MODEL] = copy.deepcopy(pg_job.model).cpu()
    st.caption(f"Point ({pg_data.train[0][pick][0]:.2f}, {pg_data.train[0][pick][1]:.2f}) → inputs "
               + ", ".join(f"{n} = {v:.2f}" for n, v in zip(pg_spec.input_names, x)) + f"; target {target}.")
if state.BP_MODEL not in ss:
    ss[state.BP_MODEL] = build(mlp_spec(2, SHAPES[shape], act, 2 if task == "classification" else 1, task),
                               seed=widgets.seed())
model = ss[state.BP_MODEL]
try:
    trace = backprop.trace(model, x, target, task)
except backprop.TraceError as exc:
    st.warning(f"{exc} Switch the toggle off to use the small network.")
    st.stop()
steps = trace.steps
i = min(ss.get(state.BP_STEP, 0), len(steps) - 1)
step = steps[i]

nav = st.columns([1, 1, 4, 1.2])
nav[0].button("◀ Previous", on_click=on_move, args=(-1, len(steps)), disabled=i == 0, key="bp_prev", width="stretch")
nav[1].button("Next ▶", on_click=on_move, args=(1, len(steps)), disabled=i == len(steps) - 1, key="bp_next",
              type="primary", width="stretch")
nav[2].progress((i + 1) / len(steps), text=f"Step {i + 1} of {len(steps)} · "
                f"{'forward pass' if step.phase == 'forward' else 'backward pass'}")
nav[3].button("⏭ Show all", on_click=on_move, args=(len(steps), len(steps)), key="bp_all", width="stretch")

done = steps[:i + 1]
known = {s.node for s in done if s.phase == "forward"}
grads_known = {s.node for s in done if s.phase == "backward"} | ({"L"} if any(s.phase == "backward" for s in done)
                                                                   else set())
left, right = st.columns([1.25, 1])
with left:
    st.plotly_chart(bf.graph_figure(trace, known, grads_known, step.node), key="bp_graph",
                    config={"displayModeBar": False})
    st.caption("Each box: its value, and in red ∇ = ∂L/∂(box) once the backward pass has reached it. Orange boxes "
               "are weighted sums z, blue ones activations a. Hover the dots on the lines for the weights.")
with right:
    st.markdown(f"**{step.title}**")
    for formula in (step.symbolic, step.numeric):
        st.latex(rf"\begin{{gathered}}{formula}\end{{gathered}}")
    if step.phase == "forward":
        st.caption("Forward pass: each neuron adds up its weighted inputs plus a bias, then applies the "
                   "activation. The last layer's scores go into the loss.")
    else:
        st.caption("Backward pass: the chain rule. A node's gradient is the gradient arriving from above times "
                   "its own local derivative; a weight's gradient is the gradient at its neuron times the "
                   "input it multiplied.")

auto = backprop.autograd_grads(model, x, target, task)
fd = backprop.finite_difference_grads(model, x, target, task)
st.markdown("#### Checked twice")
k = st.columns(3)
k[0].metric("Loss", f"{trace.loss:.5f}")
k[1].metric("Largest |hand − autograd|", f"{backprop.max_difference(trace.grads, auto):.1e}",
            help="PyTorch's torch.autograd on the same network, in float64.")
k[2].metric("Largest |hand − finite difference|", f"{backprop.max_difference(trace.grads, fd):.1e}",
            help="(L(w + ε) − L(w − ε)) / 2ε with ε = 1e-6, one parameter at a time.")
rows = [{"parameter": f"{n}[{', '.join(map(str, idx))}]", "by hand": trace.grads[n][idx], "autograd": auto[n][idx],
         "finite difference": fd[n][idx]} for n in trace.grads for idx in np.ndindex(trace.grads[n].shape)]
with st.expander(f"All {len(rows)} gradients side by side"):
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.8f") for c in ("by hand", "autograd", "finite difference")})

st.markdown("#### Then the update: w ← w − η · ∂L/∂w")
u = st.columns([1.2, 1, 1, 2])
lr = u[0].select_slider("Learning rate η", [0.01, 0.03, 0.1, 0.3, 1.0, 3.0], 0.3, key=state.kept("bp_lr"))
u[1].button("Take 1 step", on_click=on_sgd, args=(trace, lr, 1, x, target, task), key="bp_sgd1")
u[2].button("Take 10 steps", on_click=on_sgd, args=(trace, lr, 10, x, target, task), key="bp_sgd10")
losses = ss.get(state.BP_LOSSES)
if losses:
    u[3].vega_lite_chart(spec=charts.series_lines(range(len(losses)), {"loss": losses}, "update", "loss", height=150))
    st.caption(f"Loss {losses[0]:.4f} → {losses[-1]:.4f} after {len(losses) - 1} updates on this one example. "
               "Too large an η overshoots and the loss jumps up instead.")
names = [n for n in trace.params if n.endswith("weight")]
e = st.columns([1.2, 0.6, 0.6, 1.2, 1])
name = e[0].selectbox("Edit a weight", names, key=state.kept("bp_edit_name"))
shape_w = trace.params[name].shape
j = e[1].number_input("row j", 0, shape_w[0] - 1, 0, key="bp_edit_j")
col_i = e[2].number_input("column i", 0, shape_w[1] - 1, 0, key="bp_edit_i")
value_key = f"bp_edit_value_{name}_{j}_{col_i}"  # one input per weight: it never shows another's value
e[3].number_input("new value", -10.0, 10.0, float(trace.params[name][j, col_i]), 0.1, key=value_key)
e[4].button("Set it", on_click=on_edit_weight, args=(name, j, col_i, value_key), key="bp_edit_set")
e[4].button("↺ Fresh weights", on_click=reset_model, key="bp_reset")

st.markdown("#### One example, a mini-batch, or all of them?")
st.caption("The true gradient is the average over all training examples. SGD estimates it from a few: the smaller "
           "the batch, the noisier the estimate (its spread shrinks like 1/√batch size) — but the cheaper each step.")
if ss.get("bp_use_pg") and pg_job is not None:
    ds, names_in = pg_data, pg_spec.input_names
else:
    ds, names_in = data2d.make_dataset("circle" if task == "classification" else "curve", 500, 0.1, 0.8,
                                       widgets.seed()), ("x", "y")
xs = torch.as_tensor(data2d.feature_matrix(ds.train[0], names_in), dtype=torch.float32)
ys, loss_fn = LOSSES[task].target(ds.train[1]), LOSSES[task].make()
per_example = tuning.per_example_grads(model, xs, ys, loss_fn, name)[:, j * shape_w[1] + col_i]
spread = tuning.minibatch_spread(per_example[:, None], [1, 8, 32, 128], draws=150, seed=widgets.seed())
st.vega_lite_chart(spec=bf.spread_chart(spread, float(per_example.mean())))
st.caption(f"{name}[{j}, {col_i}] on {len(xs)} points of the {ds.name} data · full-batch gradient "
           f"{per_example.mean():+.4f} (orange line) · spread of the estimates: " +
           ", ".join(f"batch {b}: ±{v.std():.4f}" for b, v in spread.items()))
