"""Explainability Lab views: method settings built from the registry, the methods × inputs
grid, GradCAM across depth, and "Can you trust it?" (used by labs/explain.py)."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dl_core import explain, trust
from dl_core.layerlist import layers_of
from dl_core.reference import shuffled_label_twin

from . import explain_figures as xf
from . import figures, state, widgets

ss = st.session_state


def param_widget(p: explain.Param, key: str):
    key = state.kept(key)  # fixed ranges: the value may outlive a visit to another page
    if p.options:
        return st.selectbox(p.label, p.options, index=p.options.index(p.default), key=key, help=p.help or None,
                            format_func=lambda v: explain.BASELINES.get(v, str(v)) if isinstance(v, str) else str(v))
    if isinstance(p.default, float):
        return st.slider(p.label, float(p.lo), float(p.hi), p.default, float(p.step), key=key, help=p.help or None)
    return st.slider(p.label, int(p.lo), int(p.hi), p.default, int(p.step), key=key, help=p.help or None)


def method_settings(keys: list[str]) -> dict[str, dict]:
    """One small column of settings per chosen method that has any; the registry says which."""
    with_params = [k for k in keys if explain.METHODS[k].params]
    settings = {k: {} for k in keys}
    if with_params:
        with st.expander("⚙️ Method settings"):
            cols = st.columns(len(with_params))
            for col, k in zip(cols, with_params):
                with col:
                    st.markdown(f"**{explain.METHODS[k].label}**")
                    settings[k] = {p.name: param_widget(p, f"xp_{k}_{p.name}") for p in explain.METHODS[k].params}
    return settings


def grid(explainer: explain.Explainer, inputs: list[tuple[np.ndarray, str]], targets: list[int], keys: list[str],
         settings: dict, layer: int | None, tunnel: str, tunnel_params: dict, sign: str, opacity: float,
         classes: list[str]) -> dict:
    """Rows are inputs, columns are methods. Returns {(row, key): Result} for later sections."""
    results = {}
    head = st.columns([1] + [1] * len(keys))
    head[0].markdown("**Input → prediction**")
    for col, k in zip(head[1:], keys):
        col.markdown(f"**{explain.METHODS[k].label}**", help=explain.METHODS[k].about)
    for r, ((image, caption), target) in enumerate(zip(inputs, targets)):
        probs = explainer.predict(image[None])[0]
        cols = st.columns([1] + [1] * len(keys))
        cols[0].image(xf.picture(image), caption=f"{caption} · says {classes[int(probs.argmax())]} "
                                                  f"({probs.max():.0%}) · explaining {classes[target]}",
                      width="stretch")
        for col, k in zip(cols[1:], keys):
            res = explainer.explain(image, target, k, settings.get(k), layer, tunnel, tunnel_params)
            results[(r, k)] = res
            note = f"{res.ms:.0f} ms"
            if res.delta is not None:  # completeness: how far Σ attributions is from the score difference
                note += f" · gap {res.delta / max(abs(float(res.attribution.sum())), 1e-9):.1%} of Σ"
            col.image(xf.overlay(image, explain.heat(res.attribution, sign), opacity), caption=note,
                      width="stretch")
    return results


def gradcam_depth(explainer: explain.Explainer, image: np.ndarray, target: int, opacity: float) -> None:
    convs = explain.conv_layers(explainer.model)
    cols = st.columns(max(len(convs), 1))
    for col, i in zip(cols, convs):
        res = explainer.explain(image, target, "gradcam", layer=i)
        shape = tuple(layers_of(explainer.model)[i].weight.shape)
        col.image(xf.overlay(image, explain.heat(res.attribution), opacity),
                  caption=f"layer {i + 1} · {shape[0]} maps")
    st.caption("Early layers see small details (fine, scattered maps); the last one sees whole parts, so its map "
               "is coarse but about the class.")


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()[:12]


def faithfulness(explainer: explain.Explainer, image: np.ndarray, target: int, results: dict, keys: list[str],
                 labels: dict[str, str]) -> None:
    """Deletion and insertion curves with their areas, beside a random order, and infidelity."""
    rows, curves_del, curves_ins = [], {}, {}
    model = explainer.model
    n = image.shape[1] * image.shape[2]
    chance_del = trust.perturbation_curve(model, image, target, trust.random_order(n))
    chance_ins = trust.perturbation_curve(model, image, target, trust.random_order(n), insertion=True)
    for k in keys:
        a, delta = results[(0, k)].attribution, results[(0, k)].delta
        order = trust.most_attributed_first(a)
        d = trust.perturbation_curve(model, image, target, order)
        i = trust.perturbation_curve(model, image, target, order, insertion=True)
        curves_del[labels[k]], curves_ins[labels[k]] = (d.fractions, d.scores), (i.fractions, i.scores)
        rows.append({"method": labels[k], "deletion area ↓": d.area, "insertion area ↑": i.area,
                     "beats random deletion": "✅" if d.area < chance_del.area else "❌",
                     "infidelity ↓": trust.infidelity_score(model, image, target, a),
                     "completeness gap δ": "—" if delta is None else f"{delta:.3g}"})
    curves_del["random order"] = (chance_del.fractions, chance_del.scores)
    curves_ins["random order"] = (chance_ins.fractions, chance_ins.scores)
    number = st.column_config.NumberColumn(format="%.3g")
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        "deletion area ↓": number, "insertion area ↑": number, "infidelity ↓": number,
        "completeness gap δ": st.column_config.TextColumn(
            help="Integrated Gradients and DeepLift: |Σ attributions − (f(x) − f(baseline))|, 0 when the map "
                 "accounts for the whole change of the score. Other methods promise no such sum (—).")})
    st.caption(f"Random order: deletion area {chance_del.area:.3f}, insertion area {chance_ins.area:.3f}. A faithful "
               "map finds the pixels the network relies on, so deleting them first makes the score fall faster "
               "than deleting at random.")
    c = st.columns(2)
    c[0].vega_lite_chart(spec=xf.perturbation_chart(curves_del, "Deletion: most important pixels removed first"))
    c[1].vega_lite_chart(spec=xf.perturbation_chart(curves_ins, "Insertion: most important pixels revealed first"))
    if widgets.action("Measure robustness (captum.metrics.sensitivity_max)", key="xp_sensitivity"):
        st.dataframe(pd.DataFrame([{"method": labels[k], "max sensitivity ↓":
                                    trust.sensitivity(model, image, target, k)} for k in keys]), hide_index=True)
        st.caption("How much the map changes, at most, when the input moves by 2 %: lower is steadier.")


def sanity_checks(explainer: explain.Explainer, image: np.ndarray, target: int, keys: list[str],
                  labels: dict[str, str], spec, ds) -> None:
    """Adebayo et al.'s two randomisation tests, run on request (the twin trains for seconds)."""
    key = (explainer.version, _digest(image), target, tuple(keys))
    done = ss.setdefault(state.XP_SANITY, {})
    if key not in done:
        if not widgets.action("🧪 Run the sanity checks", key="xp_run_sanity", type="primary",
                              help="Randomises the weights layer by layer, and trains a copy on shuffled labels."):
            st.caption("A map that explains the model must change when the model is destroyed.")
            return
        with st.spinner("Randomising layers, and training a copy on shuffled labels…"):
            steps, corr = trust.cascading_randomisation(explainer.model, image, target, keys)
            twin = None
            if spec is not None and ds is not None:
                twin = explain.eval_copy(shuffled_label_twin(spec, ds)).to(explainer.device())
            similar = trust.map_similarity(explainer.model, twin, image, target, keys) if twin is not None else {}
        done[key] = (steps, corr, similar)
        st.rerun()  # redraw without the button: the results are the answer now
    steps, corr, similar = done[key]
    st.vega_lite_chart(spec=xf.randomisation_chart(steps, corr, labels))
    rows = [{"method": labels[k], "after randomising all layers": corr[k][-1],
             "model trained on shuffled labels": similar.get(k),
             "verdict": "✅ depends on the model" if corr[k][-1] < 0.5 else "⚠️ barely changes: shows the input, "
                                                                            "not the model"} for k in keys]
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in ("after randomising all layers",
                                                                   "model trained on shuffled labels")})
    st.caption("Numbers are rank correlations with the trained model's map (1 = same picture, 0 = unrelated). "
               "Adebayo et al. (2018) found Guided Backprop and similar methods nearly unchanged by this: their "
               "maps look convincing whatever the model learned. Methods that multiply by the input (Input × "
               "Gradient, Integrated Gradients from a black baseline) keep the digit's outline even for a random "
               "network: part of their picture is the input itself, so compare them with Saliency before you "
               "believe them.")


