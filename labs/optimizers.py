"""Optimizers: paths on 2-D loss surfaces, then learning rate, schedule, batch size and the loss
landscape of a real network."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dl_core import landscape, playground, surfaces, tuning
from dl_core.data import data2d
from dl_core.engine import TrainingJob
from dl_core.optim import OPTIMIZERS, SCHEDULES
from ui import backprop_figures as bf
from ui import charts, shell, state, widgets

ss = st.session_state


@st.cache_data(show_spinner=False, max_entries=32)
def paths(surface: str, keys: tuple[str, ...], settings: tuple, rates: tuple[float, float], steps: int,
          start: tuple) -> dict[str, np.ndarray]:
    """Each optimizer's path; `rates`: (SGD family, adaptive family) learning rates."""
    return {surfaces.OPTIMIZERS[k].label: surfaces.trajectory(
        surface, k, dict(settings) | {"lr": rates[k in surfaces.ADAPTIVE]}, steps, start) for k in keys}


@st.cache_data(show_spinner=False)
def contour(surface: str):
    return surfaces.grid(surface)


def real_setup() -> tuple[playground.Setup, str]:
    """The learner's Playground set-up when there is one, else the Playground's default network on
    data chosen here: the spiral first, because on the easy circle every schedule and batch size
    ends at the same loss and there is nothing to compare."""
    pg = next(iter(shell.networks("points")), None)
    if pg is not None:
        return pg.extra["setup"], "your Playground network"
    names = [k for k, v in data2d.DATASETS.items() if not v.curve]
    name = st.columns([1, 3])[0].selectbox("Data", names, names.index("spiral"),
                                           format_func=lambda k: data2d.DATASETS[k].label,
                                           key=state.kept("opt_real_data"),
                                           help="Train a network in the Playground and this page uses yours.")
    return playground.Setup(dataset=name, seed=widgets.seed()), "the Playground's default network"


def compare_chart(result: dict | None) -> None:
    if result:
        n = max(len(r["test_loss"]) for r in result.values())
        st.vega_lite_chart(spec=charts.series_lines(range(n), {k: r["test_loss"] for k, r in result.items()},
                                                    "epoch", "test loss", height=220))
        st.dataframe(pd.DataFrame([{"run": k, "updates": r["updates"], "seconds": round(r["seconds"], 2),
                                    "final test loss": r["test_loss"][-1], "best on the way": min(r["test_loss"])}
                                   for k, r in result.items()]), hide_index=True)
        st.caption("A final loss well above the best on the way means the run kept bouncing instead of settling.")


def fresh_job(setup: playground.Setup, **changes) -> TrainingJob:
    """A new network for `setup` with these training settings; it trains on the server's executor."""
    return playground.make_job(replace(setup, train=replace(setup.train, **changes)))[0]


@st.cache_data(show_spinner=False, max_entries=16)
def range_test(setup: playground.Setup, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rates, losses) of Smith's test, once per set-up: its 100 steps would rerun on every click."""
    job = fresh_job(setup)  # a fresh network each time, never a live one
    optimizer = OPTIMIZERS[setup.train.optimizer]
    return tuning.lr_range_test(job.model, job.data.x_train, job.data.y_train, job.trainer.loss_fn, seed=seed,
                                optimizer=lambda ps: optimizer.make(ps, setup.train.optimizer_settings()))


widgets.keep_alive()
st.title("🏔️ Optimizers")
st.caption("Gradient descent walks downhill. How it walks — step size, momentum, per-weight scaling — decides "
           "whether it zig-zags, crawls, overshoots or arrives. Every path below is `torch.optim` itself.")

st.markdown("#### 1 · Race the optimizers on a surface")
c = st.columns([1.2, 2.5])
surface = c[0].selectbox("Surface", list(surfaces.SURFACES), format_func=lambda k: surfaces.SURFACES[k].label,
                         key=state.kept("opt_surface"))
keys = c[1].multiselect("Optimizers", list(surfaces.OPTIMIZERS), ["sgd", "momentum", "adam"],
                        format_func=lambda k: surfaces.OPTIMIZERS[k].label, key=state.kept("opt_keys"))
