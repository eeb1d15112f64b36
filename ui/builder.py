"""The layer-stack builder: a table of layers (shape, parameters, multiply-adds, move and
remove buttons, the offending layer marked) and an "add a layer" form, both driven by the
layer registry. It edits st.session_state[state.CNN_LAYERS]."""
from __future__ import annotations

import streamlit as st

from dl_core import cnn
from dl_core.activations import ACTIVATIONS
from dl_core.layers import LAYERS
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
        cols = st.columns([0.4, 2.2, 1.3, 1.1, 1.2, 0.5, 0.5, 0.5, 0.5], vertical_alignment="center")
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
        edit_button(cols[7], i, layer)
        cols[8].button("", icon=":material/close:", key=f"cnn_del_{i}", on_click=on_remove, args=(i,),
                       help="Remove this layer")


def _param_inputs(kind: str, prefix: str, values: dict, slots) -> None:
    """One input per parameter of a layer type, keyed `prefix + name`; `slots` yields containers."""
    for name, default in LAYERS[kind].defaults:
        where, value = next(slots), values.get(name, default)
        if name == "fn":
            where.selectbox("function", list(ACTIVATIONS), index=list(ACTIVATIONS).index(value),
                            format_func=lambda k: ACTIVATIONS[k].label, key=prefix + name)
        elif name == "p":
            where.slider("dropout rate", 0.0, 0.9, float(value), 0.05, key=prefix + name)
        else:
            where.number_input(name.replace("_", " "), 0, 4096, int(value), key=prefix + name)


def _edit_prefix(i: int, layer: LayerSpec) -> str:
    """Keys carry the layer's identity, so a moved or replaced layer never shows stale values."""
    return f"cnn_edit_{i}_{abs(hash(layer))}_"


def on_edit(i: int, prefix: str):
    layers = list(ss[state.CNN_LAYERS])
    kind = layers[i].kind
    layers[i] = LayerSpec.of(kind, **{name: ss[prefix + name] for name, _ in LAYERS[kind].defaults})
    ss[state.CNN_LAYERS] = layers


def edit_button(where, i: int, layer: LayerSpec) -> None:
    """A pencil that opens the layer's settings in place (layers without settings get none)."""
    if not LAYERS[layer.kind].defaults:
        return
    prefix = _edit_prefix(i, layer)
    with where.popover("", icon=":material/edit:", help="Change this layer's settings"):
        st.caption(f"Settings of layer {i + 1} · {LAYERS[layer.kind].label}")
        _param_inputs(layer.kind, prefix, layer.p, iter(lambda: st.container(), None))
        st.button("Apply", key=prefix + "apply", on_click=on_edit, args=(i, prefix), type="primary")


def add_layer_form(n_layers: int) -> None:
    with st.expander("➕ Add a layer"):
        a = st.columns(3)
        kind = a[0].selectbox("Layer", [k for k, t in LAYERS.items() if not t.sequence],
                              format_func=lambda k: LAYERS[k].label, key=state.kept("cnn_add_kind"))
        a[1].number_input("Insert as layer", 1, n_layers + 1, max(1, n_layers), key="cnn_add_at",
                          help="Where it goes; the default is just before the output layer.")
        rest = st.columns(3)
        _param_inputs(kind, "cnn_add_", {}, iter([a[2], *rest, *st.columns(3)]))
        st.button("Add layer", on_click=on_add, type="primary")
