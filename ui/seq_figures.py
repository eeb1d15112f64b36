"""The Sequence Lab's charts: data in, Vega-Lite spec out (see charts.py)."""
from __future__ import annotations

import numpy as np

from .charts import bars, lines, num, series_lines, sized

CELL_COLOURS = {"RNN": "#f59322", "LSTM": "#0877bd", "GRU": "#2ca02c"}  # the same cell, the same colour everywhere
WHOLE = {"format": "d", "tickMinStep": 1}  # an axis of steps or lags: whole numbers, never "1.5"


def step_labels(tokens: list[str]) -> list[str]:
    """Unique x labels for a sequence's steps: "3 · (" (step number and its token)."""
    return [f"{t + 1} · {tok}" for t, tok in enumerate(tokens)]


def state_heatmap(values: np.ndarray, tokens: list[str], title: str, signed: bool = True,
                  unit: int | None = None, step: int | None = None) -> dict:
    """Units down, time steps across (one column per input token), orange − · white 0 · blue +
    (a gate's 0…1 from white to blue); `unit` is outlined, the one the text is coloured by, and
    `step`'s column framed, the step selected everywhere on the page."""
    steps = step_labels(tokens)
    rows = [{"step": steps[t], "unit": u + 1, "value": num(values[t, u])}
            for t in range(values.shape[0]) for u in range(values.shape[1])]
    # rgb: Vega's default (hcl) runs white to blue through cyan and orange to white through yellow
    scale = ({"domain": [-1, 1], "range": ["#f59322", "#ffffff", "#0877bd"], "interpolate": "rgb"} if signed
             else {"domain": [0, 1], "range": ["#ffffff", "#0877bd"], "interpolate": "rgb"})
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
    if step is not None:
        layers.append({"transform": [{"filter": f"datum.step === {steps[step]!r}"}],
                       "mark": {"type": "rect", "fill": None, "stroke": "#d62728", "strokeWidth": 2},
                       "encoding": {k: enc[k] for k in ("x", "y")}})
    return sized({"data": {"values": rows}, "layer": layers, "title": title},
                 max(120, min(360, 9 * values.shape[1])))


def gradient_through_time(grads: dict[str, list[float]], colours: dict[str, str] | None = None) -> dict:
    """Gradient sizes per step on a log scale, one line per series (‖∂L/∂hₜ‖, ‖∂L/∂xₜ‖, ...)."""
    rows = [{"step": t + 1, "run": name, "size": max(num(g) or 0.0, 1e-12)}
            for name, values in grads.items() for t, g in enumerate(values)]
    spec = lines(rows, "step", "size", "run", x_title="time step (the answer is read after the last)",
                 y_title="gradient size (log)", log=True, height=180, legend="right", colours=colours)
    spec["encoding"]["x"]["axis"] |= WHOLE
    return spec


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


def attributions(tokens: list[str], scores: np.ndarray, step: int | None = None) -> dict:
    """Each step's share of the answer (Integrated Gradients): blue for, orange against."""
    steps = step_labels(tokens)
    rows = [{"step": steps[t], "score": num(v), "sign": "for the answer" if v >= 0 else "against",
             "chosen": t == step} for t, v in enumerate(scores)]
    return sized({"data": {"values": rows}, "mark": {"type": "bar"},
                  "encoding": {"x": {"field": "step", "type": "ordinal", "sort": steps, "title": "time step · input",
                                     "axis": {"labelAngle": -60, "labelOverlap": True}},
                               "y": {"field": "score", "type": "quantitative", "title": "attribution"},
                               "color": {"field": "sign", "type": "nominal", "title": None,
                                         "scale": {"domain": ["for the answer", "against"],
                                                   "range": ["#0877bd", "#f59322"]}},
                               "stroke": {"condition": {"test": "datum.chosen", "value": "#d62728"}, "value": None},
                               "strokeWidth": {"value": 2},
                               "tooltip": [{"field": "step"}, {"field": "score", "format": ".4f"}]}}, 160)


def deletion(curves: dict) -> dict:
    """The answer's probability as steps are blanked, in attribution order and at random."""
    first = next(iter(curves.values()))
    return series_lines(first.fractions, {f"{k} (area {c.area:.2f})": c.scores for k, c in curves.items()},
                        "share of steps blanked", "probability of the answer", height=160, percent=False,
                        y_domain=(0, 1), legend="right")


def trajectory(xy: np.ndarray, tokens: list[str], share, step: int | None = None) -> dict:
    """The hidden state's path through the sequence on its two main axes, each point a step."""
    steps = step_labels(tokens)
    rows = [{"a": num(a), "b": num(b), "step": steps[t], "order": t, "chosen": t == step}
            for t, (a, b) in enumerate(xy)]
    enc = {"x": {"field": "a", "type": "quantitative", "title": f"main axis 1 ({share[0]:.0%} of the variance)"},
           "y": {"field": "b", "type": "quantitative",
                 "title": f"axis 2 ({share[1]:.0%})" if len(share) > 1 else "axis 2"},
           "order": {"field": "order", "type": "quantitative"}}
    return sized({"data": {"values": rows}, "layer": [
        {"mark": {"type": "line", "color": "#9aa5b1"}, "encoding": enc},
        {"mark": {"type": "circle", "size": 60},
         "encoding": enc | {"color": {"field": "order", "type": "quantitative", "title": "step",
                                      "scale": {"scheme": "viridis"}},
                            "tooltip": [{"field": "step"}]}},
        {"transform": [{"filter": "datum.chosen"}], "mark": {"type": "circle", "size": 260, "fill": None,
                                                           "stroke": "#d62728", "strokeWidth": 2.5}, "encoding": enc},
    ]}, 260)