surf = surfaces.SURFACES[surface]
st.caption(surf.about)
s = [*st.columns(3), *st.columns(4)]  # two rows: rates and steps, then each optimizer's own settings
RATES = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
rates = (s[0].select_slider("Learning rate: SGD, momentum, Nesterov", RATES, surf.lr,
                            key=state.kept(f"opt_lr_{surface}"),
                            help="Plain and momentum SGD step by the rate times the slope: "
                                 "steep walls need a small rate."),
         s[1].select_slider("Learning rate: Adam, RMSprop, Adagrad", RATES, surf.adaptive_lr,
                            key=state.kept(f"opt_alr_{surface}"),
                            help="Adaptive optimizers step by about the rate whatever the slope: flat floors need a "
                                 "larger one. No single rate is fair to both families; each surface starts with a "
                                 "pair under which the race shows its lesson."))
steps = s[2].slider("Steps", 10, 1000, surf.steps, 10, key=state.kept(f"opt_steps_{surface}"))
momentum = s[3].slider("Momentum", 0.0, 0.99, 0.9, 0.01, key=state.kept("opt_momentum"))
beta1 = s[4].slider("β₁ (Adam)", 0.0, 0.99, 0.9, 0.01, key=state.kept("opt_beta1"))
beta2 = s[5].select_slider("β₂ (Adam, RMSprop)", [0.9, 0.99, 0.999], 0.999, key=state.kept("opt_beta2"))
decay = s[6].select_slider("Weight decay (AdamW)", [0.0, 0.01, 0.1], 0.01, key=state.kept("opt_decay"))
g = st.columns(3)
start = (g[0].slider("Start x", *map(float, surf.x_range), float(surf.start[0]), key=state.kept(f"opt_sx_{surface}")),
         g[1].slider("Start y", *map(float, surf.y_range), float(surf.start[1]), key=state.kept(f"opt_sy_{surface}")))
settings = (("momentum", momentum), ("beta1", beta1), ("beta2", beta2), ("weight_decay", decay))
runs = paths(surface, tuple(keys), settings, rates, steps, start)
upto = g[2].slider("Show the paths up to step", 0, steps, steps, key="opt_upto",
                   help="Drag to replay the race step by step.")
st.plotly_chart(bf.surface_figure(*contour(surface), runs, upto, surf.minima, surf.log_colour), key="opt_fig")
if runs:
    st.dataframe(pd.DataFrame([{"optimizer": k, "loss at the end": p[min(upto, len(p) - 1), 2],
                                "stopped early (diverged)": len(p) < steps + 1} for k, p in runs.items()]),
                 hide_index=True)
    if set(surfaces.ADAPTIVE) & set(keys):
        st.caption("Adam, AdamW, RMSprop and Adagrad scale every step to about the learning rate, however steep or "
                   "flat the slope, so they get a rate of their own: on a wide surface they need a larger one than "
                   "SGD to arrive in time.")
with st.expander("💡 Why momentum helps"):
    st.markdown(
        "Plain gradient descent takes a step along the current slope: **w ← w − η·g**. In a long narrow valley the "
        "slope points mostly *across* the valley, so it bounces from wall to wall and creeps along the floor.\n\n"
        "Momentum keeps a running velocity: **v ← μ·v + g**, **w ← w − η·v**. Across the valley the pushes "
        "alternate in sign and cancel; along it they all agree and add up — up to 1/(1 − μ) times larger (10× "
        "for μ = 0.9). It is a heavy ball rolling downhill rather than a hiker who only looks at their feet. "
        "Too much momentum and the ball overshoots the minimum and swings around it.\n\n"
        "Adam and RMSprop instead divide each weight's step by a running size of its own gradients, so steep "
        "and shallow directions advance at similar speeds.")

st.markdown("#### 2 · On a real network")
setup, who = real_setup()
st.caption(f"Using {who} ({setup.dataset} data).")
t = st.tabs(["Learning-rate range test", "Schedules", "Batch size"])
with t[0]:
    rates, losses = range_test(setup, widgets.seed())
    optimizer = OPTIMIZERS[setup.train.optimizer]
    best = tuning.suggested_lr(rates, losses)
    top = 1.2 * max(losses[0], 4 * losses.min())  # the last, blown-up points would flatten the rest
    st.vega_lite_chart(spec=charts.series_lines(np.log10(rates), {"loss": losses}, "log₁₀ learning rate",
                                                "smoothed loss", height=240, y_domain=(0, top)))
    how = (f"{optimizer.label}, one batch per rate, "
           f"rising ×{(rates[-1] / rates[0]) ** (1 / max(len(rates) - 1, 1)):.2f}"
           " each step (Smith, 2017). ")
    if best is None:
        st.caption(how + "**No clear minimum:** the loss never falls well below where it started, so this test has "
                   "no rate to suggest. Try another optimizer or network, or pick a rate by training.")
    else:
        st.caption(how + f"The loss is lowest near {rates[np.argmin(losses)]:.2g}, at the edge of where training turns "
                   f"unstable; a tenth of it, **{best:.2g}**, is the usual safe choice. Where the curve turns up, "
                   "training blows up.")
