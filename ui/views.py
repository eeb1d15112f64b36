"""Live views of a Playground job, drawn from one snapshot (used inside the page's fragment)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from dl_core.data.data2d import DATASETS, FEATURES, Dataset2D, feature_matrix, make_dataset
from dl_core.engine.records import downsample
from dl_core.probes import grid_points

from . import charts, counters, figures, widgets
from .counters import Counter

MAX_NEURON_IMAGES = 96  # past this the diagram shows connections only
CHART_EPOCHS = 200  # the most epochs a live curve draws


@st.cache_data(show_spinner=False, max_entries=64)
def _feature_maps(features: tuple[str, ...], resolution: int, curve: bool) -> list[np.ndarray]:
    cols = feature_matrix(grid_points(resolution, curve), features)
    shape = (resolution,) if curve else (resolution, resolution)
    return [figures.diverging_rgb(c.reshape(shape)) for c in cols.T]


@st.cache_data(show_spinner=False)
def dataset_thumbnails(seed: int) -> tuple[list, list[str]]:
    """A small picture of every registered dataset, for the picker's preview."""
    images, captions = [], []
    for key, info in DATASETS.items():
        ds = make_dataset(key, 200, 0.0, 0.5, seed)
        scale = output_scale(ds)
        blank = np.full((8, 8, 3), 255, np.uint8)
        images.append(figures.map_image(blank, 72, ds.points, figures.point_colors(ds.targets, ds.task, scale),
                                        ["white"] * len(ds.points)))
        captions.append(info.label.replace(" (regression)", "*"))
    return images, captions


@st.cache_resource(show_spinner=False, max_entries=64)
def click_figure(points: np.ndarray, colors: np.ndarray):
    """The clickable plane for adding points, built once per set of points for the whole server
    (every learner on the default data shares one: a plotly figure costs a first page load)."""
    return figures.click_figure(points, colors)


def output_scale(ds: Dataset2D) -> float:
    return float(np.abs(ds.targets).max()) if ds.task == "regression" else 1.0


def _network_picture(snap: dict, spec, ds: Dataset2D, resolution: int, discretize: bool) -> tuple:
    """The diagram's columns (label, picture per neuron), the weights between them and its height."""
    n_neurons = sum(len(n) for n in snap["neurons"])
    show = n_neurons <= MAX_NEURON_IMAGES
    img = figures.node_picture if show else lambda rgb: None
    cols = [[(FEATURES[f].label, img(m)) for f, m in zip(spec.input_names, _feature_maps(spec.input_names,
                                                                                          resolution, ds.curve))]]
    for li, layer in enumerate(snap["neurons"], 1):
        maps = np.asarray(layer, np.float32)  # a layer's maps coloured at once, each on its own scale
        rgbs = figures.diverging_rgb(maps, np.abs(maps).max(axis=tuple(range(1, maps.ndim)), keepdims=True))
        cols.append([(f"hidden layer {li} · neuron {ni + 1}", img(rgb)) for ni, rgb in enumerate(rgbs)])
    out = snap["output"]
    n_out = snap["weights"][-1].shape[0]
    if n_out == 1 or (out.ndim <= 2 and n_out == 2):
        cols.append([("output", figures.node_picture(figures.output_rgb(out, ds.task, discretize, output_scale(ds))))])
        weights = snap["weights"][:-1] + [snap["weights"][-1][-1:] if n_out == 2 else snap["weights"][-1]]
        if n_out == 2:  # two logits; their difference decides, so draw class 1's weights
            weights[-1] = snap["weights"][-1][1:] - snap["weights"][-1][:1]
    else:
        cols.append([(f"P(class {k})", figures.node_picture(figures.class_rgb(out[..., k], k)))
                     for k in range(n_out)])
        weights = snap["weights"]
    tallest = max(len(c) for c in cols)
    headings = ["inputs", *[f"hidden {li}" for li in range(1, len(cols) - 1)], "output"]
    return cols, weights, int(min(900, max(320, 60 + 84 * (tallest + 0.2)))), headings  # square tiles at 720 px


def network_diagram(snap: dict, spec, ds: Dataset2D, resolution: int, discretize: bool):
    """The network diagram as a picture (PIL)."""
    cols, weights, height, headings = _network_picture(snap, spec, ds, resolution, discretize)
    return figures.network_image(cols, weights, height, 720, headings)


def _network_version(snap: dict, discretize: bool) -> tuple:
    """What the network picture depends on: network() and pictures_ahead() must name it alike."""
    return id(snap), discretize


