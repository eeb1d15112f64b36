"""Pure figure builders: data in, image, Vega-Lite spec or plotly figure out (no Streamlit here).

Live maps are RGB images: Streamlit updates an image in place, where a plotly
chart is re-created in the browser on every change (see ../shared/NOTES.md),
and colouring a 40×40 grid costs well under a millisecond. Colours follow
TensorFlow Playground: orange for negative / class 0, blue for positive /
class 1, then further class colours.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from .charts import layered, lines, num, sized

# DejaVu Sans, which matplotlib's wheel ships (captum needs matplotlib): it has every glyph the
# pictures draw (x², y², x·y, Greek). Pillow's default font drew x² as "x□".
FONT = str(Path(find_spec("matplotlib").origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")

CLASS_RGB = np.array([(245, 147, 34), (8, 119, 189), (46, 160, 67), (148, 103, 189),
                      (214, 39, 40), (140, 86, 75), (227, 119, 194), (127, 127, 127)], float)
CLASS_HEX = ["#%02x%02x%02x" % tuple(int(c) for c in rgb) for rgb in CLASS_RGB]
WHITE = np.array([255.0, 255.0, 255.0])


_RAMP = np.linspace(-1, 1, 511)[:, None]  # orange (−1) · white (0) · blue (+1), in steps of 1/255
_DIVERGING = np.rint(WHITE + np.where(_RAMP < 0, (CLASS_RGB[0] - WHITE) * -_RAMP,
                                     (CLASS_RGB[1] - WHITE) * _RAMP)).astype(np.uint8)


def diverging_rgb(values: np.ndarray, scale=None) -> np.ndarray:
    """Map values to orange (−) · white (0) · blue (+); `scale` is the |value| of full colour:
    one number, or one per map (an array that broadcasts, e.g. a whole layer's maps at once).
    A look-up in a 511-step ramp: 5× faster than blending each pixel, and live pictures colour
    every neuron's map at each snapshot."""
    values = np.asarray(values, np.float32)
    scale = np.abs(values).max() if scale is None else np.asarray(scale, np.float32)
    t = np.nan_to_num(np.clip(values / np.where(scale == 0, 1, scale), -1, 1))
    return _DIVERGING[np.rint((t + 1) * 255).astype(np.intp)]


def output_rgb(output: np.ndarray, task: str, discretize: bool = False, scale: float = 1.0) -> np.ndarray:
    """Colour the network's output map: P(class 1), class probabilities (…, K), or a value."""
    if task == "regression":
        return diverging_rgb(np.sign(output) if discretize else output, scale)
    if output.ndim == 2 or (output.ndim == 1):  # two classes: P(class 1)
        p = (output > 0.5).astype(float) if discretize else output
        return diverging_rgb(2 * p - 1, 1.0)
    k = output.shape[-1]
    if discretize:
        return CLASS_RGB[output.argmax(-1)].astype(np.uint8)
    mixed = output @ CLASS_RGB[:k]
    confidence = ((output.max(-1) - 1 / k) / (1 - 1 / k))[..., None]
    return (WHITE + (mixed - WHITE) * confidence).astype(np.uint8)


def class_rgb(prob: np.ndarray, k: int) -> np.ndarray:
    """One class's probability map: white (0) to that class's colour (1)."""
    return (WHITE + (CLASS_RGB[k] - WHITE) * np.clip(prob, 0, 1)[..., None]).astype(np.uint8)


def as_square(rgb: np.ndarray) -> np.ndarray:
    """A 1-D strip (curve data) becomes a square image with vertical bands."""
    return np.repeat(rgb[None], rgb.shape[0], 0) if rgb.ndim == 2 else rgb


def node_picture(rgb: np.ndarray) -> Image.Image:
    """A map as a picture at its own resolution: the network drawing scales it once, into its box."""
    return Image.fromarray(as_square(rgb))


def map_image(rgb: np.ndarray, size: int, points: np.ndarray | None = None, colors: np.ndarray | None = None,
              outlines: np.ndarray | None = None, domain: float = 6.0) -> Image.Image:
    """Upscale a map smoothly and draw data points on it (white ring: train, black: test)."""
    img = Image.fromarray(as_square(rgb)).resize((size, size), Image.BILINEAR)
    if points is not None and len(points):
        draw = ImageDraw.Draw(img)
        px = (points[:, 0] + domain) / (2 * domain) * size
        py = (domain - points[:, 1]) / (2 * domain) * size
        r = max(2, size // 110)
        for x, y, fill, ring in zip(px, py, colors, outlines):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in fill), outline=ring, width=1)
    return img