def char_probs(chars: list[str], probs: np.ndarray, top: int = 12) -> dict:
    """The likeliest next characters and their probabilities (a space shown as ␣)."""
    order = np.argsort(-probs, kind="stable")[:top]
    shown = [{" ": "␣", "\n": "⏎"}.get(chars[k], chars[k]) for k in order]
    spec = bars(shown, [float(probs[k]) for k in order], x_title="next character", y_title="probability",
                height=160, percent=True)
    spec["encoding"]["y"]["axis"]["tickMinStep"] = 0.01  # whole percents: no "1%, 1%" from rounding
    return spec


def forecast(actual: np.ndarray, predicted: np.ndarray, naive: np.ndarray, what: str, changes: bool = False) -> dict:
    """The held-out future: what happened, what the network forecast, and persistence (the last
    value again; for a series of changes, no change)."""
    x = list(range(1, len(actual) + 1))
    naive_name = "persistence (no change)" if changes else "persistence (same as the last value)"
    return series_lines(x, {"what happened": actual, "the network's forecast": predicted, naive_name: naive},
                        "held-out step (oldest to latest)", what, height=220, legend="bottom",
                        colours={"what happened": "#222222", "the network's forecast": "#0877bd",
                                 naive_name: "#f59322"}, dashed=naive_name)


def race(histories: dict[str, list[dict]], key: str = "test_acc") -> dict:
    """Held-out accuracy (or loss) per epoch, one line per cell type, with points: two cells at
    100 % lie on one line, and the points still show both."""
    rows = [{"epoch": e["epoch"], "acc": num(e[key]), "cell": cell}
            for cell, epochs in histories.items() for e in epochs if key in e]
    acc = key.endswith("acc")
    return lines(rows, "epoch", "acc", "cell", x_title="epoch", y_title="test accuracy" if acc else "test loss",
                 percent=acc, y_domain=(0, 1.05) if acc else None, colours=CELL_COLOURS, height=200,
                 legend="right", points=True)


def horizon(points: dict[tuple[str, int], float]) -> dict:
    """The memory horizon: best test accuracy per lag, one line per cell type."""
    rows = [{"lag": lag, "acc": num(acc), "cell": cell} for (cell, lag), acc in sorted(points.items(),
                                                                                      key=lambda kv: kv[0][1])]
    spec = lines(rows, "lag", "acc", "cell", x_title="lag (steps back)", y_title="best test accuracy",
                 percent=True, y_domain=(0, 1), colours=CELL_COLOURS, points=True, height=200, legend="right")
    spec["encoding"]["x"]["axis"] |= WHOLE
    return spec


def unrolled(tokens: list[str], sizes: np.ndarray, step: int, window: int = 24) -> dict:
    """The network unrolled over (a window of) the steps: each step's input below its copy of the
    cell, the memory passed right from copy to copy, the cell shaded by the size of its state
    ‖hₜ‖. A click on a cell selects that step (the chart's `pick` selection)."""
    start = max(0, min(step - window // 2, len(tokens) - window))
    shown = range(start, min(len(tokens), start + window))
    top = float(max(sizes.max(), 1e-9))
    rows = [{"t": t + 1, "x0": t + 0.65, "x1": t + 1.35, "next": t + 1.65 if t + 1 < len(tokens) else None,
             "token": {" ": "␣", "\n": "⏎"}.get(tokens[t], tokens[t][:6]), "size": num(sizes[t] / top),
             "chosen": t == step} for t in shown]
    xs = {"type": "quantitative", "axis": None, "scale": {"domain": [start + 0.5, shown[-1] + 1.5]}}
    ys = {"type": "quantitative", "axis": None, "scale": {"domain": [0, 2.6]}}
    at_step = {"x": {"field": "t", **xs}}
    layers = [
        {"transform": [{"filter": "datum.next != null"}],  # the memory, passed on to the next copy
         "mark": {"type": "rule", "color": "#9aa5b1", "strokeWidth": 2},
         "encoding": {"x": {"field": "x1", **xs}, "x2": {"field": "next"}, "y": {"datum": 1.5, **ys}}},
        {"mark": {"type": "rule", "color": "#9aa5b1"},  # each input into its step
         "encoding": at_step | {"y": {"datum": 0.55, **ys}, "y2": {"datum": 1.0}}},
        {"params": [{"name": "pick", "select": {"type": "point", "fields": ["t"], "on": "click"}}],
         "mark": {"type": "rect", "cornerRadius": 4, "cursor": "pointer"},
         "encoding": {"x": {"field": "x0", **xs}, "x2": {"field": "x1"}, "y": {"datum": 1.0, **ys},
                      "y2": {"datum": 2.0},
                      "color": {"field": "size", "type": "quantitative", "legend": None,
                                "scale": {"domain": [0, 1], "range": ["#ffffff", "#0877bd"], "interpolate": "rgb"}},
                      "stroke": {"condition": {"test": "datum.chosen", "value": "#d62728"}, "value": "#555"},
                      "strokeWidth": {"condition": {"test": "datum.chosen", "value": 3}, "value": 1},
                      "tooltip": [{"field": "t", "title": "step"}, {"field": "token", "title": "input"}]}},
        {"mark": {"type": "text", "fontSize": 16, "baseline": "middle"},
         "encoding": at_step | {"y": {"datum": 0.3, **ys}, "text": {"field": "token"}}},
        {"mark": {"type": "text", "fontSize": 11, "color": "#555", "baseline": "middle"},
         "encoding": at_step | {"y": {"datum": 2.3, **ys}, "text": {"field": "t"}}},
    ]
    return sized({"data": {"values": rows}, "layer": layers,
                  "title": f"Unrolled: steps {shown[0] + 1}–{shown[-1] + 1} of {len(tokens)} (click a step)"}, 130)
