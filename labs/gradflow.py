"""Gradient flow in deep networks: watch gradients vanish, then fix it."""
from __future__ import annotations

import numpy as np
import streamlit as st

from dl_core import deepnets, layerstats
from dl_core.activations import ACTIVATIONS
from dl_core.data import data2d
from ui import backprop_figures as bf
from ui import charts, state, views, widgets
from ui.shell import Shell

ss = st.session_state
POLL_S = 0.5
SETTINGS = ("gf_data", "gf_depth", "gf_width", "gf_act", "gf_init", "gf_bn", "gf_res", state.SEED)
shell = Shell("gradflow")
PRESETS = {  # one click to each lesson's starting point
    "vanish": ("😵 Vanishing: 20 sigmoids", dict(gf_act="sigmoid", gf_init="default", gf_bn=False, gf_res=False)),
    "he": ("🔧 Fix 1: ReLU + He init", dict(gf_act="relu", gf_init="kaiming", gf_bn=False, gf_res=False)),
    "bn": ("🔧 Fix 2: batch norm", dict(gf_act="sigmoid", gf_init="default", gf_bn=True, gf_res=False)),
    "res": ("🔧 Fix 3: residual", dict(gf_act="sigmoid", gf_init="default", gf_bn=False, gf_res=True)),
    "explode": ("💥 Exploding: big init", dict(gf_act="relu", gf_init="large", gf_bn=False, gf_res=False)),
}


def apply_preset(key: str):
    ss.update(PRESETS[key][1] | {"gf_depth": 20})


def on_reset():
    shell.run.extra["key"] = None  # the next run builds a fresh network; the trained one stays for undo


@st.cache_data(show_spinner=False, max_entries=16)
def dataset(name: str, seed: int) -> data2d.Dataset2D:
    return data2d.make_dataset(name, 500, 0.1, 0.7, seed)


shell.attach()
st.title("🌊 Deep networks: gradient flow")
st.caption("Backpropagation multiplies one factor per layer on the way back. Twenty factors below one and the "
           "first layers receive almost nothing: they cannot learn. See it, then fix it three ways.")
p = st.columns(len(PRESETS))
for col, (k, (label, _)) in zip(p, PRESETS.items()):
    col.button(label, on_click=apply_preset, args=(k,), key=f"gf_preset_{k}", width="stretch")

for k, v in {"gf_depth": 20, "gf_width": 16, "gf_act": "sigmoid", "gf_init": "default", "gf_bn": False,
             "gf_res": False}.items():
    ss.setdefault(k, v)  # the widgets take their values from here, so the preset buttons can set them
c = st.columns([1, 1.1, 1.1, 1, 1.9, 1.1, 1.1])  # the initialisation names are long: room for them
name = c[0].selectbox("Data", [k for k, v in data2d.DATASETS.items() if not v.curve and v.n_classes == 2],
                      format_func=lambda k: data2d.DATASETS[k].label, key=state.kept("gf_data"))
depth = c[1].slider("Hidden layers", 5, deepnets.MAX_DEPTH, key=state.kept("gf_depth"))
width = c[2].select_slider("Neurons per layer", [8, 16, 32], key=state.kept("gf_width"))
act = c[3].selectbox("Activation", [k for k, a in ACTIVATIONS.items() if a.gradient_flow],
                     format_func=lambda k: ACTIVATIONS[k].label, key=state.kept("gf_act"))
init = c[4].selectbox("Initialisation", list(deepnets.INITS), format_func=lambda k: deepnets.INITS[k][0],
                      key=state.kept("gf_init"))
bn = c[5].toggle("Batch norm", key=state.kept("gf_bn"))
res = c[6].toggle("Residual", key=state.kept("gf_res"), help="x + f(Wx + b): an identity path around every layer.")

ds = dataset(name, widgets.seed())
spec = deepnets.deep_spec(2, depth, width, act, 2, bn, res, input_names=("x", "y"))
key = (name, widgets.seed(), spec, init)
run = shell.run_for(key, lambda: deepnets.make_job(ds, spec, init, act, widgets.seed()),
                    {k: ss.get(k) for k in SETTINGS})
job = run.job
shell.header()

st.markdown("#### How much gradient reaches each layer? (current weights, one pass over the data)")
with job.lock:
    probe_model = job.model
    was = probe_model.training
    norms = deepnets.gradient_norms(probe_model, job.data.x_train, job.data.y_train)
    probe_model.zero_grad(set_to_none=True)
    probe_model.train(was)
ratio = deepnets.first_to_last_ratio(norms)
kind, verdict = deepnets.verdict(norms)
m = st.columns([1, 3])
m[0].metric("First layer ÷ last layer", f"{ratio:.1e}", help="‖∂L/∂W‖ of the first weight matrix over the last's, "
            "for one pass over the training data with the current weights.")
{"healthy": m[0].success, "weak": m[0].warning}.get(kind, m[0].error)(verdict)
logs = np.log10(np.maximum(norms, 1e-30))
m[1].vega_lite_chart(spec=charts.bars(layerstats.weight_numbers(probe_model), logs,
                                      base=float(np.floor(logs.min())) - 1,
                                      x_title="hidden layer (out: the output layer)", y_title="log₁₀ ‖∂L/∂W‖",
                                      height=220))
st.caption("Each bar is the gradient of one layer's weights, input side on the left, on a log scale: a taller bar "
           "is a larger gradient, a bar 6 lower one a million times smaller." +
           (" A sigmoid passes back at most a quarter of what it gets (its steepest slope), so twenty of them "
            "multiply the signal by at most 0.25²⁰." if act == "sigmoid" else ""))

st.markdown("#### Train it and watch")
shell.controls(on_reset)


def live(job):
    view = job.view()
    left, right = st.columns([1.2, 1])
    with left:
        views.layer_stats(view, job)
    with right:
        snap = job.snapshot() or job.snapshot(fresh=True)
        st.markdown("**What each activation layer outputs** (histogram over 256 training points, now)")
        hists = snap["histograms"]
        shown = np.unique(np.linspace(0, len(hists) - 1, min(6, len(hists))).astype(int))
        st.vega_lite_chart(spec=bf.histograms_chart([hists[i] for i in shown],
                                                    [job.activation_labels[i] for i in shown]))
        st.caption("Sigmoids piled up at 0 or 1, or ReLUs stuck at 0, pass no gradient back.")
        views.curves(view, "classification")


shell.live(live, POLL_S, views.counter_values("classification"))
