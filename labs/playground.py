"""Network Playground: build a network layer by layer on 2-D data and watch it learn, live."""
from __future__ import annotations

import streamlit as st

from dl_core.checkpoint import CheckpointError
from dl_core.data.data2d import DATASETS, FEATURES, DataError, parse_csv, to_csv
from dl_core.playground import make_job
from dl_core.spec import SpecError
from ui import figures, state, views, widgets
from ui.lessons import LESSONS, lesson_values
from ui.shell import Shell

ss = st.session_state
POLL_S = 0.3


def restore(values: dict) -> None:
    """A run's settings back into the controls (undo, reload, a loaded model)."""
    state.apply_values(state.widget_values(values))


shell = Shell("playground", restore)


# ---------- callbacks (run before the next script run draws any widget) ----------
def on_lesson():
    key = ss.get("lesson", "free")
    st.query_params["lesson"] = key
    ss[state.LESSON_SEEN] = key
    if key != "free":
        state.apply_values(lesson_values(key))


def lesson_from_link():
    """A shared `?lesson=<key>` link applies its lesson once, on arrival, before any widget draws."""
    wanted = st.query_params.get("lesson")
    if wanted in LESSONS and ss.get(state.LESSON_SEEN) != wanted:
        ss[state.LESSON_SEEN] = ss["lesson"] = wanted
        if wanted != "free":
            state.apply_values(lesson_values(wanted))


def on_csv():
    nonce = ss.get(state.UPLOAD_NONCE, 0)
    key = f"pg_csv_{nonce}"
    if ss.get(key) is None:
        return
    ss[state.UPLOAD_NONCE] = nonce + 1  # a fresh, empty uploader next run
    got = shell.read_upload(key, lambda f: parse_csv(f.getvalue(), ss.get("train_pct", 50) / 100, widgets.seed()),
                            DataError)
    if got is not None:
        ss[state.CUSTOM_DATA], name = got
        ss["dataset"] = state.UPLOAD
        shell.notify("success", f"Loaded {len(ss[state.CUSTOM_DATA].points)} points from {name}.")


def add_points(points: list) -> None:
    """Add points with the chosen label and split; the data become 'your data'."""
    try:
        data = shell.run.extra["data"]
        value = ss["pg_add_label"] if data.task == "classification" else ss["pg_add_target"]
        ss[state.CUSTOM_DATA] = data.with_points(points, [value] * len(points), train=ss["pg_add_split"] == "train")
        ss["dataset"] = state.UPLOAD
    except (DataError, ValueError) as exc:
        shell.notify("error", str(exc))


def on_add_point():
    add_points([[ss["pg_add_x"], ss["pg_add_y"]]])


def on_click_point():
    chart = ss.get("pg_click")
    clicked = [[p["x"], p["y"]] for p in (chart.selection.points if chart else []) if "x" in p and "y" in p]
    if clicked:
        add_points(clicked[:1])


def on_model_loaded(spec, model, meta):
    """A Playground model file: its network, settings and (own) points come back as a new run."""
    if not spec.input_names or not set(spec.input_names) <= set(FEATURES) or "values" not in meta:
        raise CheckpointError("This model was not made in the Network Playground.")
    try:
        values = state.settings_from(meta["values"]) | {state.SEED: int(meta.get("seed", 1))}
        ds = parse_csv(meta["data_csv"].encode()) if meta.get("data_csv") else None
        setup = state.setup_from(values, values[state.SEED])
        job, spec, ds = make_job(setup, ds, widgets.device(), model=model, spec=spec)
    except (DataError, SpecError, KeyError, TypeError, ValueError):
        raise CheckpointError("Its saved settings are damaged, so the Playground cannot rebuild its data.") from None
    if ds.name == "upload":
        ss[state.CUSTOM_DATA] = ds
    restore(values)
    _install(job, setup, spec, ds, values)
    return "the trained network and its settings are back."


def on_reset():
    extra = shell.run.extra
    new, spec, ds = make_job(extra["setup"], extra["data"], widgets.device(), spec=extra["spec"])
    _install(new, extra["setup"], spec, ds, shell.run.settings)


