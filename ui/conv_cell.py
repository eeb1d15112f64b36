"""The CNN Lab's "how one value is computed": one feature-map cell worked out by hand
(patch × kernel + bias, then the activation and the pooling window), beside PyTorch's value."""
from __future__ import annotations

import streamlit as st
import torch

from dl_core import cnn

from . import figures

ss = st.session_state


def on_cell():
    chart = ss.get("cnn_cell_pick")
    points = [p for p in (chart.selection.points if chart else []) if "x" in p and "y" in p]
    if points:
        ss["cnn_cell_row"], ss["cnn_cell_col"] = int(points[0]["y"]), int(points[0]["x"])


def explain(job, spec, image, maps) -> None:
    """Pick a convolution, a map and a cell (by clicking it) and show the sum that made it."""
    convs = [i for i, layer in enumerate(spec.layers) if layer.kind == "conv2d"]
    if not convs:
        return
    st.markdown("#### 🔍 How one value is computed")
    st.caption("Pick a convolution and one of its maps, then click a cell: the kernel slides over the patch of the "
               "layer's input under it, multiplies number by number, adds everything up plus a bias — then the "
               "activation decides what passes on.")
    c = st.columns([1, 1, 2])
    layer_i = c[0].selectbox("Convolution", convs, format_func=lambda i: f"layer {i + 1}", key="cnn_cell_layer")
    out = maps[layer_i]
    channel = c[1].number_input("Map (channel)", 0, out.shape[0] - 1, 0, key="cnn_cell_channel")
    row = min(ss.get("cnn_cell_row", out.shape[1] // 2), out.shape[1] - 1)
    col = min(ss.get("cnn_cell_col", out.shape[2] // 2), out.shape[2] - 1)
    with c[0]:
        st.plotly_chart(figures.cell_picker_figure(out[channel], row, col), key="cnn_cell_pick", on_select=on_cell,
                        selection_mode="points", config={"displayModeBar": False})
    with job.lock:
        cell = cnn.conv_cell(job.model, torch.as_tensor(image), layer_i, channel, row, col, maps)
    with c[2]:
        n_in = cell["patch"].shape[0]
        g = st.columns(2)
        g[0].plotly_chart(figures.number_grid(cell["patch"][0],
                                              f"input patch{' (channel 1 of %d)' % n_in if n_in > 1 else ''}"),
                          key="cnn_cell_patch", config={"displayModeBar": False})
        g[1].plotly_chart(figures.number_grid(cell["kernel"][0], "kernel weights"), key="cnn_cell_kernel",
                          config={"displayModeBar": False})
        summed = f"summed over all {n_in} input channels " if n_in > 1 else ""
        st.markdown(f"Row {row}, column {col}: Σ (patch × kernel) {summed}+ bias ({cell['bias']:+.3f}) = "
                    f"**{cell['value']:.4f}**")
        if "activation" in cell:
            name, after = cell["activation"]
            st.markdown(f"then {name} → **{after:.4f}**" + (" (negative values become 0)" if name == "ReLU" else ""))
        if "pool" in cell:
            pool, (r, q), window, pooled = cell["pool"]
            how = "the largest" if pool == "MaxPool2d" else "the average"
            st.markdown(f"then {pool}: this cell is in the {window.shape[0]}×{window.shape[1]} window at row {r}, "
                        f"column {q} of the next map, which keeps {how} of its values → **{pooled:.4f}**")
        st.caption(f"PyTorch's own value for this cell: {cell['network_value']:.4f}")