def what_if(explainer: explain.Explainer, image: np.ndarray, target: int, keys: list[str], settings: dict,
            opacity: float, classes: list[str]) -> None:
    """Cover part of the image and watch the prediction and the maps change."""
    _, h, w = image.shape
    c = st.columns(4)
    row = c[0].slider("Patch top", 0, h - 1, h // 3, key="xp_wi_row")
    col = c[1].slider("Patch left", 0, w - 1, w // 3, key="xp_wi_col")
    size = c[2].slider("Patch size", 1, h, max(2, h // 4), key="xp_wi_size")
    fill = c[3].selectbox("Paint with", ["black", "white", "grey"], key=state.kept("xp_wi_fill"))
    edited = image.copy()
    edited[:, row:row + size, col:col + size] = {"black": 0.0, "white": 1.0, "grey": 0.5}[fill]
    before, after = explainer.predict(image[None])[0], explainer.predict(edited[None])[0]
    cols = st.columns(1 + len(keys))
    cols[0].image(xf.picture(edited), width="stretch",
                  caption=f"says {classes[int(after.argmax())]} ({after.max():.0%}); "
                          f"P({classes[target]}) {before[target]:.0%} → {after[target]:.0%}")
    for cc, k in zip(cols[1:], keys):
        res = explainer.explain(edited, target, k, settings.get(k))
        cc.image(xf.overlay(edited, explain.heat(res.attribution), opacity), caption=explain.METHODS[k].label,
                 width="stretch")


def plane(explainer: explain.Explainer, grid_x: np.ndarray, feature_names: list[str], resolution: int,
          target: int | None, key: str, params: dict | None) -> None:
    """For a Playground network: each input feature's attribution at every point of the plane."""
    x = torch.as_tensor(grid_x, dtype=torch.float32, device=explainer.device())
    maps = explain.attribute(explainer.model, x, target, key, params, batch=True).attribution  # one pass
    cols = st.columns(min(len(feature_names), 5))
    scale = float(np.percentile(np.abs(maps), 99)) or 1.0
    for i, name in enumerate(feature_names):
        heat = maps[:, i].reshape(resolution, resolution)
        cols[i % len(cols)].image(figures.map_image(figures.diverging_rgb(heat, scale), 150), caption=name)
