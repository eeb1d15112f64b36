"""Vega-Lite charts as plain dicts: data in, spec out, drawn with `st.vega_lite_chart(spec)`.

Why not Altair or `st.line_chart`: both build an Altair object and validate it against the
Vega-Lite JSON schema on every call, 50–300 ms of Python per chart on a 2-core machine, all
of it holding the GIL. The live views redraw several charts every half second while the
training thread needs that same GIL: with Altair charts the CNN Lab trained about 8× slower
in the browser than in its benchmark. A dict costs about a millisecond, and Streamlit still
updates the chart in place (no remount, no flicker).
"""
from __future__ import annotations

import math
from typing import Iterable


def num(v) -> float | None:
    """A JSON-safe number: numpy scalars become floats, NaN and infinities become gaps."""
    v = float(v)
    return v if math.isfinite(v) else None


MIN_PLOT_PX = 120  # the smallest plot area a chart may ask for: readable from the back of a room

# The height is the plot area's, whatever the legend, title and axis labels add around it. Under
# Streamlit's default ("fit": all of that inside the height) a legend of four schedules took all
# but about 30 px of a 220 px chart: labels overlapped and titles were clipped.
PLOT_AREA = {"type": "fit-x", "contains": "padding"}


# Tick labels, axis titles and legends at 13 px (Vega's 10–11 px is unreadable on a projector).
READABLE = {"axis": {"labelFontSize": 13, "titleFontSize": 13}, "legend": {"labelFontSize": 13},
            "header": {"labelFontSize": 13}, "title": {"fontSize": 14}}


def sized(spec: dict, height: int) -> dict:
    """`spec` with a plot area `height` px tall (never below MIN_PLOT_PX), the page's width and
    readable text."""
    return spec | {"height": max(MIN_PLOT_PX, int(height)), "autosize": dict(PLOT_AREA), "config": READABLE}


def arrow(spec: dict) -> dict:
    """`spec` with its rows as an Arrow table: what a live view draws every tick. Handed rows,
    st.vega_lite_chart builds a pandas frame and converts that (4.5 ms for 1,500 rows);
    pyarrow straight from the rows takes 0.6 ms, and Streamlit sends named datasets of bytes
    as they are."""
    values = spec.get("data", {}).get("values") if isinstance(spec.get("data"), dict) else None
    if not values:
        return spec
    import pyarrow as pa

    table, sink = pa.Table.from_pylist(values), pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return spec | {"data": {"name": "rows"}, "datasets": {"rows": sink.getvalue().to_pybytes()}}


def _axis(title: str | None, fmt: str | None = None, **extra) -> dict:
    axis = {"title": title, **extra}
    if fmt:
        axis["format"] = fmt
    return axis


def _colour(series: str, colours: dict[str, str] | None, scheme: str | None, legend: str,
            names: list[str]) -> dict:
    """A legend of at most a dozen entries: past that (a 20-layer network) it names the first,
    middle and last series, and the colour scheme's ramp says where the others sit."""
    entries = {"values": [names[0], names[len(names) // 2], names[-1]]} if len(names) > 12 else {}
    colour = {"field": series, "type": "nominal",
              "legend": {"title": None, "orient": legend, "columns": 1 if legend == "right" else 3,
                         "labelLimit": 360, **entries}}  # Vega cuts labels at 160 px: "One-cycle (warm up…"
    if colours:
        colour["scale"] = {"domain": list(colours), "range": list(colours.values())}
        colour["sort"] = list(colours)
    elif scheme:
        colour["scale"] = {"scheme": scheme}
    return colour


def lines(rows: list[dict], x: str, y: str, series: str | None = None, *, x_title: str | None = None,
          y_title: str | None = None, height: int = 220, colours: dict[str, str] | None = None,
          scheme: str | None = None, order: Iterable[str] | None = None, log: bool = False, percent: bool = False,
          y_domain: tuple[float, float] | None = None, points: bool = False, dashed: str | None = None,
          x_nominal: Iterable[str] | None = None, legend: str = "bottom", title: str | None = None) -> dict:
    """One line per `series` value (or a single line). `colours` fixes each series' colour and the
    legend order; `scheme` colours them along a Vega scheme in `order`; `dashed` names one series
    drawn dashed (a reference line); `x_nominal` makes x categorical in that order."""
    x_enc = ({"field": x, "type": "ordinal", "sort": list(x_nominal), "axis": _axis(x_title, labelAngle=0)}
             if x_nominal is not None else {"field": x, "type": "quantitative", "axis": _axis(x_title)})
    y_scale = {"type": "log"} if log else {"zero": True}
    if y_domain is not None:
        y_scale["domain"] = list(y_domain)
    encoding = {"x": x_enc, "y": {"field": y, "type": "quantitative", "scale": y_scale,
                                  "axis": _axis(y_title, ".0%" if percent else None)},
                "tooltip": [{"field": f, "type": t} for f, t in ((series, "nominal"), (x, "quantitative"),
                                                                   (y, "quantitative")) if f]}
    if series:
        names = list(order) if order is not None else list(dict.fromkeys(r[series] for r in rows))
        encoding["color"] = _colour(series, colours, scheme, legend, names)
        if order is not None and not colours:
            encoding["color"]["sort"] = list(order)
    if dashed:
        encoding["strokeDash"] = {"condition": {"test": f"datum[{series!r}] === {dashed!r}", "value": [5, 4]},
                                  "value": [1, 0]}
    spec = sized({"data": {"values": rows}, "mark": {"type": "line", "point": points, "clip": y_domain is not None},
                  "encoding": encoding}, height)
    if title:
        spec["title"] = title
    return spec


def bars(labels: list[str], values: list[float], *, x_title: str | None = None, y_title: str | None = None,
         height: int = 200, percent: bool = False, base: float | None = None) -> dict:
    """One bar per label, in the given order. `base`: bars rise from there instead of from 0 (a log
    scale's values are negative below 1: from 0 they would hang down, the longest bar the smallest)."""
    rows = [{"label": str(k), "value": num(v)} for k, v in zip(labels, values)]
    y = {"field": "value", "type": "quantitative", "axis": _axis(y_title, ".0%" if percent else None)}
    encoding = {"x": {"field": "label", "type": "ordinal", "sort": [str(k) for k in labels],
                      "axis": _axis(x_title, labelAngle=0)}, "y": y,
                "tooltip": [{"field": "label", "type": "nominal"}, {"field": "value", "type": "quantitative",
                                                                    "format": ".1%" if percent else ".3g"}]}
    if base is not None:
        y["scale"] = {"zero": False, "domainMin": base}
        encoding["y2"] = {"datum": base}
    return sized({"data": {"values": rows}, "mark": {"type": "bar"}, "encoding": encoding}, height)


def layered(*specs: dict, height: int = 220) -> dict:
    """Several specs on shared axes (each keeps its own data)."""
    return sized({"layer": [{k: v for k, v in s.items() if k not in ("height", "autosize")} for s in specs]}, height)


def series_lines(x, series: dict[str, Iterable[float]], x_title: str, y_title: str, **options) -> dict:
    """Lines over a shared x, one per entry of `series` (what `st.line_chart` draws from a
    DataFrame); with one entry, no legend."""
    rows = [{"x": num(xv), "y": num(v), "series": name} for name, values in series.items()
            for xv, v in zip(x, values)]
    return lines(rows, "x", "y", "series" if len(series) > 1 else None, x_title=x_title, y_title=y_title,
                 order=list(series), **options)
