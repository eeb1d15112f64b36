"""Explainability Lab: Captum attribution maps for the learner's own models — and whether to trust them."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import streamlit as st
import torch

from dl_core import explain, reference
from dl_core.data.data2d import feature_matrix
from dl_core.probes import grid_points
from ui import explain_views as xv
from ui import explain_work as xw
from ui import figures, picture, shell, state, widgets

ss = st.session_state
SOURCES = {"reference": "Reference digits CNN (built in)", "cnn": "Your CNN Lab network",
           "playground": "Your Playground network"}
PLANE_RESOLUTION = 40


@st.cache_resource(show_spinner="Training the reference CNN on the digits (first use only, a few seconds)…")
def reference_model():
    """Shared by every session, never modified: each session explains its own eval copy."""
    return reference.model()


def on_bar_click():
    chart = ss.get("xp_probs")
    points = chart.selection.points if chart else []
    if points and "point_index" in points[0]:
        ss["xp_target_mode"], ss["xp_target_class"] = "pick", int(points[0]["point_index"])


def explainer_for(model, lock, version, background) -> explain.Explainer:
    """One Explainer per model version: a new version (more training) gets a fresh copy and cache."""
    current = ss.get(state.XP_EXPLAINER)
    if current is None or current.version != version:
        with lock:
            copy = explain.eval_copy(model)
        current = ss[state.XP_EXPLAINER] = explain.Explainer(copy, version, background)
    return current


widgets.keep_alive()
st.title("🔎 Explainability Lab")
st.caption("Why did the network say that? Attribution maps colour each pixel by how much it pushed the score of a "
           "class up (blue) or down (orange). Then check whether the map deserves your trust.")

cnn = next(iter(shell.networks("image-classifier")), None)
pg = next(iter(shell.networks("points")), None)
cnn_job, pg_job = cnn and cnn.job, pg and pg.job
choices = [k for k in SOURCES if k == "reference" or (k == "cnn" and cnn) or (k == "playground" and pg)]
source = st.radio("Model to explain", choices, format_func=SOURCES.get, horizontal=True, key=state.kept("xp_model"))
if len(choices) < len(SOURCES):
    st.caption("Train a network in the CNN Lab or the Playground and it appears here too.")

if source == "playground":
    spec, data = pg.extra["spec"], pg.extra["data"]
    background = torch.as_tensor(feature_matrix(data.train[0][:20], spec.input_names))
    ex = explainer_for(pg_job.model, pg_job.lock, ("playground", id(pg_job), pg_job.step), background)
    st.markdown("#### Which input features matter, and where on the plane?")
    st.caption(f"Trained {pg_job.step:,} steps. Each square is one input feature; its colour at each point of the "
               "plane is that feature's attribution there (blue raises the chosen output, orange lowers it).")
    c = st.columns(3)
    keys = [k for k in explain.available(ex.model) if not explain.METHODS[k].needs_conv]
    key = c[0].selectbox("Method", keys, format_func=lambda k: explain.METHODS[k].label, key=state.kept("xp_pg_method"))
    target = None
    if data.task == "classification":
        target = c[1].selectbox("Output", range(data.n_classes), format_func=lambda k: f"class {k}",
                                index=min(1, data.n_classes - 1), key=state.kept("xp_pg_target"))
    c[2].caption(explain.METHODS[key].about)
    grid_x = feature_matrix(grid_points(PLANE_RESOLUTION), spec.input_names)
    xv.plane(ex, grid_x, list(spec.input_names), PLANE_RESOLUTION, target, key, None)
    st.stop()

if source == "reference":
    try:
        base, meta = reference_model()
    except Exception as exc:  # noqa: BLE001 - training failed (disk full, …): say so, keep the app usable
        st.error(f"The reference model could not be prepared: {exc}")
        st.stop()
    ds, spec, lock, version = reference.data(), reference.SPEC, nullcontext(), ("reference",)
    st.caption(f"A small CNN ({len(reference.SPEC.layers)} layers) trained on the offline digits at 28×28: "
               f"{meta['test_accuracy']:.0%} on its test images.")
else:
    base, ds, lock = cnn_job.model, cnn.extra["data"], cnn_job.lock
    spec, version = cnn.extra["spec"], ("cnn", id(cnn_job), cnn_job.step)
    st.caption(f"Your CNN Lab network, trained {cnn_job.step:,} steps ({cnn_job.epoch} epochs) on {ds.name}. "
               "The explanations use a frozen copy: training on in the CNN Lab makes a new version here.")
xtr, _ = ds.part("train")
ex = explainer_for(base, lock, version, torch.as_tensor(xtr[:explain.BACKGROUND]))
work = xw.Work(ex, ds.shape)  # every map below comes from the session's explanation job (or its cache)
classes = list(ds.classes)
xte, yte = ds.part("test")
probs_all = ex.predict(xte)
pred_all = probs_all.argmax(1)

st.markdown("#### 1 · Inputs")
f = st.columns([1, 1, 1.2, 1, 1])
cls = f[0].selectbox("Class", ["all", *range(len(classes))], format_func=lambda v: "all" if v == "all" else classes[v],
                     key=state.kept("xp_f_class"))
outcome = f[1].selectbox("Predictions", ["all", "correct", "wrong"], key=state.kept("xp_f_outcome"))
order = f[2].selectbox("Order", ["most confident first", "least confident first", "as stored"],
                       key=state.kept("xp_f_order"))
keep = np.ones(len(xte), bool) if cls == "all" else yte == cls
keep &= {"all": True, "correct": pred_all == yte, "wrong": pred_all != yte}[outcome]
candidates = np.flatnonzero(keep)
confidence = probs_all[candidates, pred_all[candidates]]
if order != "as stored":
    candidates = candidates[np.argsort(-confidence if order.startswith("most") else confidence, kind="stable")]
n_show = f[3].slider("How many", 1, 4, 3, key=state.kept("xp_f_count"))
start = f[4].number_input("Starting at", 0, max(len(candidates) - 1, 0), 0, key="xp_f_start")
inputs = [(xte[i], f"#{i} · true {classes[yte[i]]}") for i in candidates[start:start + n_show]]
truths = [int(yte[i]) for i in candidates[start:start + n_show]]
if not len(candidates):
    st.info("No test image matches these filters (e.g. no wrong predictions yet): showing the first test image.")
    inputs, truths = [(xte[0], f"#0 · true {classes[yte[0]]}")], [int(yte[0])]
own_source = st.segmented_control("Add your own", ["draw", "upload"], format_func=picture.SOURCES.get,
                                  key=state.kept("xp_own_source"))
if own_source:
    with st.columns([1, 2])[0]:
        mine, caption = picture.own(ds.shape, "xp_own", own_source)
    if mine is not None:
        inputs, truths = [(mine, caption), *inputs[:3]], [None, *truths[:3]]

st.markdown("#### 2 · Methods")
m = st.columns([3, 1.2, 1.2])
available = explain.available(ex.model)
MAX_METHODS = 6  # columns of maps that stay readable side by side
# Pills, not a multiselect: its chips cut long names short once a few are chosen.
keys = m[0].pills(f"Methods (columns, up to {MAX_METHODS})", available, selection_mode="multi",
                  default=[k for k in explain.DEFAULT_SET if k in available],
                  format_func=lambda k: explain.METHODS[k].label, key=state.kept("xp_methods")) or []
if len(keys) > MAX_METHODS:
    m[0].caption(f"Showing the first {MAX_METHODS} of the {len(keys)} methods chosen.")
    keys = keys[:MAX_METHODS]
convs = explain.conv_layers(ex.model)
layer = m[1].selectbox("GradCAM layer", convs, index=len(convs) - 1, format_func=lambda i: f"layer {i + 1} (conv)",
                       key=state.kept("xp_layer")) if convs else None
tunnel = m[2].selectbox("Noise tunnel", list(explain.TUNNELS), format_func=explain.TUNNELS.get,
                        key=state.kept("xp_tunnel"),
                        help="Average the method over noisy copies of the input (smoother maps).")
settings = xv.method_settings(keys)
tunnel_params = {}
if tunnel != "none":
    t = st.columns(4)
    for col, p in zip(t, explain.TUNNEL_PARAMS):
        with col:
            tunnel_params[p.name] = xv.param_widget(p, f"xp_{p.name}")
    skipped = [explain.METHODS[k].label for k in keys if not explain.METHODS[k].tunnel]
    if skipped:
        st.caption(f"Not wrapped (already sampling or coarse): {', '.join(skipped)}.")
    xv.tunnel_note(keys, settings, ds.shape, tunnel, tunnel_params)
if not keys:
    st.info("Choose at least one method.")
    st.stop()

st.markdown("#### 3 · Attribution maps")
d = st.columns([1.2, 1.2, 1, 1.6])
sign = d[0].radio("Show", ["all", "positive", "negative", "absolute"], horizontal=True, key=state.kept("xp_sign"),
                  help="Positive: pixels that raise the class score; negative: those that lower it.")
opacity = d[1].slider("Map opacity", 0.0, 1.0, 0.8, 0.05, key=state.kept("xp_opacity"))
mode = d[2].radio("Explain class", ["predicted", "true", "pick"], key=state.kept("xp_target_mode"))
picked = d[3].selectbox("Class to explain", range(len(classes)), format_func=lambda k: classes[k],
                        key=state.kept("xp_target_class"), disabled=mode != "pick",
                        help="Or click a bar of the probability chart below.")
preds = [int(ex.predict(img[None])[0].argmax()) for img, _ in inputs]
targets = [picked if mode == "pick" else (t if mode == "true" and t is not None else p)
           for t, p in zip(truths, preds)]
work.slot, results = st.empty(), {}
xw.live(work, lambda: results.update(xv.grid(work, inputs, targets, keys, settings, layer, tunnel, tunnel_params,
                                             sign, opacity, classes)))
first, target = inputs[0][0], targets[0]
c = st.columns([1, 2])
c[0].caption("Click a bar to explain that class instead (first input).")
c[1].plotly_chart(figures.probability_figure(ex.predict(first[None])[0], classes), key="xp_probs",
                  on_select=on_bar_click, selection_mode="points", config={"displayModeBar": False})

if convs:
    st.markdown("#### 4 · GradCAM across depth (first input)")
    work.slot = st.empty()
    xv.gradcam_depth(work, first, target, opacity)

st.markdown("#### 5 · What if? Cover part of the first input")
work.slot = st.empty()
xv.what_if(work, first, target, keys, settings, opacity, classes)

st.markdown("#### 6 · Can you trust it?")
labels = {k: explain.METHODS[k].label for k in keys}
work.slot = st.empty()
tabs = st.tabs(["Faithfulness", "Sanity checks"])
with tabs[0]:
    xv.faithfulness(work, first, target, results, keys, labels)
with tabs[1]:
    xv.sanity_checks(work, first, target, keys, labels, spec, ds)
work.submit()