def on_regenerate():
    ss[state.SEED] = widgets.seed() + 1


# ---------- job bookkeeping ----------
def _install(job, setup, spec, ds, values):
    """Make `job` the current run; the one it replaces is kept for one undo (nothing trained is lost)."""
    kind = "points-classifier" if ds.task == "classification" else "points-regressor"
    shell.install(job, values | {state.SEED: setup.seed}, kind=kind, setup=setup, spec=spec, data=ds,
                  private=ds.name == state.UPLOAD)  # the learner's own points


def current_job(values: dict):
    """The job for these settings: the same one (taking new hyperparameters) or a fresh network."""
    setup = state.setup_from(values, widgets.seed())
    run = shell.run
    custom = ss.get(state.CUSTOM_DATA) if values["dataset"] == state.UPLOAD else None
    same_data = run is not None and (custom is None or custom is run.extra["data"])
    if same_data and state.structure(setup) == state.structure(run.extra["setup"]):
        shell.retune(setup.train, ("optimizer", "lr", "batch_size", "l1", "l2"))
        run.extra["setup"] = setup
        shell.remember(values | {state.SEED: setup.seed})
        return run.job
    if values["dataset"] == state.UPLOAD and custom is None:
        st.warning("No data of your own yet: upload a CSV or add points below. Showing the circle meanwhile.")
        setup = state.setup_from(values | {"dataset": "circle"}, widgets.seed())
    try:
        new, spec, ds = make_job(setup, custom, widgets.device())
    except (DataError, SpecError, ValueError) as exc:
        st.error(f"Can't build this network: {exc}")
        if run is None:
            st.stop()
        st.info("The previous network is still here, unchanged.")
        return run.job
    _install(new, setup, spec, ds, values)
    return new


# ---------- page ----------
shell.attach()
shell.link_notice(state.link_problems(state.PLAYGROUND))
st.title("🕸️ Network Playground")
st.caption("Pick the data, shape the network, press **▶ Train** and watch it learn. Every number is a real "
           "PyTorch model training on this server.")
lesson_from_link()

lesson_col, text_col = st.columns([1, 2.2])
lesson = lesson_col.selectbox("Lesson", list(LESSONS), format_func=lambda k: LESSONS[k][0], key="lesson",
                              on_change=on_lesson)
text_col.info(LESSONS[lesson][1], icon="🎓")
bar = st.container()

values: dict = {}
hyper = st.columns(6)
for col, key in zip(hyper, ["optimizer", "lr", "batch", "activation", "reg", "reg_rate"]):
    values[key] = state.control(key, col)

left, right = st.columns([1, 2.6], gap="large")
with left:
    st.markdown("#### 1 · Data")
    values["dataset"] = state.control("dataset")
    generated = values["dataset"] != state.UPLOAD
    if generated:
        st.caption(DATASETS[values["dataset"]].blurb)
    with st.popover("🖼 Preview all datasets", width="stretch"):
        images, captions = views.dataset_thumbnails(widgets.seed())
        st.image(images, caption=captions, width=72)
        st.caption("Sets marked \\* are regression: colour shows the target value. Pick one in the box above.")
    for key in ("noise", "n", "train_pct"):
        values[key] = state.control(key, disabled=not generated)
    st.button("🎲 New random points", on_click=on_regenerate, disabled=not generated,
              help="Draw new points (and new starting weights): changes the seed in the sidebar.")
    # Filled once the data exist; stays open while the learner is adding points. Its clickable
    # plane is drawn only while it is open: plotly took ~2.5 of the ~7.5 s a browser spent on its
    # first drawing of this page (docs/PERFORMANCE.md, session 6).
    own_points = st.expander("➕ Your own points", expanded=ss.get(state.CUSTOM_DATA) is not None,
                             key="pg_own_points", on_change="rerun")
    st.markdown("#### 2 · Network")
    values["features"] = state.control("features")
    values["layers"] = state.control("layers")
    if values["layers"]:
        st.caption("Neurons in each hidden layer (1–64)")
    grid = st.columns(4)
    for i in range(1, state.MAX_LAYERS + 1):
        key = f"n{i}"
        values[key] = state.control(key, grid[(i - 1) % 4]) if i <= values["layers"] else state.PLAYGROUND[key].default
    values["dropout"] = state.control("dropout")
    values["batchnorm"] = state.control("batchnorm")
    st.markdown("#### 3 · View")
    values["show_test"] = state.control("show_test")
    values["discretize"] = state.control("discretize")

