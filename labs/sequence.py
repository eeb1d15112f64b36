"""Sequence Lab: train an RNN, an LSTM or a GRU on a task that needs memory, and look inside it."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from dl_core.checkpoint import CheckpointError
from dl_core.data import seqsources
from dl_core.data.seqdata import SeqDataError
from dl_core.data.sequences import SEQ_TASKS, from_upload
from dl_core.recurrence import GATE_NAMES
from dl_core.seqlab import CELLS, DEFAULT_TRAIN, SeqSetup, examples, make_job
from ui import charts, seq_views, state, views, widgets
from ui import seq_figures as sf
from ui.shell import Shell

ss = st.session_state
POLL_S = 0.5
# Each control's choices and its default: the controls offer these, and a model file's settings
# must be among them.
CHOICES = {"seq_cell": CELLS, "seq_hidden": (8, 16, 32, 64, 128), "seq_layers": (1, 2, 3),
           "seq_dropout": (0.0, 0.1, 0.2, 0.3, 0.5), "seq_lr": (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1),
           "seq_embed": (2, 4, 8, 16, 32), "seq_clip": (0.0, 0.25, 1.0, 5.0)}
DEFAULTS = {"seq_cell": CELLS[1], "seq_hidden": 32, "seq_layers": 1, "seq_dropout": 0.0, "seq_lr": 0.01,
            "seq_embed": 8, "seq_clip": 1.0}
shell = Shell("sequence")


def lag_key(task: str) -> str:
    """Each task has its own lag slider (their ranges differ), so each its own key."""
    return f"seq_lag_{task}"


def setup_of(values: dict) -> SeqSetup:
    """The settings (widget key → value, as the run keeps them) as a SeqSetup."""
    train = replace(DEFAULT_TRAIN, lr=values["seq_lr"], clip=values["seq_clip"] or None)
    return SeqSetup(values["seq_task"], values[lag_key(values["seq_task"])], seed=widgets.seed(),
                    cell=values["seq_cell"], hidden=values["seq_hidden"], layers=values["seq_layers"],
                    dropout=values["seq_dropout"] if values["seq_layers"] > 1 else 0.0,
                    embed=values.get("seq_embed", 8), train=train)


def install(job, spec, data, values: dict) -> None:
    shell.install(job, values, key=structure(values), kind="sequence", spec=spec, data=data,
                  private=bool(SEQ_TASKS[values["seq_task"]].upload))  # the learner's own text or series


def upload_key(task: str) -> str:
    return f"seq_upload_{SEQ_TASKS[task].upload}"


def structure(values: dict) -> tuple:
    """What a fresh network is built for (the rate and clipping change a running one)."""
    setup = setup_of(values)
    upload = ss.get(upload_key(setup.task), ("", None))[0] if SEQ_TASKS[setup.task].upload else ""
    return (setup.task, setup.lag, setup.cell, setup.hidden, setup.layers, setup.dropout, setup.embed, setup.seed,
            upload)


def data_for(setup: SeqSetup):
    """The data of an upload task (None for the others: make_job makes theirs)."""
    if not SEQ_TASKS[setup.task].upload:
        return None
    name, content = ss[upload_key(setup.task)]
    return from_upload(setup.task, content, examples(setup), setup.lag, setup.seed, name)


def on_upload(task: str):
    parse = seqsources.parse_text if SEQ_TASKS[task].upload == "text" else seqsources.parse_series

    def usable(file):
        content = parse(file.getvalue())
        from_upload(task, content, 200, SEQ_TASKS[task].lags[0], 1, file.name)  # long enough for a window?
        return content

    got = shell.read_upload(f"seq_file_{task}", usable, SeqDataError)
    if got is not None:
        content, name = got
        ss[upload_key(task)] = (name, content)
        shell.notify("success", f"Loaded {name}.")


def on_reset():
    run = shell.run
    job, spec, data = make_job(setup_of(run.settings), run.extra["data"], widgets.device())
    install(job, spec, data, run.settings)


def on_model_loaded(spec, model, meta):
    """A Sequence Lab model file: its settings rebuild the same data; the weights come back."""
    values = meta.get("values")
    if not any(layer.kind == "recurrent" for layer in spec.layers) or not isinstance(values, dict):
        raise CheckpointError("This model was not made in the Sequence Lab.")
    values = file_settings(values)
    try:
        ss[state.SEED] = int(meta.get("seed", 1))
        upload = meta.get("upload")
        if SEQ_TASKS[values["seq_task"]].upload:
            name, content = upload  # checked as an upload is: a file could carry any text or series
            content = seqsources.parse_text(content.encode()) if isinstance(content, str) \
                else seqsources.series_values(content)
            ss[upload_key(values["seq_task"])] = (name, content)
        setup = setup_of(values)
        job, spec, data = make_job(setup, data_for(setup), device=widgets.device(), model=model, spec=spec)
    except (KeyError, TypeError, ValueError):  # SeqDataError is a ValueError
        raise CheckpointError("Its saved settings are damaged, so the lab cannot rebuild its data.") from None
    ss.update(values)
    install(job, spec, data, values)
    return "the trained network and its task are back."


def file_settings(values: dict) -> dict:
    """A file's settings as the controls could hold them: this lab's own keys, each among its
    control's choices (any other gets the control's default). Nothing else in a file reaches the
    session, so no file sets a role (the teacher's view) or another page's state."""
    def among(value, options) -> bool:
        return not isinstance(value, bool) and any(type(value) in (int, float, str) and value == o for o in options)

    task = values.get("seq_task")
    if not (isinstance(task, str) and task in SEQ_TASKS):
        return {}
    lo, hi, default = SEQ_TASKS[task].lags
    lag = values.get(lag_key(task))
    return {"seq_task": task, lag_key(task): lag if type(lag) is int and lo <= lag <= hi else default} | {
        k: values[k] if among(values.get(k), options) else DEFAULTS[k] for k, options in CHOICES.items()}


# ---------- page ----------
shell.attach()
st.title("🔁 Sequence Lab")
st.caption("A recurrent network reads a sequence one step at a time and carries a memory (its hidden state) "
           "from step to step. Pick a task that needs memory, train a plain RNN, an LSTM or a GRU on it, and "
           "look at what the memory holds and how far back the learning signal reaches.")
bar = st.container()
def bound(key: str) -> dict:
    """A control's key, kept across page visits and written to the address bar (a teacher's link)."""
    return {"key": state.kept(key), "bind": "query-params"}


c = st.columns([1.3, 1.2, 1, 1])
values = {"seq_task": c[0].selectbox("Task", list(SEQ_TASKS), format_func=lambda k: SEQ_TASKS[k].label,
                                     **bound("seq_task"))}
info = SEQ_TASKS[values["seq_task"]]
lo, hi, default = info.lags
lag = lag_key(values["seq_task"])
values[lag] = c[1].slider(info.lag_label, lo, hi, default, **bound(lag))
values["seq_cell"] = c[2].radio("Cell", CHOICES["seq_cell"], index=CELLS.index(DEFAULTS["seq_cell"]), horizontal=True,
                                **bound("seq_cell"),
                                help="RNN: h ← tanh(W·x + U·h). LSTM and GRU add gates that decide what to keep.")
values["seq_hidden"] = c[3].select_slider("Hidden units", CHOICES["seq_hidden"], DEFAULTS["seq_hidden"],
                                          **bound("seq_hidden"))
st.caption(info.blurb)
c = st.expander("⚙️ More settings: layers, dropout, learning rate, embedding, clipping").columns([1.3, 1.2, 1])
values["seq_layers"] = c[0].radio("Layers", CHOICES["seq_layers"], horizontal=True, **bound("seq_layers"))
values["seq_dropout"] = c[0].select_slider("Dropout between layers", CHOICES["seq_dropout"], DEFAULTS["seq_dropout"],
                                           **bound("seq_dropout"), disabled=values["seq_layers"] == 1,
                                           format_func=lambda v: "off" if not v else f"{v:.0%}",
                                           help="Zeroes this share of each layer's outputs on their way to the next "
                                                "layer, in training only (needs 2 layers or more).")
values["seq_lr"] = c[1].select_slider("Learning rate", CHOICES["seq_lr"], DEFAULTS["seq_lr"], **bound("seq_lr"))
values["seq_embed"] = c[1].select_slider("Embedding size", CHOICES["seq_embed"], DEFAULTS["seq_embed"],
                                         **bound("seq_embed"),
                                         disabled=info.kind == "forecast" or values["seq_task"] == "adding",
                                         help="Each token becomes a learned vector of this many numbers before the "
                                              "recurrent layer reads it (tasks of tokens only).")
values["seq_clip"] = c[2].select_slider("Gradient clipping", CHOICES["seq_clip"], DEFAULTS["seq_clip"],
                                        **bound("seq_clip"),
                                        format_func=lambda v: "off" if not v else f"norm ≤ {v:g}",
                                        help="Scale each update's gradient down to this size: through many steps "
                                             "a gradient can explode in one update.")
if info.upload:
    st.file_uploader("Your file: " + ("plain text, UTF-8 (.txt)" if info.upload == "text" else
                                      "a CSV, one number per row (.csv)"),
                     type=["txt", "md"] if info.upload == "text" else ["csv", "txt"],
                     key=f"seq_file_{values['seq_task']}",
                     on_change=on_upload, args=(values["seq_task"],))
    if upload_key(values["seq_task"]) not in ss:
        st.info("Upload a file to train on it. Until then this shows the same kind of task on built-in data.")
        values["seq_task"] = "docs" if info.upload == "text" else "sunspots"
        values[lag_key(values["seq_task"])] = ss.get(lag_key(values["seq_task"]), SEQ_TASKS[values["seq_task"]].lags[2])

run = shell.run
if run is None or run.extra.get("key") != structure(values):
    setup = setup_of(values)
    install(*make_job(setup, data_for(setup), device=widgets.device()), values)
    run = shell.run
else:
    shell.retune(setup_of(values).config(), ("lr", "clip"))
    shell.remember(values)
job, spec, data = run.job, run.extra["spec"], run.extra["data"]
if data.source:
    st.caption(f"Data: {data.source}")
with bar:
    shell.header()
    shell.controls(on_reset, task=data.task)


def example_text(snap: dict) -> str:
    tokens = data.text(data.x_test[0])
    shown = "".join(tokens) if data.tokens else f"{len(tokens)} steps of values"
    return (f"Example (a test sequence): `{shown}` · answer **{seq_views.truth(data, data.y_test[0])}** · "
            f"the network says: {seq_views.answer_text(data, snap['output'])}")


def live(job):
    view = job.view()
    snap = job.snapshot() or job.snapshot(fresh=True)
    if SEQ_TASKS[run.extra["key"][0]].kind == "forecast":
        st.caption(f"For comparison, persistence (the next value is the last one) scores a test loss of "
                   f"{seqsources.persistence_loss(data):.3f} on the same held-out future.")
    left, right = st.columns([1, 1.4], gap="large")
    with left:
        views.curves(view, data.task)
        last = view["epochs"][-1] if view["epochs"] else {}
        if "confusion" in last and len(view["epochs"]) > 1:
            views.confusion(last["confusion"], list(data.classes), f"Test set after epoch {last['epoch']}")
    with right:
        st.markdown(example_text(snap))
        tokens = [t if data.tokens else "x" for t in data.text(data.x_test[0])]
        shown = st.radio("Show", ["hidden state hₜ", *(["cell state tanh(cₜ)"] if snap["c"] is not None else []),
                                  *[f"gate: {g}" for g in GATE_NAMES[snap["kind"]]]], horizontal=True,
                         key="seq_show")
        values_, signed = ((snap["h"], True) if shown.startswith("hidden") else
                           (np.tanh(snap["c"]), True) if shown.startswith("cell") else
                           (snap["gates"][shown.removeprefix("gate: ")], shown.endswith(("candidate",))))
        st.vega_lite_chart(spec=charts.arrow(sf.state_heatmap(values_, tokens, f"{shown}, step by step", signed)))
        st.markdown("**How far back does the learning signal reach?** The gradient of the loss with respect to "
                    "each step's hidden state, and to each step's input (how much that input moves the answer): "
                    "where it falls to nothing, the network cannot learn from that step.")
        st.vega_lite_chart(spec=charts.arrow(sf.gradient_through_time(
            {f"{snap['kind']}: hidden state hₜ": snap["grad_h"], f"{snap['kind']}: input xₜ": snap["input_grad"]})))
        gates = snap["gates"]
        if gates:
            shares = {g: (float((v < 0.05).mean()), float((v > 0.95).mean())) for g, v in gates.items()
                      if not g.endswith("candidate")}
            st.vega_lite_chart(spec=charts.arrow(sf.saturation(shares)))
        top = {k: max(v) for k, v in snap["spectrum"].items()}
        st.caption("Largest singular value of the recurrent weights: "
                   + ", ".join(f"{k} {v:.2f}" for k, v in top.items())
                   + " (above 1 a state can grow from step to step; below 1 it, and its gradient, shrinks).")


shell.live(live, POLL_S, views.counter_values(data.task))

kind = SEQ_TASKS[run.extra["key"][0]].kind
extra_tab = {"language": "✍️ Let it write", "forecast": "📈 The forecast"}.get(kind)
tabs = widgets.lazy_tabs(["🔍 Look closer (and edit)", "❓ Why this answer?", *([extra_tab] if extra_tab else []),
                          "🏁 RNN vs LSTM vs GRU"], "seq_tabs")  # each reads a copy of the network
if tabs[0] is not None or tabs[1] is not None:
    with tabs[0] if tabs[0] is not None else tabs[1]:
        ex = seq_views.example(job, data)
        if tabs[0] is not None:
            seq_views.look_closer(ex)
        else:
            seq_views.why(ex, data)
if extra_tab and tabs[2] is not None:
    with tabs[2]:
        (seq_views.write if kind == "language" else seq_views.forecast)(job, data)
if tabs[-1] is not None:
    with tabs[-1]:
        seq_views.races(run, setup_of(run.settings), POLL_S)

upload = ss.get(upload_key(run.extra["key"][0])) if SEQ_TASKS[run.extra["key"][0]].upload else None
kept = None if upload is None else (upload[0], upload[1] if isinstance(upload[1], str) else upload[1].tolist())
meta = {"values": shell.run.settings, "seed": widgets.seed(), "upload": kept}  # an upload travels in the file
shell.model_panel(spec, "sequence", meta, on_model_loaded)
shell.share_box("Uploaded files are not part of the link.")