def point_colors(targets: np.ndarray, task: str, scale: float = 1.0) -> np.ndarray:
    if task == "classification":
        return CLASS_RGB[targets].astype(np.uint8)
    return diverging_rgb(targets, scale)


def curve_chart(xs, pred, train, test, show_test: bool) -> dict:
    """Curve data: the points and the network's function y = f(x) (a Vega-Lite spec, which
    Streamlit updates in place while training; a plotly chart would remount)."""
    rows = [{"x": num(x), "y": num(y), "set": "train"} for x, y in zip(train[0][:, 0], train[1])]
    if show_test:
        rows += [{"x": num(x), "y": num(y), "set": "test"} for x, y in zip(test[0][:, 0], test[1])]
    points = {"data": {"values": rows}, "mark": {"type": "circle", "size": 30}, "encoding": {
        "x": {"field": "x", "type": "quantitative", "scale": {"domain": [-6, 6]}},
        "y": {"field": "y", "type": "quantitative"},
        "color": {"field": "set", "type": "nominal", "legend": {"title": None},
                  "scale": {"domain": ["train", "test"], "range": [CLASS_HEX[1], "#9ecae1"]}}}}
    line = {"data": {"values": [{"x": num(x), "y": num(y)} for x, y in zip(xs, pred)]},
            "mark": {"type": "line", "color": CLASS_HEX[0], "strokeWidth": 3},
            "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}}}
    return layered(points, line, height=360)


def epoch_chart(epochs: list[dict], metric: str, held_out: str, height: int = 190) -> dict:
    """Train and held-out `metric` ("loss" or "acc") per epoch, blue and orange."""
    rows = [{"epoch": e["epoch"], "set": name, metric: num(e[f"{prefix}_{metric}"])}
            for e in epochs for prefix, name in (("train", "train"), ("test", held_out))
            if e.get(f"{prefix}_{metric}") is not None]
    values = [r[metric] for r in rows if r[metric] is not None]
    # A long run's loss falls by orders of magnitude: on a linear axis everything after the first
    # few epochs is a flat line at 0. Past a 100-fold range, a log axis keeps the late epochs readable.
    log = metric == "loss" and bool(values) and min(values) > 0 and max(values) / min(values) > 100
    spec = lines(rows, "epoch", metric, "set", x_title="epoch", y_title="log scale" if log else None, height=height,
                 colours={"train": CLASS_HEX[1], held_out: CLASS_HEX[0]}, percent=metric == "acc",
                 y_domain=(0, 1) if metric == "acc" else None, legend="right", log=log, points=len(epochs) < 3)
    spec["encoding"]["x"]["axis"]["tickMinStep"] = 1  # whole epochs (one epoch drew 0.0, 0.1, … 1.0)
    if metric == "loss":
        spec["encoding"]["y"]["axis"]["format"] = ".3~g"  # 0.25, 1.2e+8 (not 120,000,000)
    return spec


NOT_METRICS = ("epoch", "step", "time", "confusion")  # what an epoch row carries besides its measurements


def metrics_chart(epochs: list[dict], height: int = 220) -> dict:
    """Every number a trainer reports per epoch, one line each (a trainer with no train and test
    loss, such as a GAN's, still gets its curves); the rates under "lr"."""
    rows = [{"epoch": e["epoch"], "metric": k, "value": num(v)} for e in epochs for k, v in e.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return lines(rows, "epoch", "value", "metric", x_title="epoch", height=height, scheme="tableau10",
                 legend="right", points=len(epochs) < 3)


def named_losses_chart(named: dict[str, list], height: int = 220) -> dict:
    """Each of a trainer's named step losses (a GAN's D and G) per step."""
    rows = [{"step": s, "loss": name, "value": num(v)} for name, series in named.items() for s, v in series]
    return lines(rows, "step", "value", "loss", x_title="step", height=height, scheme="tableau10", legend="right")


def click_figure(points: np.ndarray, colors: np.ndarray, grid_n: int = 31, domain: float = 6.0) -> go.Figure:
    """The data, plus an invisible grid of clickable spots: clicking anywhere selects the
    nearest spot, and the page adds a point there."""
    axis = np.linspace(-domain, domain, grid_n)
    gx, gy = np.meshgrid(axis, axis)
    fig = go.Figure()
    fig.add_scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", hoverinfo="none", showlegend=False,
                    marker=dict(size=14, color="rgba(0,0,0,0)"))
    fig.add_scatter(x=points[:, 0], y=points[:, 1], mode="markers", hoverinfo="skip", showlegend=False,
                    marker=dict(size=6, color=["rgb(%d,%d,%d)" % tuple(c) for c in colors]))
    fig.update_xaxes(range=[-domain - 0.3, domain + 0.3], zeroline=False, fixedrange=True)
    fig.update_yaxes(range=[-domain - 0.3, domain + 0.3], zeroline=False, fixedrange=True, scaleanchor="x")
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=0, b=0), clickmode="event+select", dragmode=False,
                      plot_bgcolor="#fafafa")
    return fig


