"""The layer-stack builder: a table of layers (shape, parameters, multiply-adds, move and
remove buttons, the offending layer marked) and an "add a layer" form, both driven by the
layer registry. It edits st.session_state[state.CNN_LAYERS]."""
from __future__ import annotations

import streamlit as st

from dl_core import cnn
from dl_core.layers import ACTIVATIONS, LAYERS
from dl_core.spec import LayerSpec

from . import state

ss = st.session_state


def describe(layer: LayerSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in layer.params) or "—"


def use_preset(ds):
    ss[state.CNN_LAYERS] = list(cnn.preset(ss["cnn_preset"], ds).layers)


def on_add():
    kind = ss["cnn_add_kind"]
    params = {name: ss[f"cnn_add_{name}"] for name, _ in LAYERS[kind].defaults}
    layers = ss[state.CNN_LAYERS]
    at = min(max(int(ss["cnn_add_at"]) - 1, 0), len(layers))
    ss[state.CNN_LAYERS] = layers[:at] + [LayerSpec.of(kind, **params)] + layers[at:]


def on_move(i: int, delta: int):
    layers = list(ss[state.CNN_LAYERS])
    j = i + delta
    if 0 <= j < len(layers):
        layers[i], layers[j] = layers[j], layers[i]
        ss[state.CNN_LAYERS] = layers


def on_remove(i: int):
    ss[state.CNN_LAYERS] = [l for k, l in enumerate(ss[state.CNN_LAYERS]) if k != i]


def layer_table(layers: list[LayerSpec], rows: list, error) -> None:
    """One line per layer; rows (from summarize) may stop early at the offending layer."""
    for i, layer in enumerate(layers):
        row = rows[i] if i < len(rows) else None
        cols = st.columns([0.4, 2.2, 1.3, 1.1, 1.2, 0.5, 0.5, 0.5], vertical_alignment="center")
        cols[0].markdown(f"**{i + 1}**")
        cols[1].markdown(f"{LAYERS[layer.kind].label}  \n<small>{describe(layer)}</small>", unsafe_allow_html=True)
        if row:
            cols[2].markdown(f"→ `{'×'.join(map(str, row.out_shape))}`")
            cols[3].caption(f"{row.params:,} params")
            cols[4].caption(f"{row.macs:,} mult-adds")
        elif error is not None and error.layer == i + 1:
            cols[2].markdown("⛔ **here**")
        cols[5].button("", icon=":material/arrow_upward:", key=f"cnn_up_{i}", on_click=on_move, args=(i, -1),
                       disabled=i == 0, help="Move up")
        cols[6].button("", icon=":material/arrow_downward:", key=f"cnn_down_{i}", on_click=on_move, args=(i, 1),
                       disabled=i == len(layers) - 1, help="Move down")
        cols[7].button("", icon=":material/close:", key=f"cnn_del_{i}", on_click=on_remove, args=(i,),
                       help="Remove this layer")


def add_layer_form(n_layers: int) -> None:
    with st.expander("➕ Add a layer"):
        a = st.columns(3)
        kind = a[0].selectbox("Layer", list(LAYERS), format_func=lambda k: LAYERS[k].label, key="cnn_add_kind")
        a[1].number_input("Insert as layer", 1, n_layers + 1, max(1, n_layers), key="cnn_add_at",
                          help="Where it goes; the default is just before the output layer.")
        for j, (name, default) in enumerate(LAYERS[kind].defaults):
            where = a[(j + 2) % 3] if j < 1 else st.columns(3)[j % 3]
            if name == "fn":
                where.selectbox("function", list(ACTIVATIONS), format_func=lambda k: ACTIVATIONS[k][0],
                                key="cnn_add_fn")
            elif name == "p":
                where.slider("dropout rate", 0.0, 0.9, default, 0.05, key="cnn_add_p")
            else:
                where.number_input(name.replace("_", " "), 0, 4096, default, key=f"cnn_add_{name}")
        st.button("Add layer", on_click=on_add, type="primary")
