"""Every chart the app draws is a valid Vega-Lite spec, and JSON-safe.

The app builds its charts as plain dicts (see ui/charts.py: Altair's validation on every live
tick starved the training thread), so the validation Altair would have done happens here,
against the Vega-Lite schema Altair ships, once per builder."""
import json
from pathlib import Path

import altair
import jsonschema
import numpy as np
import pytest

from dl_core.trust import Curve
from ui import backprop_figures as bf
from ui import charts, figures
from ui import explain_figures as xf
from ui import seq_figures as sf

SCHEMA = json.loads(next(Path(altair.__file__).parent.glob("vegalite/v*/schema/vega-lite-schema.json")).read_text())
EPOCHS = [{"epoch": e, "train_loss": 1 / (e + 1), "test_loss": 1.1 / (e + 1), "train_acc": e / 10,
           "test_acc": None if e == 0 else e / 11} for e in range(5)]
HIST = (np.array([0.5, 0.25, 0.25]), np.array([0.0, 0.3, 0.6, 0.9], np.float32), 0.0)
RELU_HIST = (np.array([0.2, 0.1, 0.1]), np.array([1e3, 1e5, 1e6, 2e6], np.float32), 0.6)

BUILDERS = {
    "hidden states over time": lambda: sf.state_heatmap(np.linspace(-1, 1, 12).reshape(4, 3), list("ab(c"), "h",
                                                        unit=1),
    "a gate over time": lambda: sf.state_heatmap(np.full((2, 2), np.float32(0.5)), ["A", "B"], "forget", signed=False),
    "gradient through time": lambda: sf.gradient_through_time({"LSTM: hₜ": [1e-9, 0.0, 1e-2], "LSTM: xₜ": [1.0, 2, 3]}),
    "gate saturation": lambda: sf.saturation({"forget": (0.1, np.float32(0.6)), "input": (0.0, 1.0)}),
    "a selected step": lambda: sf.state_heatmap(np.zeros((3, 2)), ["x", "'", "z"], "h", unit=0, step=1),
    "token attributions": lambda: sf.attributions(list("abc"), np.array([0.5, -0.2, np.nan]), step=2),
    "token deletion curves": lambda: sf.deletion({"most attributed first": Curve(np.linspace(0, 1, 3), np.array(
        [0.9, 0.2, 0.1]), 0.3), "random order": Curve(np.linspace(0, 1, 3), np.array([0.9, 0.6, 0.1]), 0.5)}),
    "hidden-state trajectory": lambda: sf.trajectory(np.arange(8.0).reshape(4, 2), list("abcd"), [0.7, 0.2], 1),
    "next-character probabilities": lambda: sf.char_probs([" ", "\n", "a", "b"], np.array([0.4, 0.3, 0.2, 0.1])),
    "forecast against persistence": lambda: sf.forecast(np.arange(5.0), np.arange(5.0) + 0.1, np.zeros(5), "value"),
    "race of the cells": lambda: sf.race({"RNN": [{"epoch": 1, "test_acc": 0.3}],
                                          "LSTM": [{"epoch": 1, "test_acc": 0.9}, {"epoch": 2, "test_acc": 1.0}]}),
    "unrolled network": lambda: sf.unrolled(list("ab c") * 10, np.linspace(0, 2, 40), 35),
    "memory horizon": lambda: sf.horizon({("RNN", 10): 1.0, ("RNN", 100): 0.3, ("GRU", 100): 1.0}),
    "loss curves": lambda: figures.epoch_chart(EPOCHS, "loss", "validation"),
    "accuracy curves": lambda: figures.epoch_chart(EPOCHS, "acc", "test"),
    "a trainer's own metrics": lambda: figures.metrics_chart([{"epoch": 0, "step": 0, "time": 1.0, "lr": 0.01,
                                                               "lr_D": 0.01, "fake_mean": np.float32(0.5)}]),
    "each network's loss": lambda: figures.named_losses_chart({"D": [(1, 0.7), (2, 0.6)], "G": [(1, 0.8)]}),
    "gradient sizes (log)": lambda: figures.layer_lines([(1, [1e-3, 0.0]), (2, [np.float32(2e-3), 1e-9])],
                                                        ["layer 1", "layer 2"], "size", log=True),
    "flat share (percent)": lambda: figures.layer_lines([(1, [0.1, 0.5])], ["a", "b"], "flat", percent=True),
    "regression curve": lambda: figures.curve_chart(np.linspace(-6, 6, 5), np.zeros(5),
                                                    (np.ones((3, 1)), np.ones(3)), (np.ones((2, 1)), np.ones(2)),
                                                    True),
    "confusion matrix": lambda: figures.confusion_chart(np.array([[5, 1], [0, np.int64(7)]]), ["cat", "dog"]),
    "bars": lambda: charts.bars(["0", "1"], [np.float32(0.5), 1.0], y_title="accuracy", percent=True),
    "one series": lambda: charts.series_lines(range(3), {"loss": [1.0, float("nan"), 0.5]}, "update", "loss"),
    "several series": lambda: charts.series_lines(range(2), {"a": [1, 2], "b": [2, 1]}, "epoch", "lr"),
    "batch-size spread": lambda: bf.spread_chart({1: np.array([0.1, 0.3]), 8: np.array([0.2])}, 0.2),
    "activation histograms": lambda: bf.histograms_chart([HIST, RELU_HIST], ["layer 2 · Tanh", "layer 4 · ReLU"]),
    "deletion curves": lambda: xf.perturbation_chart({"Saliency": (np.linspace(0, 1, 3), np.array([1, .5, 0])),
                                                      "random order": (np.linspace(0, 1, 3), np.ones(3))}, "Deletion"),
    "sanity checks": lambda: xf.randomisation_chart(["to layer 2", "to layer 1"], {"saliency": [0.4, 0.1]},
                                                    {"saliency": "Saliency"}),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_chart_is_valid_vega_lite_and_plain_json(name):
    spec = BUILDERS[name]()
    text = json.dumps(spec, allow_nan=False)  # numpy scalars, NaN or infinity would fail here (or in the browser)
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_chart_has_a_readable_plot_area_whatever_its_legend(name):
    """An explicit height that is the plot area's own (autosize fit-x: legend, title and axis
    labels are added around it, never taken out of it), at least MIN_PLOT_PX tall; facets size
    each panel and add nothing to squeeze."""
    spec = BUILDERS[name]()
    if "vconcat" in spec:  # small multiples: each panel its own size, nothing added to squeeze them
        panels = [p for row in spec["vconcat"] for p in row["hconcat"]]
        assert all(panel["height"] >= 60 for panel in panels) and spec["autosize"]["type"] == "pad"
        return
    assert spec["autosize"] == {"type": "fit-x", "contains": "padding"}, spec.get("autosize")
    assert isinstance(spec["height"], int) and spec["height"] >= charts.MIN_PLOT_PX


def test_the_validation_really_catches_a_broken_spec():
    spec = figures.epoch_chart(EPOCHS, "loss", "test")
    spec["mark"]["type"] = "squiggle"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, SCHEMA)