def _geometry(columns, height: int, width_px: int):
    """Shared layout of the network drawing: node centres in data units (x = layer,
    y = neuron, centred), the units' size in pixels and the picture half-sizes."""
    tallest = max(len(c) for c in columns)
    pos = [[(li, (len(col) - 1) / 2 - ni) for ni in range(len(col))] for li, col in enumerate(columns)]
    unit_x, unit_y = width_px / (len(columns) + 0.2), height / (tallest + 0.2)
    side = min(0.7 * unit_y, 0.45 * unit_x)  # node pictures stay square
    return pos, tallest, unit_x, unit_y, side


def _connections(columns, weights, pos):
    """Every edge as (x0, y0, x1, y1, value, hover text)."""
    for li, w in enumerate(weights):
        for j, (x1, y1) in enumerate(pos[li + 1]):
            for i, (x0, y0) in enumerate(pos[li]):
                v = float(w[j, i])
                yield x0, y0, x1, y1, v, f"{columns[li][i][0]} → {columns[li + 1][j][0]}: weight {v:+.3f}"


def _style(v: float, wmax: float) -> tuple[int, int]:
    """(colour index, width bucket 0–4) of an edge: sign picks the colour, size the width."""
    return int(v >= 0), min(4, int(abs(v) / wmax * 5))


def _wmax(weights) -> float:
    return max((float(np.abs(w).max()) for w in weights if w.size), default=1.0) or 1.0