def _output_version(snap: dict, discretize: bool, show_test: bool) -> tuple:
    """What the output map depends on: output() and pictures_ahead() must name it alike."""
    return id(snap), discretize, show_test


def pictures_ahead(job, spec, ds: Dataset2D, resolution: int, discretize: bool, show_test: bool) -> tuple[str, str]:
    """Have each new snapshot of `job` drawn as network() and output() draw it, as it arrives
    (widgets.picture_ahead); the keys to hand them."""
    keys = f"{job.uid}:network", f"{job.uid}:output"

    def ahead(snap: dict) -> None:
        widgets.picture_ahead(keys[0], _network_version(snap, discretize),
                              lambda: network_diagram(snap, spec, ds, resolution, discretize), keep=snap)
        if not ds.curve:
            widgets.picture_ahead(keys[1], _output_version(snap, discretize, show_test),
                                  lambda: output_map(snap, ds, show_test, discretize), keep=snap)

    job.on_snapshot = ahead
    return keys


def network(snap: dict, spec, ds: Dataset2D, resolution: int, discretize: bool, live: bool,
            ahead: str | None = None) -> None:
    """The network diagram: inputs, every hidden neuron and the output, each with its map. A
    picture, built once per snapshot (a plotly diagram cost most of a first page load, which
    a room of 30 pays 30 times), or ahead of the redraw (pictures_ahead); paused, the learner can
    switch to an interactive chart."""
    interactive = not live and st.toggle("Read the weights (hover the connections)", key="pg_network_hover")
    if interactive:
        st.plotly_chart(figures.network_figure(*_network_picture(snap, spec, ds, resolution, discretize)[:3]),
                        key="pg_network", config={"displayModeBar": False})
    else:
        widgets.picture("pg_network", _network_version(snap, discretize),
                        lambda: network_diagram(snap, spec, ds, resolution, discretize), ahead=ahead, width="stretch")
    n_neurons = sum(len(n) for n in snap["neurons"])
    if n_neurons > MAX_NEURON_IMAGES:
        st.caption(f"{n_neurons} neurons: too many to draw each one's picture; hover connections for weights.")


def output_map(snap: dict, ds: Dataset2D, show_test: bool, discretize: bool):
    """The output map with the data on it, as a picture (PIL)."""
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    scale = output_scale(ds)
    pts, tg, rings = xtr, ytr, ["white"] * len(xtr)
    if show_test:
        pts, tg, rings = np.concatenate([xtr, xte]), np.concatenate([ytr, yte]), rings + ["black"] * len(xte)
    return figures.map_image(figures.output_rgb(snap["output"], ds.task, discretize, scale), 360, pts,
                             figures.point_colors(tg, ds.task, scale), rings)


def output(snap: dict, ds: Dataset2D, show_test: bool, discretize: bool, ahead: str | None = None) -> None:
    """The output map with the data on it (or, for curve data, the fitted function); `ahead` as
    for network()."""
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    if ds.curve:
        xs = grid_points(len(snap["output"]), curve=True)[:, 0]
        chart = figures.curve_chart(xs, snap["output"], (xtr, ytr), (xte, yte), show_test)
        st.vega_lite_chart(spec=charts.arrow(chart))
        st.caption("Dots: the data · orange line: the function the network has learned so far.")
        return
    widgets.picture("pg_output", _output_version(snap, discretize, show_test),
                    lambda: output_map(snap, ds, show_test, discretize), ahead=ahead, width=360)
    legend = ("orange → class 0, blue → class 1" if ds.n_classes == 2 else
              "colour = most likely class, paler = less sure") if ds.task == "classification" else \
        "orange = negative, blue = positive target"
    st.caption(f"Square from −6 to 6 on both axes · {legend} · "
               f"dots: training points{' (white ring), test points (black ring)' if show_test else ''}.")


def confusion(counts, classes: list[str], held_out: str | None = None) -> None:
    """A held-out set's confusion matrix; `held_out` names it and when it was counted."""
    title = f"{held_out}: true vs predicted" if held_out else "Test set: true vs predicted"
    st.vega_lite_chart(spec=charts.arrow(figures.confusion_chart(counts, classes, title)))


def epoch_chart(view: dict, metric: str, held_out: str, height: int) -> dict:
    """This tick's epoch chart of `metric`: at most CHART_EPOCHS epochs (a curve 700 px wide shows
    no more; 500 sent 70 KB a redraw), its rows converted once per view (the glance and the curves
    tab draw the same loss rows at two heights)."""
    memo = view.setdefault("charts", {})
    if (metric, held_out) not in memo:
        memo[metric, held_out] = charts.arrow(figures.epoch_chart(downsample(view["epochs"], CHART_EPOCHS),
                                                                  metric, held_out))
    return charts.sized(memo[metric, held_out], height)