def test_gaps_stay_gaps_and_reference_lines_are_dashed():
    rows = charts.series_lines(range(3), {"loss": [1.0, float("nan"), float("inf")]}, "x", "y")["data"]["values"]
    assert [r["y"] for r in rows] == [1.0, None, None]
    spec = BUILDERS["deletion curves"]()
    assert "random order" in spec["encoding"]["strokeDash"]["condition"]["test"]
    assert spec["encoding"]["color"]["scale"]["range"][-1] == "#555555"  # the reference is grey, methods coloured


def test_a_long_legend_names_the_first_middle_and_last_series():
    labels = [f"layer {i}" for i in range(1, 22)]
    spec = figures.layer_lines([(1, [0.1] * 21)], labels, "size", log=True)
    assert spec["encoding"]["color"]["legend"]["values"] == ["layer 1", "layer 11", "layer 21"]
    assert "values" not in figures.layer_lines([(1, [0.1] * 3)], labels[:3], "size")["encoding"]["color"]["legend"]



def test_the_probability_bars_name_every_class():
    """Digits' class names look like numbers: a numeric axis labelled only 0, 2, 4, 6, 8."""
    classes = [str(k) for k in range(10)]
    axis = figures.probability_figure(np.full(10, 0.1), classes).layout.xaxis
    assert axis.type == "category" and list(axis.tickvals) == classes == list(axis.ticktext)


def test_each_activation_histogram_keeps_its_own_range_and_names_the_units_that_are_off():
    """One histogram ran to 2,000,000 (an exploding ReLU layer) and every other layer's shared that
    axis and looked empty: each panel has its own x scale, spanning its own bins."""
    spec = bf.histograms_chart([HIST, RELU_HIST], ["layer 2 · Tanh", "layer 4 · ReLU"])
    panels = [p for row in spec["vconcat"] for p in row["hconcat"]]
    assert spec["resolve"]["scale"]["x"] == "independent" and len(panels) == 2
    assert all(row["resolve"]["scale"]["x"] == "independent" for row in spec["vconcat"])
    first, second = (panel["data"]["values"] for panel in panels)
    assert max(r["to"] for r in first) < 1 and min(r["from"] for r in second) >= 1e3
    assert panels[1]["title"]["text"] == "layer 4 · ReLU · 60% off" and panels[0]["title"]["text"] == "layer 2 · Tanh"