def network_image(columns: list[list[tuple[str, Image.Image | None]]], weights: list[np.ndarray],
                  height: int = 420, width_px: int = 560, headings: list[str] | None = None) -> Image.Image:
    """The network as a picture: updates in place while training (no hover). Each column has its
    heading on top and each input its name on its left (x, y, x², …), in letters a 24th of the
    picture's width: about 20 px at the size the page shows it, readable on a projector."""
    font = ImageFont.truetype(FONT, size=max(12, width_px // 27))
    band = int(font.size * 1.8) if headings else 0  # the headings' strip
    margin = int(max(font.getlength(name) for name, _ in columns[0])) + font.size // 2  # the inputs' names
    pos, tallest, ux, uy, side = _geometry(columns, height - band, width_px - margin)
    px = lambda x, y: (margin + (x + 0.6) * ux, band + (tallest / 2 + 0.1 - y) * uy)  # noqa: E731
    img = Image.new("RGB", (width_px, height), "white")
    draw = ImageDraw.Draw(img)
    wmax = _wmax(weights)
    for x0, y0, x1, y1, v, _ in sorted(_connections(columns, weights, pos), key=lambda e: abs(e[4])):
        colour, bucket = _style(v, wmax)
        opacity = 0.35 + 0.13 * bucket
        rgb = tuple(int(c) for c in WHITE + (CLASS_RGB[colour] - WHITE) * opacity)
        (a, b), (c, d) = px(x0, y0), px(x1, y1)
        draw.line([(a + side / 2, b), (c - side / 2, d)], fill=rgb, width=1 + bucket)
    for li, col in enumerate(columns):
        if headings:
            draw.text((px(li, 0)[0], band / 2), headings[li], fill=(60, 60, 60), font=font, anchor="mm")
        for (name, node), (x, y) in zip(col, pos[li]):
            cx, cy = px(x, y)
            box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
            if node is not None:
                img.paste(node.resize((box[2] - box[0], box[3] - box[1])), box[:2])
            draw.rectangle(box, outline=(187, 187, 187))
            if li == 0:
                draw.text((box[0] - font.size // 4, cy), name, fill=(40, 40, 40), font=font, anchor="rm")
    return img


def network_figure(columns: list[list[tuple[str, Image.Image | None]]], weights: list[np.ndarray],
                   height: int = 420, width_px: int = 560) -> go.Figure:
    """The same drawing as network_image, interactive: hovering an edge's midpoint
    shows its weight, hovering a node names it."""
    pos, tallest, ux, uy, side = _geometry(columns, height, width_px)
    half, half_y = side / ux / 2, side / uy / 2
    fig = go.Figure()
    wmax = _wmax(weights)
    hx, hy, htext = [], [], []
    buckets: dict[tuple[int, int], tuple[list, list]] = {}
    for x0, y0, x1, y1, v, text in _connections(columns, weights, pos):
        xs, ys = buckets.setdefault(_style(v, wmax), ([], []))
        xs += [x0 + half, x1 - half, None]
        ys += [y0, y1, None]
        hx.append((x0 + x1) / 2)
        hy.append((y0 + y1) / 2)
        htext.append(text)
    for (positive, b), (xs, ys) in sorted(buckets.items()):
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                        line=dict(color=CLASS_HEX[positive], width=1 + b), opacity=0.35 + 0.13 * b)
    fig.add_scatter(x=hx, y=hy, mode="markers", text=htext, hoverinfo="text", showlegend=False,
                    marker=dict(size=7, color="rgba(0,0,0,0)"))
    labels_x, labels_y, labels = [], [], []
    for li, col in enumerate(columns):
        for (name, img), (x, y) in zip(col, pos[li]):
            if img is not None:
                fig.add_layout_image(source=img, x=x - half, y=y + half_y, sizex=2 * half, sizey=2 * half_y,
                                     xref="x", yref="y", layer="above", sizing="stretch")
            labels_x.append(x)
            labels_y.append(y)
            labels.append(name)
    fig.add_scatter(x=labels_x, y=labels_y, mode="markers", text=labels, hoverinfo="text", showlegend=False,
                    marker=dict(size=side, symbol="square", color="rgba(0,0,0,0)", line=dict(color="#bbb", width=1)))
    fig.update_xaxes(visible=False, range=[-0.6, len(columns) - 0.4])
    fig.update_yaxes(visible=False, range=[-tallest / 2 - 0.1, tallest / 2 + 0.1])
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), plot_bgcolor="white", dragmode=False)
    return fig


def confusion_chart(counts: np.ndarray, names: list[str], title: str = "Test set: true vs predicted") -> dict:
    """True class down, predicted across, darker = more; each cell labelled with its count. A
    Vega-Lite spec, so it updates in place while training (a plotly heatmap remounted each tick)."""
    names = [str(n) for n in names]
    top = max(int(np.max(counts)), 1) if np.size(counts) else 1
    rows = [{"true": names[i], "predicted": names[j], "count": int(counts[i][j]), "dark": int(counts[i][j]) > top / 2}
            for i in range(len(names)) for j in range(len(names))]
    x = {"field": "predicted", "type": "ordinal", "sort": names, "axis": {"labelAngle": 0, "labelOverlap": False}}
    y = {"field": "true", "type": "ordinal", "sort": names, "title": "true class", "axis": {"labelOverlap": False}}
    cells = {"mark": {"type": "rect"}, "encoding": {
        "x": x, "y": y, "color": {"field": "count", "type": "quantitative", "legend": None,
                                  "scale": {"range": ["#ffffff", "#084a86"], "domain": [0, top], "interpolate": "rgb"}},
        "tooltip": [{"field": "true", "type": "ordinal"}, {"field": "predicted", "type": "ordinal"},
                    {"field": "count", "type": "quantitative"}]}}
    labels = {"mark": {"type": "text", "fontSize": 11}, "encoding": {
        "x": x, "y": y, "text": {"field": "count", "type": "quantitative"},
        "color": {"condition": {"test": "datum.dark", "value": "white"}, "value": "#333333"}}}
    return sized({"data": {"values": rows}, "layer": [cells, labels], "title": title}, 300)


def layer_lines(series: list[tuple[int, list[float]]], labels: list[str], y_title: str, log: bool = False,
                percent: bool = False) -> dict:
    """One line per layer over training steps. Colours run along viridis from the first layer to
    the last; on a log scale a zero is drawn at 1e-12 (a gap would hide a dead layer)."""
    rows = [{"step": step, "layer": label, "value": max(num(v) or 0.0, 1e-12) if log else num(v)}
            for step, values in series for label, v in zip(labels, values)]
    return lines(rows, "step", "value", "layer", x_title="step", y_title=y_title, height=240, scheme="viridis",
                 order=labels, log=log, percent=percent, legend="right", points=len(series) < 3)  # one: a dot


def tile(images: np.ndarray, columns: int, scale: int, gap: int = 2) -> Image.Image:
    """(N, C, H, W) values in [0, 1] (C = 1 or 3) as one grid picture, pixels enlarged `scale`×."""
    n, c, h, w = images.shape
    rows = max(1, -(-n // columns))
    canvas = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for i, img in enumerate(images):
        rgb = np.repeat(img, 3, 0) if c == 1 else img[:3]
        r, q = divmod(i, columns)
        canvas[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = \
            (np.clip(rgb, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)
    return Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)


def normalise_each(maps: np.ndarray) -> np.ndarray:
    """Stretch each map to [0, 1] on its own, so weak and strong channels are both visible."""
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(1)[:, None, None], flat.max(1)[:, None, None]
    return (maps - lo) / np.where(hi - lo > 1e-12, hi - lo, 1)


def feature_map_image(maps: np.ndarray, width_px: int = 640, columns: int = 8) -> Image.Image:
    """One layer's output: each channel a grey tile (bright = strongly active), `columns` a row and
    as large as `width_px` allows (about 130 px each at 1100: readable across a classroom)."""
    c, h, w = maps.shape
    columns = min(c, columns)
    scale = max(1, min(24, width_px // (columns * (w + 2))))
    return tile(normalise_each(maps)[:, None], columns, scale)


def filter_image(weights: np.ndarray, width_px: int = 480) -> Image.Image:
    """First-layer kernels: colour when they read RGB, else orange (−) · white · blue (+)."""
    out, cin, k, _ = weights.shape
    if cin == 3:
        tiles = normalise_each(weights.reshape(out, -1).reshape(out, 3 * k, k)).reshape(out, 3, k, k)
    else:
        tiles = diverging_rgb(weights[:, 0]).transpose(0, 3, 1, 2) / 255.0
    columns = min(out, 16)
    return tile(tiles, columns, max(2, min(24, width_px // (columns * (k + 2)))))


def probability_figure(probs: np.ndarray, classes: list[str]) -> go.Figure:
    best = int(np.argmax(probs))
    fig = go.Figure(go.Bar(x=list(classes), y=probs, marker_color=[CLASS_HEX[1] if i == best else "#c7d4e0"
                                                                      for i in range(len(probs))],
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    # Class names like "0".."9" would make a numeric axis labelled 0, 2, 4, 6, 8 (a drawn 7's winning
    # bar had no label): a category axis names every bar.
    fig.update_xaxes(type="category", tickmode="array", tickvals=list(classes), ticktext=list(classes))
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=40, b=10), yaxis_range=[0, 1], yaxis_tickformat=".0%",
                      title="What the network thinks it is", font=dict(size=15))
    return fig


def cell_picker_figure(fmap: np.ndarray, row: int, col: int) -> go.Figure:
    """One feature map as a heatmap; each cell is clickable (an invisible marker on it)."""
    h, w = fmap.shape
    ys, xs = np.mgrid[0:h, 0:w]
    fig = go.Figure(go.Heatmap(z=fmap, colorscale="Greys", reversescale=True, showscale=False, hoverinfo="skip"))
    fig.add_scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", showlegend=False,
                    marker=dict(size=max(4, 220 // max(h, w)), color="rgba(0,0,0,0)"),
                    hovertemplate="row %{y}, column %{x}<extra></extra>")
    fig.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                  line=dict(color=CLASS_HEX[0], width=3))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(height=260, width=260, margin=dict(l=0, r=0, t=0, b=0), clickmode="event+select",
                      dragmode=False)
    return fig


def number_grid(values: np.ndarray, title: str) -> go.Figure:
    """A small matrix with its numbers written in (an input patch or a kernel)."""
    fig = go.Figure(go.Heatmap(z=values, colorscale="RdBu", zmid=0, showscale=False, texttemplate="%{z:.2f}",
                               hoverinfo="skip"))
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(height=180, margin=dict(l=0, r=0, t=28, b=0), title=dict(text=title, font=dict(size=13)))
    return fig
