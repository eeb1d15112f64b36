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

from ui import backprop_figures as bf
from ui import charts, explain_figures as xf, figures

SCHEMA = json.loads(next(Path(altair.__file__).parent.glob("vegalite/v*/schema/vega-lite-schema.json")).read_text())
EPOCHS = [{"epoch": e, "train_loss": 1 / (e + 1), "test_loss": 1.1 / (e + 1), "train_acc": e / 10,
           "test_acc": None if e == 0 else e / 11} for e in range(5)]
HIST = (np.array([0.5, 0.25, 0.25]), np.array([0.0, 0.3, 0.6, 0.9], np.float32))

BUILDERS = {
    "loss curves": lambda: figures.epoch_chart(EPOCHS, "loss", "validation"),
    "accuracy curves": lambda: figures.epoch_chart(EPOCHS, "acc", "test"),
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
    "activation histograms": lambda: bf.histograms_chart([HIST, HIST], ["layer 2 · ReLU", "layer 4 · ReLU"]),
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

