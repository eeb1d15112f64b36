"""Pure figure builders for the backpropagation and optimization labs (data in, figure out)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dl_core import surfaces

from .charts import layered, num
from .figures import CLASS_HEX

_KIND_COLOUR = {"input": "#e8eef4", "sum": "#fdebd3", "act": "#d6e9f7", "loss": "#f4d6d6"}


def graph_figure(trace, known: set[str], grads_known: set[str], current: str | None) -> go.Figure:
    """The computational graph: one box per node with its value (once the forward pass has
    reached it) and its gradient ∂L/∂node (once the backward pass has); the current node is
    outlined in red. Edges carry their weight on hover."""
    nodes = trace.nodes
    cols = max(n.column for n in nodes.values()) + 1
    rows_in = {c: max(n.row for n in nodes.values() if n.column == c) + 1 for c in range(cols)}
    pos = {k: (n.column, (rows_in[n.column] - 1) / 2 - n.row) for k, n in nodes.items()}
    fig = go.Figure()
    ex, ey, hx, hy, htext = [], [], [], [], []
    for a, b, pname in trace.edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ex += [x0, x1, None]
        ey += [y0, y1, None]
        if pname:
            name, idx = pname.split("[")
            j, i = map(int, idx[:-1].split(","))
            w = trace.params[name][j, i]
            g = trace.grads[name][j, i] if b in grads_known else None
            hx.append(x0 + 0.55 * (x1 - x0))
            hy.append(y0 + 0.55 * (y1 - y0))
            htext.append(f"w = {w:.4f}" + (f"<br>∂L/∂w = {g:.4f}" if g is not None else ""))
    fig.add_scatter(x=ex, y=ey, mode="lines", line=dict(color="#b0b8c0", width=1), hoverinfo="skip",
                    showlegend=False)
    fig.add_scatter(x=hx, y=hy, mode="markers", marker=dict(size=7, color="rgba(0,0,0,0.15)"), text=htext,
                    hoverinfo="text", showlegend=False)
    for k, n in nodes.items():
        x, y = pos[k]
        value = f"{n.value:.3f}" if k in known or n.kind == "input" else "?"
        grad = f"{n.grad:.3f}" if k in grads_known else "·"
        fig.add_annotation(x=x, y=y, text=f"<b>{n.short}</b><br>{value}<br><span style='color:#c0392b'>"
                                          f"∇ {grad}</span>", showarrow=False, align="center",
                           bgcolor=_KIND_COLOUR[n.kind], bordercolor="#c0392b" if k == current else "#8896a5",
                           borderwidth=3 if k == current else 1, borderpad=5, font=dict(size=18))
    rows = max(rows_in.values())
    half = (rows - 1) / 2 + 0.55  # the boxes' extent and room for their three lines: no empty band below
    fig.update_layout(height=60 + 125 * rows, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      xaxis=dict(visible=False, range=[-0.5, cols - 0.5]),
                      yaxis=dict(visible=False, range=[-half, half]),
                      hoverlabel=dict(font_size=16))
    return fig


def spread_chart(spread: dict[int, np.ndarray], full: float) -> dict:
    """Mini-batch gradient estimates of one weight per batch size, with the full-batch value."""
    rows = [{"batch size": str(b), "estimate": num(v)} for b, vals in spread.items() for v in vals.ravel()]
    ticks = {"data": {"values": rows}, "mark": {"type": "tick", "opacity": 0.35, "thickness": 2}, "encoding": {
        "x": {"field": "estimate", "type": "quantitative", "title": "gradient estimate for this weight"},
        "y": {"field": "batch size", "type": "ordinal", "sort": [str(b) for b in spread], "title": "batch size"}}}
    rule = {"data": {"values": [{"full": num(full)}]}, "mark": {"type": "rule", "color": CLASS_HEX[0],
                                                                "strokeWidth": 2},
            "encoding": {"x": {"field": "full", "type": "quantitative"}}}
    return layered(ticks, rule, height=40 * len(spread) + 40)


# One fixed look per optimizer (whichever others are chosen), readable on the blue contours;
# the close relatives (Nesterov of momentum, AdamW of Adam) are dashed so overlapping paths show.
PATH_STYLE = {surfaces.OPTIMIZERS[k].label: style for k, style in {
    "sgd": ("#ff7f0e", "solid"), "momentum": ("#ff4fd8", "solid"), "nesterov": ("#d62728", "dash"),
    "rmsprop": ("#f1c40f", "solid"), "adagrad": ("#ffffff", "solid"), "adam": ("#2ecc71", "solid"),
    "adamw": ("#111111", "dash")}.items()}


def surface_figure(xs, ys, zs, paths: dict[str, np.ndarray], upto: int, minima, log_colour: bool) -> go.Figure:
    """Contours of a 2-D loss with every optimizer's path up to step `upto`."""
    z = np.log1p(zs - zs.min()) if log_colour else zs
    fig = go.Figure(go.Contour(x=xs, y=ys, z=z, ncontours=30, colorscale="Blues", reversescale=True,
                               showscale=False, contours=dict(showlines=False), hoverinfo="skip"))
    for name, path in paths.items():
        p = path[:upto + 1]
        colour, dash = PATH_STYLE.get(name, ("#ffffff", "solid"))
        fig.add_scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", name=name,
                        line=dict(color=colour, width=2.5, dash=dash),
                        marker=dict(size=4), hovertemplate=name + ": (%{x:.3f}, %{y:.3f})<extra></extra>")
    fig.add_scatter(x=[m[0] for m in minima], y=[m[1] for m in minima], mode="markers", name="minimum",
                    marker=dict(symbol="star", size=14, color="gold", line=dict(color="black", width=1)))
    # ▶ replays the race in the browser (no reruns): one frame per few steps, paths growing
    ticks = sorted(set(np.linspace(0, upto, min(upto, 60) + 1).astype(int)))
    fig.frames = [go.Frame(name=str(k), traces=list(range(1, len(paths) + 1)),
                           data=[go.Scatter(x=p[:k + 1, 0], y=p[:k + 1, 1]) for p in paths.values()]) for k in ticks]
    fig.update_layout(height=500, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.08),
                      xaxis=dict(range=[xs[0], xs[-1]]), yaxis=dict(range=[ys[0], ys[-1]]),
                      updatemenus=[dict(type="buttons", x=0.0, y=1.0, xanchor="left", yanchor="top", buttons=[
                          dict(label="▶ Replay", method="animate", args=[None, dict(
                              frame=dict(duration=60, redraw=True), transition=dict(duration=0),
                              fromcurrent=False, mode="immediate")])])])
    return fig


