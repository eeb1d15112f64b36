"""The Sequence Lab's charts: data in, Vega-Lite spec out (see charts.py)."""
from __future__ import annotations

import numpy as np

from .charts import lines, num, sized


def step_labels(tokens: list[str]) -> list[str]:
    """Unique x labels for a sequence's steps: "3 · (" (step number and its token)."""
    return [f"{t + 1} · {tok}" for t, tok in enumerate(tokens)]


def state_heatmap(values: np.ndarray, tokens: list[str], title: str, signed: bool = True,
                  unit: int | None = None) -> dict:
    """Units down, time steps across (one column per input token), orange − · white 0 · blue +
    (a gate's 0…1 from white to blue); `unit` is outlined, the one the text is coloured by."""
    steps = step_labels(tokens)
    rows = [{"step": steps[t], "unit": u + 1, "value": num(values[t, u])}
            for t in range(values.shape[0]) for u in range(values.shape[1])]
    scale = ({"domain": [-1, 1], "range": ["#f59322", "#ffffff", "#0877bd"]} if signed
             else {"domain": [0, 1], "range": ["#ffffff", "#0877bd"]})
    enc = {"x": {"field": "step", "type": "ordinal", "sort": steps, "title": "time step · input",
                 "axis": {"labelAngle": -60, "labelOverlap": True}},
           "y": {"field": "unit", "type": "ordinal", "title": "unit", "axis": {"labelOverlap": True}},
           "color": {"field": "value", "type": "quantitative", "scale": scale, "title": None},
           "tooltip": [{"field": "step", "type": "ordinal"}, {"field": "unit", "type": "ordinal"},
                       {"field": "value", "type": "quantitative", "format": ".3f"}]}
    layers = [{"mark": {"type": "rect"}, "encoding": enc}]
    if unit is not None:
        layers.append({"transform": [{"filter": f"datum.unit === {unit + 1}"}],
                       "mark": {"type": "rect", "fill": None, "stroke": "#222", "strokeWidth": 1.5},
                       "encoding": {k: enc[k] for k in ("x", "y")}})
    return sized({"data": {"values": rows}, "layer": layers, "title": title},
                 max(120, min(360, 9 * values.shape[1])))


def gradient_through_time(grads: dict[str, list[float]]) -> dict:
    """Gradient sizes per step on a log scale, one line per series (‖∂L/∂hₜ‖, ‖∂L/∂xₜ‖, ...)."""
    rows = [{"step": t + 1, "run": name, "size": max(num(g) or 0.0, 1e-12)}
            for name, values in grads.items() for t, g in enumerate(values)]
    return lines(rows, "step", "size", "run", x_title="time step (the answer is read after the last)",
                 y_title="gradient size (log)", log=True, height=180, legend="right")


def saturation(shares: dict[str, tuple[float, float]]) -> dict:
    """Per gate, the share of its values fully shut (< 0.05) and fully open (> 0.95)."""
    rows = [{"gate": g, "state": state, "share": num(v)} for g, (shut, open_) in shares.items()
            for state, v in (("shut (< 0.05)", shut), ("open (> 0.95)", open_))]
    return sized({"data": {"values": rows}, "mark": {"type": "bar"},
                  "encoding": {"y": {"field": "gate", "type": "nominal", "title": None},
                               "x": {"field": "share", "type": "quantitative", "axis": {"format": ".0%"},
                                     "scale": {"domain": [0, 1]}, "title": "share of the example's values"},
                               "yOffset": {"field": "state"},
                               "color": {"field": "state", "type": "nominal", "title": None,
                                         "scale": {"range": ["#f59322", "#0877bd"]}}}}, 120)