job = current_job(values)
spec, ds = shell.run.extra["spec"], shell.run.extra["data"]
with own_points:
    if not ds.curve and own_points.open:
        st.caption("Click the plane to add a point with the label below (the data become *your data*).")
        st.plotly_chart(views.click_figure(ds.points,
                                           figures.point_colors(ds.targets, ds.task, views.output_scale(ds))),
                        key="pg_click", on_select=on_click_point, selection_mode="points",
                        config={"displayModeBar": False})
    c = st.columns(2)
    c[0].number_input("x", -6.0, 6.0, 0.0, key="pg_add_x")
    c[1].number_input("y", -6.0, 6.0, 0.0, key="pg_add_y")
    if ds.task == "classification":
        c[0].selectbox("label", list(range(ds.n_classes)), key="pg_add_label", format_func=lambda k: f"class {k}")
    else:
        c[0].number_input("target", -10.0, 10.0, 0.0, key="pg_add_target")
    c[1].selectbox("to", ["train", "test"], key="pg_add_split")
    st.button("Add point", on_click=on_add_point)
    st.file_uploader("…or upload a CSV: x,y,label or x,y,target", type=["csv", "txt"], on_change=on_csv,
                     key=f"pg_csv_{ss.get(state.UPLOAD_NONCE, 0)}")
    st.download_button("⬇ These points as CSV", to_csv(ds), "playground-data.csv", "text/csv", on_click="ignore")
with bar:  # at the top, above the settings: notices (welcome back, a loaded file) where they are seen
    shell.header()
    shell.controls(on_reset, task=ds.task)


def live(job):
    view = job.view()
    snap = job.snapshot() or job.snapshot(fresh=True)
    ahead = views.pictures_ahead(job, spec, ds, job.probe.shape[0], values["discretize"], values["show_test"])
    net_col, out_col = st.columns([1.6, 1])
    with net_col:
        st.markdown("**The network** — each square shows what that neuron responds to across the plane; "
                    "blue connections are positive weights, orange negative, wider is larger.")
        views.network(snap, spec, ds, job.probe.shape[0], values["discretize"], job.active, ahead[0])
    with out_col:
        st.markdown("**Output**")
        views.output(snap, ds, values["show_test"], values["discretize"], ahead[1])
        views.loss_glance(view)
    tabs = widgets.lazy_tabs(["📈 Curves", "🧮 Confusion matrix", "🌊 Gradients & activations"], "pg_tabs")
    if tabs[0] is not None:
        with tabs[0]:
            views.curves(view, ds.task)
    if tabs[1] is not None:
        with tabs[1]:
            if "confusion" in snap:
                views.confusion(snap["confusion"], [str(k) for k in range(ds.n_classes)])
            else:
                st.caption("Regression has no classes; the loss curve tells the story.")
    if tabs[2] is not None:
        with tabs[2]:
            views.layer_stats(view, job)


with right:
    shell.live(live, POLL_S, views.counter_values(ds.task))

meta = {"values": state.widget_values(shell.run.settings), "seed": shell.run.extra["setup"].seed,
        "data_csv": to_csv(ds) if ds.name == "upload" else None}
shell.model_panel(spec, "playground", meta, on_model_loaded)

teachers_page = ss.get(state.SET_UP_HERE) or shell.own_address  # the teacher keeps a way back
if "teacher" not in state.hidden() or teachers_page:
    def hide_controls():
        state.control("hide")
        st.caption("Students who open the link see hidden controls' values, read-only. Hide 'this teacher "
                   "box' too for a clean student view: it stays here for you, on the page you set up.")

    shell.share_box("Uploaded or clicked-in points are not part of the link.", hide_controls)