with t[1]:
    epochs = st.slider("Epochs", 5, 100, 30, key=state.kept("opt_sched_epochs"))
    base_lr = st.select_slider("Peak learning rate", [0.001, 0.003, 0.01, 0.03, 0.1, 0.3], 0.1,
                              key=state.kept("opt_sched_lr"),
                              help="High on purpose: a constant large rate keeps bouncing, a schedule settles.")
    curves = {SCHEDULES[k].label: tuning.schedule_curve(k, base_lr, epochs) for k in SCHEDULES}
    st.vega_lite_chart(spec=charts.series_lines(range(epochs), curves, "epoch", "learning rate", height=240))
    st.caption("Large steps early cover ground; small steps late settle into a minimum. One-cycle also warms up "
               "first, which keeps the early, chaotic updates small. The CNN Lab applies these same schedulers.")
    if widgets.action("Train with each schedule", key="opt_sched_run"):
        ss[state.OPT_SCHEDULES] = tuning.compare_runs(
            lambda cfg: fresh_job(setup, **{f: getattr(cfg, f) for f in ("lr", "schedule", "max_epochs")}),
            {SCHEDULES[k].label: replace(setup.train, lr=base_lr, schedule=k, max_epochs=epochs) for k in SCHEDULES})
    compare_chart(ss.get(state.OPT_SCHEDULES))
with t[2]:
    st.caption("Same network, same start, 10 epochs each. Small batches take many cheap, noisy steps; large "
               "batches take few, accurate ones.")
    if widgets.action("Run the comparison", key="opt_batch_run"):
        ss[state.OPT_BATCH] = tuning.compare_runs(
            lambda cfg: fresh_job(setup, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs),
            {f"batch {b}": replace(setup.train, batch_size=b, max_epochs=10) for b in (1, 8, 32, 256)})
    compare_chart(ss.get(state.OPT_BATCH))

st.markdown("#### 3 · The loss landscape around the trained weights")
st.caption("The loss of a network along directions in its weight space (Li et al., 2018): a copy of the network "
           "is trained here epoch by epoch, then the loss is measured around where it ended.")
d = st.columns([1.3, 1, 1])
kind = d[0].radio("Directions", ["random (filter-normalised)", "the training path's own (PCA)"],
                  key=state.kept("opt_dirs"))
span = d[1].select_slider("How far", [0.25, 0.5, 1.0, 2.0], 1.0, key=state.kept("opt_span"))
land_epochs = d[2].slider("Training epochs", 5, 60, 20, key=state.kept("opt_land_epochs"))
if widgets.action("Compute the landscape", key="opt_land_run", type="primary"):
    job = fresh_job(setup)
    path = tuning.epoch_path(job, land_epochs)
    final = {k: v.detach() for k, v in job.model.named_parameters()}
    coords = explained = None
    if kind.startswith("random"):
        d1, d2 = landscape.random_direction(job.model, widgets.seed()), landscape.random_direction(job.model,
                                                                                                 widgets.seed() + 1)
    else:
        d1, d2, coords, explained = landscape.pca_directions(path, final)
        span = max(span, float(np.abs(coords).max()) * 1.2)
    x, y = job.data.x_train, job.data.y_train
    alphas, one_d = landscape.loss_surface(job.model, x, y, job.trainer.loss_fn, d1, None, span)
    _, two_d = landscape.loss_surface(job.model, x, y, job.trainer.loss_fn, d1, d2, span)
    ss[state.OPT_LANDSCAPE] = (alphas, one_d, two_d, coords, explained, kind)
shown = ss.get(state.OPT_LANDSCAPE)
if shown:
    alphas, one_d, two_d, coords, explained, used = shown
    g = st.columns([1, 1.6])
    g[0].vega_lite_chart(spec=charts.series_lines(alphas, {"loss": one_d}, "α along direction 1",
                                                  "training loss", height=300))
    g[1].plotly_chart(bf.landscape_figure(alphas, two_d, coords), key="opt_land_fig")
    if coords is not None:
        st.caption(f"These two directions capture {explained:.0%} of how the weights moved; the white line is the "
                   "path, epoch by epoch, ending at the star.")
    else:
        st.caption("Random directions in a space of many weights are almost at right angles to the path training "
                   "took, so the path is not drawn here: choose the PCA directions to see it.")