def loss_glance(view: dict, held_out: str = "test") -> None:
    """The loss curve, small, beside the live pictures: on a projected 1440×900 screen the curves
    tab starts below the fold, and a class should see the loss fall while the map changes."""
    if len(view["epochs"]) >= 2:
        st.vega_lite_chart(spec=epoch_chart(view, "loss", held_out, 120))


def curves(view: dict, task: str, held_out: str = "test") -> None:
    """Loss (and accuracy) per epoch; `held_out` names the set the job checks against."""
    epochs = view["epochs"]
    if len(epochs) < 2:
        st.caption("Train for an epoch to start the loss and accuracy curves.")
        return
    if view.get("named_steps"):  # several losses, one per network: each its own line
        st.markdown("**Each network's loss**, step by step")
        st.vega_lite_chart(spec=charts.arrow(figures.named_losses_chart(view["named_steps"])))
    if not any(e.get("train_loss") is not None or e.get("test_loss") is not None for e in epochs):
        st.markdown("**What the trainer measures**, epoch by epoch")  # no train/test loss to draw
        st.vega_lite_chart(spec=charts.arrow(figures.metrics_chart(epochs)))
        return
    st.markdown("**Loss** (lower is better)")
    st.vega_lite_chart(spec=epoch_chart(view, "loss", held_out, 220))
    if task == "classification":
        st.markdown("**Accuracy**")
        st.vega_lite_chart(spec=epoch_chart(view, "acc", held_out, 200))


def loss_text(v: float | None) -> str:
    """A loss in at most six characters, so a metric never cuts it ("1.93e…"): 0.123, 0.0012, 6e-05, 5e+06."""
    if v is None:
        return "—"
    if v >= 1e4 or v < 0.001:
        return f"{v:.0e}"
    return f"{v:.3g}" if v >= 0.01 else f"{v:.2g}"


def counter_values(task: str) -> counters.Values:
    """A training lab's usual counters, for shell.live: epoch, step, the losses and
    (classification) the accuracy. The losses and accuracy are measured once per epoch, so a single ⏭ Step moves
    only the step counter and its batch's loss: both shown."""
    def values(job) -> list[Counter]:
        status = job.status()
        rows, step = job.latest()
        last = rows[-1] if rows else {}
        shown = [Counter("Epoch", f"{status['epoch']:,}", help="Passes over the whole training set so far."),
                 Counter("Step", f"{status['step']:,}",
                         f"batch loss {step[1]:.2g}" if step and step[0] == status["step"] else None,
                         "Gradient steps so far: one batch each, one update of every weight. Below it, the "
                         "loss of the latest step's batch."),
                 Counter("Train loss", loss_text(last.get("train_loss")), help="Measured at the end of each epoch."),
                 Counter("Test loss", loss_text(last.get("test_loss")), help="Measured at the end of each epoch.")]
        if task == "classification":
            acc = last.get("test_acc")
            shown.append(Counter("Test accuracy", "—" if acc is None else f"{acc:.0%}",
                                 help="Measured at the end of each epoch."))
        return shown

    return values


def layer_stats(view: dict, job) -> None:
    """Gradient sizes and activation health per layer over training (both labs use this)."""
    grads, acts = st.tabs(["Gradient size", "Activations"])
    with grads:
        if view["grad_norms"]:
            st.vega_lite_chart(spec=charts.arrow(figures.layer_lines(view["grad_norms"], job.gradient_labels,
                                                        "‖∂loss/∂W‖ (log scale)", log=True)))
        st.caption("The first layer is nearest the input. If its line sits far below the last layer's, gradients "
                   "vanish on the way back and the early layers barely learn.")
    with acts:
        if not job.activation_labels:
            st.caption("This network has no activation layers to watch.")
            return
        if view["activations"]:
            flat = [(s, [a[2] for a in per]) for s, per in view["activations"]]
            spread = [(s, [a[1] for a in per]) for s, per in view["activations"]]
            for rows, title, percent in ((flat, "flat units", True), (spread, "spread of outputs (std)", False)):
                st.vega_lite_chart(spec=charts.arrow(figures.layer_lines(rows, job.activation_labels, title,
                                                                         percent=percent)))
        st.caption("Flat units pass (almost) no gradient back: a ReLU stuck at 0 for its inputs is dead, a sigmoid "
                   "or tanh pinned at its limits is saturated. A high line here explains a low line under Gradient "
                   "size. The spread shows whether signals shrink or blow up with depth.")