def test_a_loss_that_falls_by_orders_of_magnitude_gets_a_log_axis():
    falling = [{"epoch": e, "train_loss": 10.0 ** -e, "test_loss": 2 * 10.0 ** -e} for e in range(6)]
    assert figures.epoch_chart(falling, "loss", "test")["encoding"]["y"]["scale"]["type"] == "log"
    assert "type" not in figures.epoch_chart(EPOCHS, "loss", "test")["encoding"]["y"]["scale"]  # 0.18 to 1.1: linear


@pytest.mark.parametrize("name", ["loss curves", "confusion matrix", "flat share (percent)"])
def test_a_live_chart_sent_as_arrow_carries_exactly_its_rows(name):
    """charts.arrow (what the live views draw) hands Streamlit the rows as an Arrow table:
    read back, the same rows and columns, and the spec names that table."""
    import pyarrow as pa

    spec = BUILDERS[name]()
    lean = charts.arrow(spec)
    assert lean["data"] == {"name": "rows"} and "values" in spec["data"]  # the original is left alone
    table = pa.ipc.open_stream(lean["datasets"]["rows"]).read_all()
    assert table.to_pylist() == [{k: row.get(k) for k in table.column_names} for row in spec["data"]["values"]]
    assert set(table.column_names) == {k for row in spec["data"]["values"] for k in row}
    jsonschema.validate({k: v for k, v in lean.items() if k != "datasets"} | {"datasets": {"rows": []}}, SCHEMA)


def test_a_live_curve_draws_at_most_its_cap_of_epochs_and_converts_its_rows_once_per_redraw():
    """A long run's view (500 epochs) is thinned to views.CHART_EPOCHS in the chart, keeping the
    first and the latest; the glance and the curves tab share one conversion per redraw."""
    import pyarrow as pa

    from ui import views

    view = {"epochs": [{"epoch": e, "train_loss": 1 / (e + 1), "test_loss": 2 / (e + 1)} for e in range(500)]}
    small, tall = views.epoch_chart(view, "loss", "test", 120), views.epoch_chart(view, "loss", "test", 220)
    rows = pa.ipc.open_stream(small["datasets"]["rows"]).read_all().to_pylist()
    epochs = sorted({r["epoch"] for r in rows})
    assert len(epochs) == views.CHART_EPOCHS and epochs[0] == 0 and epochs[-1] == 499
    assert small["datasets"]["rows"] is tall["datasets"]["rows"] and (small["height"], tall["height"]) == (120, 220)


def test_the_diverging_colours_run_orange_white_blue_and_survive_nan():
    """The look-up ramp agrees with a per-pixel blend to one colour level."""
    values = np.linspace(-2, 2, 401, dtype=np.float32)
    t = np.clip(values / 2, -1, 1)[:, None]
    blend = figures.WHITE + np.where(t < 0, (figures.CLASS_RGB[0] - figures.WHITE) * -t,
                                     (figures.CLASS_RGB[1] - figures.WHITE) * t)
    assert np.abs(figures.diverging_rgb(values).astype(float) - blend).max() <= 1
    ends = figures.diverging_rgb(np.array([-2.0, 0.0, 2.0, np.nan]), 2.0)
    assert ends.tolist() == [list(figures.CLASS_RGB[0]), [255, 255, 255], list(figures.CLASS_RGB[1]), [255, 255, 255]]


def test_a_trainers_own_metrics_are_drawn_whatever_they_are_called():
    """A GAN's epochs carry no train or test loss: its curves show what it does report, never the time."""
    spec = figures.metrics_chart([{"epoch": e, "step": 8 * e, "time": 1e9, "lr": 0.01, "fake_mean": 3 - 1 / (e + 1),
                                   "confusion": [[1]], "flag": True} for e in range(3)])
    assert {r["metric"] for r in spec["data"]["values"]} == {"lr", "fake_mean"}
    assert figures.epoch_chart([{"epoch": 0, "fake_mean": 1.0}], "loss", "test")["data"]["values"] == []


def test_every_name_the_network_picture_draws_has_its_glyphs():
    """Pillow's default font has no ²: the Playground's picture named its inputs "x□" and "y□"."""
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    from dl_core.data.data2d import FEATURES
    from ui import figures

    glyphs = TTFont(figures.FONT).getBestCmap()
    names = [f.label for f in FEATURES.values()] + ["Input", "Output", "Layer 1", "x·y", "σ", "θ"]
    missing = {name: [c for c in name if ord(c) not in glyphs] for name in names}
    assert not any(missing.values()), missing
    picture = figures.network_image([[(f.label, None) for f in FEATURES.values()], [("out", None)]],
                                    [np.zeros((1, len(FEATURES)))], headings=["Input", "Output"])
    assert picture.size == (560, 420)
    assert ImageFont.truetype(figures.FONT, 20).getbbox("²")[2] > 0  # drawn, not a box of nothing
