"""Explainability Lab views: method settings built from the registry, the methods × inputs
grid, GradCAM across depth, and "Can you trust it?" (used by labs/explain.py). Every map and
measure comes through a `Work` (explain_work.py): drawn if it is done, asked for if not."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dl_core import explain, explain_jobs, trust
from dl_core.layerlist import layers_of

from . import explain_figures as xf
from . import explain_work as xw
from . import figures, state, widgets
from .explain_work import Work

ss = st.session_state
ASKED = "xp_asked"  # the sanity checks and robustness measures this session asked for


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


def tunnel_note(keys: list[str], settings: dict, shape: tuple, tunnel: str, tunnel_params: dict) -> None:
    """Say which methods get fewer noisy copies than asked: a map runs at most MAX_MAP_PASSES inputs."""
    cut = []
    for k in keys:
        got = explain_jobs.tunnel_settings(k, settings.get(k), shape, tunnel, tunnel_params).get("nt_samples")
        if got is not None and got < tunnel_params.get("nt_samples", got):
            cut.append(f"{explain.METHODS[k].label} gets {got}")
    if cut:
        st.caption(f"A map runs at most {explain_jobs.MAX_MAP_PASSES:,} inputs through the network, so the noisy "
                   f"copies are cut to fit: {', '.join(cut)}.")


def _waiting(work: Work, col, image: np.ndarray, opacity: float) -> None:
    """The input, greyed, where its map will be."""
    col.image(xf.overlay(image, np.zeros(image.shape[1:]), opacity), width="stretch",
              caption="⏳ computing…" if work.job is not None and work.job.active else "⏳ not computed yet")


def grid(work: Work, inputs: list[tuple[np.ndarray, str]], targets: list[int], keys: list[str],
         settings: dict, layer: int | None, tunnel: str, tunnel_params: dict, sign: str, opacity: float,
         classes: list[str]) -> dict:
    """Rows are inputs, columns are methods; a map not back yet is its input, greyed. Returns
    {(row, key): Result} of the maps that are done, for later sections."""
    results = {}
    head = st.columns([1] + [1] * len(keys))
    head[0].markdown("**Input → prediction**")
    for col, k in zip(head[1:], keys):
        col.markdown(f"**{explain.METHODS[k].label}**", help=explain.METHODS[k].about)
    for r, ((image, caption), target) in enumerate(zip(inputs, targets)):
        probs = work.ex.predict(image[None])[0]
        cols = st.columns([1] + [1] * len(keys))
        cols[0].image(xf.picture(image), caption=f"{caption} · says {classes[int(probs.argmax())]} "
                                                  f"({probs.max():.0%}) · explaining {classes[target]}",
                      width="stretch")
        for col, k in zip(cols[1:], keys):
            res = work.map(image, target, k, settings.get(k), layer, tunnel, tunnel_params)
            if res is None:
                _waiting(work, col, image, opacity)
                continue
            results[(r, k)] = res
            note = f"{res.ms:.0f} ms"
            if res.delta is not None:  # completeness: how far Σ attributions is from the score difference
                note += f" · gap {res.delta / max(abs(float(res.attribution.sum())), 1e-9):.1%} of Σ"
            col.image(xf.overlay(image, explain.heat(res.attribution, sign), opacity), caption=note,
                      width="stretch")
    return results


def gradcam_depth(work: Work, image: np.ndarray, target: int, opacity: float) -> None:
    convs = explain.conv_layers(work.ex.model)
    cols = st.columns(max(len(convs), 1))
    for col, i in zip(cols, convs):
        res = work.map(image, target, "gradcam", layer=i)
        if res is None:
            _waiting(work, col, image, opacity)
            continue
        shape = tuple(layers_of(work.ex.model)[i].weight.shape)
        col.image(xf.overlay(image, explain.heat(res.attribution), opacity),
                  caption=f"layer {i + 1} · {shape[0]} maps")
    st.caption("Early layers see small details (fine, scattered maps); the last one sees whole parts, so its map "
               "is coarse but about the class.")


def _asked(request: tuple, label: str, key: str, **kwargs) -> bool:
    """Whether `request` was asked for by a click on `label`, now or before (this session)."""
    asked = ss.setdefault(ASKED, set())
    if request not in asked and widgets.action(label, key=key, **kwargs):
        asked.add(request)
    return request in asked


def faithfulness(work: Work, image: np.ndarray, target: int, results: dict, keys: list[str],
                 labels: dict[str, str]) -> None:
    """Deletion and insertion curves with their areas, beside a random order, and infidelity."""
    # Asked for once the maps above are all done: a request that grew mid-way would replace the job doing it.
    ask = not work.missing
    if any((0, k) not in results for k in keys):
        st.caption("Appears once the maps above are computed.")
        return
    chance = work.get(explain_jobs.faithfulness_task(image, target, None), ask)
    measured = {k: work.get(explain_jobs.faithfulness_task(image, target, results[(0, k)].attribution), ask)
                for k in keys}
    if chance is None or None in measured.values():
        st.caption("⏳ Deleting and inserting pixels in the order of each map, on the server's training lanes…"
                   if ask else "Appears once the maps above are computed.")
        return
    rows, curves_del, curves_ins = [], {}, {}
    for k, m in measured.items():
        d, i, delta = m["deletion"], m["insertion"], results[(0, k)].delta
        curves_del[labels[k]], curves_ins[labels[k]] = (d.fractions, d.scores), (i.fractions, i.scores)
        rows.append({"method": labels[k], "deletion area ↓": d.area, "insertion area ↑": i.area,
                     "beats random deletion": "✅" if d.area < chance["deletion"].area else "❌",
                     "infidelity ↓": m["infidelity"], "completeness gap δ": "—" if delta is None else f"{delta:.3g}"})
    chance_del, chance_ins = chance["deletion"], chance["insertion"]
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
    request = ("sensitivity", work.ex.version, explain.digest(image), target, tuple(keys))
    if _asked(request, "Measure robustness (captum.metrics.sensitivity_max)", "xp_sensitivity"):
        scores = {k: work.get(explain_jobs.sensitivity_task(image, target, k)) for k in keys}
        if None in scores.values():
            st.caption("⏳ Measuring how much each map moves when the input moves…")
            return
        st.dataframe(pd.DataFrame([{"method": labels[k], "max sensitivity ↓": v} for k, v in scores.items()]),
                     hide_index=True)
        st.caption("How much the map changes, at most, when the input moves by 2 %: lower is steadier.")


def sanity_checks(work: Work, image: np.ndarray, target: int, keys: list[str], labels: dict[str, str],
                  spec, ds) -> None:
    """Adebayo et al.'s two randomisation tests, run on request: the randomised models' maps in the
    session's explanation job, the copy on shuffled labels as a training job of its own."""
    request = ("sanity", work.ex.version, explain.digest(image), target, tuple(keys))
    if not _asked(request, "🧪 Run the sanity checks", "xp_run_sanity", type="primary",
                  help="Randomises the weights layer by layer, and trains a copy on shuffled labels."):
        st.caption("A map that explains the model must change when the model is destroyed.")
        return
    steps = trust.cascade_steps(work.ex.model)
    maps = [work.get(explain_jobs.randomised_task(image, target, tuple(keys), top)) for top in range(len(steps) + 1)]
    similar = {}
    if spec is not None and ds is not None:
        twin = xw.twin(spec, ds)
        xw.twin_progress(twin)
        if twin.status()["state"] == "finished":
            task = explain_jobs.randomised_task(image, target, tuple(keys), 0, net="twin")
            twin_maps = work.get(task)
            if twin_maps is None:
                with twin.lock:  # (taking it loads the weights a worker sent back, if still packed)
                    work.nets["twin"] = twin.model
            elif maps[0] is not None:
                similar = {k: v[0] for k, v in trust.similarity([maps[0], twin_maps]).items()}
    if None in maps:
        st.caption("⏳ Randomising the layers one by one and explaining each model, on the server's training lanes…")
        return
    corr = trust.similarity(maps)
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


def what_if(work: Work, image: np.ndarray, target: int, keys: list[str], settings: dict,
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
    before, after = work.ex.predict(image[None])[0], work.ex.predict(edited[None])[0]
    cols = st.columns(1 + len(keys))
    cols[0].image(xf.picture(edited), width="stretch",
                  caption=f"says {classes[int(after.argmax())]} ({after.max():.0%}); "
                          f"P({classes[target]}) {before[target]:.0%} → {after[target]:.0%}")
    for cc, k in zip(cols[1:], keys):
        res = work.map(edited, target, k, settings.get(k))
        if res is None:
            _waiting(work, cc, edited, opacity)
            continue
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
