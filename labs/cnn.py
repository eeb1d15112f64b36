"""CNN Lab: build a convolutional network layer by layer, train it on images live, and look inside it."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import streamlit as st
import torch

from dl_core import cnn
from dl_core.augment import AUGMENTATIONS, augment_batch
from dl_core.checkpoint import CheckpointError
from dl_core.data import images
from dl_core.layers import LAYERS
from dl_core.optim import OPTIMIZERS, SCHEDULES
from dl_core.presets import PRESETS
from dl_core.spec import LayerSpec, ModelSpec, SpecError, summarize
from ui import builder, charts, conv_cell, figures, picture, state, views, widgets
from ui.counters import Counter
from ui.shell import Shell

ss = st.session_state
POLL_S = 0.5
UPLOAD = "upload"
shell = Shell("cnn")


def settings() -> dict:
    """What a run remembers of the controls (kept widget keys) and the layer stack."""
    return {k: ss[k] for k in ss.get(state.KEPT, ()) if k.startswith("cnn_") and k in ss} | \
        {state.CNN_LAYERS: list(ss[state.CNN_LAYERS])}


@st.cache_data(show_spinner="Loading images…", max_entries=8)
def load_data(choice: cnn.CNNData, download: bool) -> images.ImageDataset:
    return cnn.load(choice, download)


def allow_download() -> bool:
    """DLLAB_OFFLINE=1 never tries the network (classrooms behind a firewall, tests)."""
    return os.environ.get("DLLAB_OFFLINE") != "1"


def on_zip():
    got = shell.read_upload("cnn_zip", lambda f: images.zip_folders(f.getvalue(), size=ss.get("cnn_zip_size", 32)),
                            images.DataError)
    if got is not None:
        ss[state.CNN_UPLOAD], name = got
        ss["cnn_dataset"] = UPLOAD
        note = ss[state.CNN_UPLOAD].note
        shell.notify("success", f"Loaded {len(ss[state.CNN_UPLOAD].x)} images from {name}."
                     + (f" {note}." if note else ""))


def on_reset():
    """Fresh random weights for the same layers and images; the trained network stays for undo."""
    run = shell.run
    shell.install(cnn.make_job(run.extra["data"], run.extra["spec"], run.job.config, widgets.device()),
                  run.settings, **run.extra)


def on_weights(spec: ModelSpec, saved: ModelSpec, model, meta: dict):
    """Weights-only loading, accepted only for exactly these layers and this input size."""
    if saved != spec:
        raise CheckpointError("It was saved for a different network or image size: build the same layers first "
                              "(its layers: " + ", ".join(LAYERS[l.kind].label for l in saved.layers) + ").")
    with shell.run.job.lock:
        shell.run.job.model.load_state_dict(model.state_dict())
    return "its weights are in your network now."


def choose_data() -> tuple[images.ImageDataset, tuple]:
    """The data controls; falls back to the offline digits with a plain message."""
    labels = {k: s.label for k, s in images.IMAGE_DATASETS.items()} | {UPLOAD: "Your images (zip of class folders)"}
    name = st.selectbox("Images", list(labels), format_func=labels.get, key=state.kept("cnn_dataset"))
    if name == UPLOAD:
        st.file_uploader("Zip with one folder per class", type=["zip"], key="cnn_zip", on_change=on_zip)
        st.select_slider("Resize to", [16, 28, 32, 48, 64], 32, key=state.kept("cnn_zip_size"))
        if ss.get(state.CNN_UPLOAD) is not None:
            return ss[state.CNN_UPLOAD], (UPLOAD, id(ss[state.CNN_UPLOAD]))
        st.info("Upload a zip: one folder per class, e.g. cats/…png and dogs/…jpg. Showing the digits meanwhile.")
        name = "digits"
    source = images.IMAGE_DATASETS[name]
    size = st.select_slider("Image size (pixels)", source.sizes, source.default_size,
                            key=state.kept(f"cnn_size_{name}")) if len(source.sizes) > 1 else source.default_size
    spurious = st.slider("Spurious corner cue", 0.0, 1.0, 0.0, 0.1, key=state.kept("cnn_spurious"),
                         help="Share of training images with a corner patch that gives the class away. Test images "
                              "never have it: a network that learns the patch fails the test.") \
        if source.spurious_cue else 0.0
    choice = cnn.CNNData(name, size, spurious, widgets.seed())
    try:
        return load_data(choice, allow_download()), choice
    except images.DataError as exc:
        st.warning(str(exc), icon="📴")
        fallback = cnn.CNNData(seed=widgets.seed())  # the offline digits
        return load_data(fallback, False), fallback


shell.attach()
st.title("🧩 CNN Lab")
st.caption("Stack convolution, pooling and dense layers, train them on images, then open the network up and see "
           "what each layer detects.")

data_col, build_col = st.columns([1, 2.2], gap="large")
with data_col:
    st.markdown("#### 1 · Images")
    ds, data_key = choose_data()
    if ds.note:
        st.caption(ds.note)
    counts = images.class_balance(ds)
    st.caption(f"{len(ds.x):,} images of {'×'.join(map(str, ds.shape))} · {len(ds.classes)} classes · "
               f"train {int((ds.split == 0).sum()):,} / validation {int((ds.split == 1).sum()):,} / "
               f"test {int((ds.split == 2).sum()):,}")
    k = len(ds.classes)
    per = int(min(3, np.bincount(ds.y, minlength=k).min()))
    picks = np.array([np.flatnonzero(ds.y == c)[r] for r in range(per) for c in range(k)])  # a column per class
    st.image(figures.tile(ds.x[picks], k, max(1, 40 // ds.shape[1])), caption="Examples of each class, "
             "one column each", width="stretch")
    st.vega_lite_chart(spec=charts.arrow(charts.bars(list(counts), [sum(v) for v in counts.values()], y_title="images",
                                        height=120)))
    augment = tuple(st.multiselect("Augment training images", list(AUGMENTATIONS), format_func=AUGMENTATIONS.get,
                                   key=state.kept("cnn_augment"),
                                   help="Each batch gets random variations, so the network "
                                   "learns the object, not its exact pixels. Validation and test images stay as "
                                   "they are."))
    if augment:
        first = torch.as_tensor(ds.part("train")[0][:1]).repeat(6, 1, 1, 1)
        varied = augment_batch(first, augment, torch.Generator().manual_seed(widgets.seed())).numpy()
        st.image(figures.tile(varied, 6, max(1, 48 // ds.shape[1])), caption="One training image, six random "
                 "variations")

n_classes = len(ds.classes)
if state.CNN_LAYERS not in ss:
    ss[state.CNN_LAYERS] = list(cnn.preset("tiny_vgg", ds).layers)
layers = ss[state.CNN_LAYERS]
if layers and layers[-1].kind == "linear" and layers[-1].p["out_features"] != n_classes:
    layers[-1] = LayerSpec.of("linear", out_features=n_classes)  # one score per class, always
spec = ModelSpec(ds.shape, tuple(layers), "classification")

with build_col:
    st.markdown("#### 2 · Layers")
    c = st.columns([2, 1])
    c[0].selectbox("Start from a classic", list(PRESETS), index=list(PRESETS).index("tiny_vgg"),
                   format_func=lambda k: PRESETS[k][0], key=state.kept("cnn_preset"),
                   help="Replaces your layers with this network.")
    c[1].button("Use it", on_click=builder.use_preset, args=(ds,), width="stretch")
    st.caption(PRESETS[ss.get("cnn_preset", "tiny_vgg")][2])
    error, rows = None, []
    try:
        rows = summarize(spec)
    except SpecError as exc:
        error = exc
        if exc.layer and exc.layer > 1:
            rows = summarize(ModelSpec(ds.shape, tuple(layers[:exc.layer - 1]), "regression"))
    builder.layer_table(layers, rows, error)
    if error is not None:
        st.error(f"{error}  Training stays off until this is fixed.")
    elif rows:
        st.caption(f"Input {'×'.join(map(str, ds.shape))} → {len(rows)} layers → {n_classes} class scores · "
                   f"{sum(r.params for r in rows):,} parameters · {sum(r.macs for r in rows):,} multiply-adds "
                   "per image")
    builder.add_layer_form(len(layers))

st.markdown("#### 3 · Train")
h = st.columns(6)
optimizer = h[0].selectbox("Optimizer", list(OPTIMIZERS), index=list(OPTIMIZERS).index(cnn.DEFAULT_CONFIG.optimizer),
                           format_func=lambda k: OPTIMIZERS[k].label,
                           key=state.kept("cnn_opt"))
lr = h[1].select_slider("Learning rate", [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1], 0.003,
                        key=state.kept("cnn_lr"))
schedule = h[2].selectbox("Schedule", list(SCHEDULES), format_func=lambda k: SCHEDULES[k].label,
                          key=state.kept("cnn_schedule"),
                          help="How the learning rate changes over the run (torch.optim.lr_scheduler).")
batch = h[3].select_slider("Batch size", [16, 32, 64, 128, 256], 32, key=state.kept("cnn_batch"),
                           help="32 by default: the first epoch already learns (at 64 it stayed at chance).")
epochs = h[4].number_input("Epochs", 1, 500, 20, key=state.kept("cnn_epochs"))
patience = h[5].number_input("Early stop after", 0, 50, 0, key=state.kept("cnn_patience"),
                             help="Stop when the validation loss has not improved for this many epochs, and put the "
                                  "best weights back (0 = off).")
config = replace(cnn.DEFAULT_CONFIG, optimizer=optimizer, lr=lr, batch_size=batch, max_epochs=int(epochs),
                 seed=widgets.seed(), schedule=schedule, early_stop_patience=int(patience) or None, augment=augment)

if error is not None:
    st.stop()
key = (data_key, spec)
run = shell.run_for(key, lambda: cnn.make_job(ds, spec, config, widgets.device()), settings(),
                    keep_trained=lambda: not widgets.action("🔨 Start a fresh network with these layers and images",
                                                            key="cnn_fresh", type="primary"),
                    kind="image-classifier", spec=spec, data=ds, private=ds is ss.get(state.CNN_UPLOAD))
if run.extra["key"] != key:
    st.warning("You changed the layers or the images. The trained network below is kept, with the images it "
               "was trained on, until you start a fresh one.")
    spec, ds = run.extra["spec"], run.extra["data"]  # the kept network only fits its own images
else:
    shell.retune(config, ("optimizer", "lr", "batch_size", "max_epochs", "schedule", "early_stop_patience", "augment"))
job = run.job
shell.header()
shell.controls(on_reset, stops=False)


def _rate(job, rows: list[dict]) -> float:
    """Images a second over the last epoch (0 before two epochs are measured)."""
    if len(rows) < 2 or rows[-1]["time"] <= rows[-2]["time"]:
        return 0.0
    a, b = rows[-2:]
    return (b["step"] - a["step"]) * job.config.batch_size / (b["time"] - a["time"])


TRAINING_ON = f"Training on {widgets.device()}"


def counters(job) -> list[Counter]:
    """Epoch, validation loss and accuracy, training speed (shell.live draws them, and the
    counters' route reads them while the job trains)."""
    status, rows = job.status(), job.latest(2)[0]
    last, rate = rows[-1], _rate(job, rows)
    return [Counter("Epoch", f"{status['epoch']} / {job.config.max_epochs}"),
            Counter("Validation loss", f"{last['test_loss']:.3g}"),
            Counter("Validation accuracy", f"{last['test_acc']:.1%}"),
            Counter("Images / second", f"{rate:,.0f}" if rate else "—", help=TRAINING_ON)]


def progress(job) -> None:
    """How far through its epochs the job is, and about how long is left."""
    status, rate = job.status(), _rate(job, job.latest(2)[0])
    done = status["epoch"] / job.config.max_epochs
    eta = (job.config.max_epochs - status["epoch"]) * len(job.data.x_train) / rate if rate else None
    st.progress(min(done, 1.0), text=f"{done:.0%}" + (f" · about {eta:.0f} s left" if eta and job.active else ""))


def live(job):
    progress(job)
    view = job.view()
    last = view["epochs"][-1]
    left, right = st.columns(2)
    with left:
        views.curves(view, "classification", held_out="validation")
        views.layer_stats(view, job)
    snap = job.snapshot() or job.snapshot(fresh=True)
    with right:
        views.confusion(last["confusion"], list(ds.classes), f"Validation set after epoch {last['epoch']}")
        if snap["filters"] is not None:
            st.markdown("**First-layer filters** — the patterns the first convolution looks for")
            st.image(figures.filter_image(snap["filters"]))


shell.live(live, POLL_S, counters)

st.markdown("#### 4 · How good is it? (the test images it never trained on)")
with job.lock:
    report, measured_at = cnn.test_report(job.model, ds), job.epoch
xte, yte = ds.part("test")
c = st.columns([1, 1.4, 2.6])
c[0].metric(f"Test accuracy (epoch {measured_at:,})", f"{report['accuracy']:.1%}")
if job.active:  # measured once per page, not live: say so, or it reads as the network now
    c[0].caption(f"**Out of date while training:** measured at epoch {measured_at:,}; this section updates when "
                 "training pauses or ends.")
untrained = job.step == 0
if untrained:  # a random network's score and "mistakes" teach nothing, and look like a result
    c[0].caption(f"**Untrained:** random weights, so about what guessing scores ({1 / len(ds.classes):.0%}). "
                 "Train it, and its mistakes appear here.")
c[1].vega_lite_chart(spec=charts.arrow(charts.bars(list(ds.classes), report["per_class"], y_title="accuracy per class",
                                      height=140, percent=True)))
if report["mistakes"] and not untrained:
    c[2].markdown("**Its most confident mistakes** — true class → what it said")
    c[2].image([figures.tile(xte[i:i + 1], 1, max(1, 64 // ds.shape[1])) for i, *_ in report["mistakes"]],
               caption=[f"{ds.classes[t]} → {ds.classes[g]} ({p:.0%})" for _, t, g, p in report["mistakes"]])

st.markdown("#### 5 · Inside the network" + (" (untrained: random weights)" if untrained else ""))
pick_col, image_col, probs_col = st.columns([1.2, 0.7, 1.6])
with pick_col:
    image, caption, _ = picture.choose(ds, "cnn_in")
with job.lock:
    maps = cnn.feature_maps(job.model, torch.as_tensor(image))
    probs = cnn.predict(job.model, image[None])[0]
image_col.image(figures.tile(image[None], 1, max(1, 160 // ds.shape[1])), caption=caption)
probs_col.plotly_chart(figures.probability_figure(probs, list(ds.classes)), key="cnn_probs")
shown = [i for i, out in enumerate(maps) if out.ndim == 3]
if shown:
    name = lambda i: f"{i + 1} · {LAYERS[spec.layers[i].kind].label}"  # noqa: E731 - the layer table's numbers
    if ss.get("cnn_map_layer") not in shown:
        ss["cnn_map_layer"] = shown[0]
    chosen = st.select_slider("Layer to look at, input side first", shown, key="cnn_map_layer", format_func=name,
                              help="Early layers respond to edges and blobs; deeper ones to larger, more abstract "
                                   "parts.")
    out = maps[chosen]
    st.markdown(f"**Layer {name(chosen)}** — {out.shape[0]} maps of {out.shape[1]}×{out.shape[2]}, each a picture of "
                "where in this image its pattern is (bright = strongly active)")
    st.image(figures.feature_map_image(out, 1100), width="stretch")

conv_cell.explain(job, spec, image, maps)

shell.model_panel(spec, "cnn", {"classes": list(ds.classes)},
                  lambda saved, model, meta: on_weights(spec, saved, model, meta), layers=False)