def landscape_figure(alphas, surface, path_xy: np.ndarray | None) -> go.Figure:
    fig = go.Figure(go.Contour(x=alphas, y=alphas, z=np.log10(surface + 1e-6), ncontours=30, colorscale="Viridis",
                               colorbar=dict(title="log₁₀ loss"), hovertemplate="α %{x:.2f}, β %{y:.2f}<br>"
                               "log₁₀ loss %{z:.2f}<extra></extra>"))
    if path_xy is not None:
        fig.add_scatter(x=path_xy[:, 0], y=path_xy[:, 1], mode="lines+markers", name="training path",
                        line=dict(color="white", width=2), marker=dict(size=5, color="white"))
    fig.add_scatter(x=[0], y=[0], mode="markers", name="trained weights", marker=dict(symbol="star", size=14,
                                                                                      color="red"))
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.1),
                      xaxis_title="α (direction 1)", yaxis_title="β (direction 2)")
    return fig


def histograms_chart(hists: list[tuple], labels: list[str], columns: int = 2) -> dict:
    """One small histogram per activation layer (share of outputs per bin), each on its own x range
    (a facet shared one range, so every layer's axis ran to the largest layer's millions and the
    rest looked empty); a layer with outputs exactly 0 (ReLUs that are off) says their share in its
    title. Bars span their bins exactly (x to x2)."""
    panels = []
    for (counts, edges, *off), label in zip(hists, labels):
        title = f"{label} · {off[0]:.0%} off" if off and off[0] else label
        rows = [{"from": num(lo), "to": num(hi), "share": num(c)} for c, lo, hi in zip(counts, edges[:-1], edges[1:])]
        big = max(abs(float(edges[0])), abs(float(edges[-1]))) >= 1e4  # 2M, not 2000000; 0.5, not 500m
        panels.append({"data": {"values": rows}, "title": {"text": title, "fontSize": 13, "fontWeight": "normal"},
                       "mark": {"type": "rect", "color": CLASS_HEX[1], "opacity": 0.85}, "width": 190, "height": 80,
                       "encoding": {
                           "x": {"field": "from", "type": "quantitative", "title": None,
                                 "scale": {"zero": False, "nice": False},
                                 "axis": {"tickCount": 4, "format": ".2~s" if big else ".2~g", "labelFontSize": 12}},
                           "x2": {"field": "to"}, "y2": {"datum": 0},
                           "y": {"field": "share", "type": "quantitative", "title": None,
                                 "axis": {"format": "%", "tickCount": 3, "labelFontSize": 12}},
                           "tooltip": [{"field": "from", "type": "quantitative", "format": ".3g"},
                                       {"field": "to", "type": "quantitative", "format": ".3g"},
                                       {"field": "share", "type": "quantitative", "format": ".1%"}]}})
    rows = [{"hconcat": panels[i:i + columns], "resolve": {"scale": {"x": "independent"}}}
            for i in range(0, len(panels), columns)]
    return {"vconcat": rows, "autosize": {"type": "pad", "contains": "padding"},
            "resolve": {"scale": {"x": "independent"}}}
