"""Pages render and react, through Streamlit's AppTest (no browser)."""

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, wait_for
from dl_core.checkpoint import save_bytes
from ui import state
from ui.counters import shown
from ui.labs import LABS
from ui.shell import panel_key, previous_key, run_key, upload_key


def open_page(key: str, **params) -> AppTest:
    """The app through its router, on the lab LABS[key] (query params set first)."""
    at = AppTest.from_file(str(ROOT / "router.py"), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    return at if LABS[key].default else switch_to(at, key)


def switch_to(at: AppTest, key: str) -> AppTest:
    return at.switch_page(LABS[key].file).run()


def run(at, lab="playground"):
    return at.session_state[run_key(lab)]


def job(at, lab="playground"):
    return run(at, lab).job


def poll(at, predicate, timeout=30):
    """Re-run the app (as the page's fragment would) until predicate(at) holds."""
    def check():
        at.run()
        return predicate(at)
    return wait_for(check, timeout=timeout, interval=0.2)


def counters(at) -> dict:
    """label -> (value, the line under it) of the live counters the page drew (ui/counters.py)."""
    out = {}
    for element in at.get("bidi_component"):
        if element.proto.component_name == "dllab.counters":
            out |= shown(element.proto)
    return out


def metric(at, label):
    """A metric's value as the page drew it: an st.metric, or one of the live counters."""
    return next((m.value for m in at.metric if m.label == label), None) or counters(at)[label][0]


@pytest.mark.parametrize("key", LABS)
def test_every_page_renders_without_an_exception(key):
    at = open_page(key)
    assert not at.exception
    assert at.title and at.title[0].value
    assert any("Compute" in m.value for m in at.sidebar.markdown)
    # A click on a download must not rerun the page: Streamlit 1.67 drops a built file's reply
    # when a full run starts first, and the button then stays greyed out (ui.shell.model_files).
    downloads = at.get("download_button")
    assert all(d.proto.ignore_rerun for d in downloads), [d.proto.label for d in downloads]


def test_train_advances_the_epoch_counter_and_fills_the_loss_history():
    at = open_page("playground")
    assert metric(at, "Epoch") == "0"
    at.button(key="ctl_train").click().run()
    assert at.button(key="ctl_pause")  # the button turned into Pause
    poll(at, lambda a: int(metric(a, "Epoch").replace(",", "")) >= 3)
    assert len(job(at).view()["epochs"]) >= 4
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # loss curve drawn
    at.button(key="ctl_pause").click().run()
    poll(at, lambda a: job(a).status()["state"] == "paused")
    assert not at.exception


def test_step_takes_exactly_one_batch():
    at = open_page("playground")
    at.button(key="ctl_step").click().run()
    poll(at, lambda a: job(a).status()["state"] == "paused")
    assert job(at).step == 1


def test_a_lesson_link_applies_its_settings():
    at = open_page("playground", lesson="three_classes")
    assert at.selectbox(key="dataset").value == "spiral3"
    assert at.number_input(key="n1").value == 16
    assert job(at).data.task == "classification" and job(at).model.layers[-1].out_features == 3


def test_diverging_learning_rate_is_explained_in_the_page():
    at = open_page("playground", lesson="lr_too_high")
    at.button(key="ctl_train").click().run()
    poll(at, lambda a: any("Learning rate too high" in e.value for e in a.error))
    assert not at.exception
    at.selectbox(key="lr").set_value(0.01).run()  # the learner lowers it and trains on
    assert job(at).config.lr == 0.01


def test_bad_csv_upload_shows_an_error_not_a_traceback():
    at = open_page("playground")
    at.file_uploader(key="pg_csv_0").set_value(("points.csv", b"x,y,label\n1,2\n", "text/csv")).run()
    assert not at.exception
    assert any("Could not use points.csv" in e.value for e in at.error)


def test_good_csv_upload_becomes_the_training_data():
    rows = "\n".join(f"{x},{y},{int(x > 0)}" for x, y in [(-2, 1), (-3, 2), (2, 1), (3, -2), (-1, -1), (1, 3)])
    at = open_page("playground")
    at.file_uploader(key="pg_csv_0").set_value(("mine.csv", f"x,y,label\n{rows}\n".encode(), "text/csv")).run()
    assert not at.exception
    assert at.selectbox(key="dataset").value == state.UPLOAD
    assert len(run(at).extra["data"].points) == 6


def test_impossible_network_is_refused_and_the_old_one_kept():
    at = open_page("playground")
    before = job(at)
    at.pills(key="features").set_value([]).run()
    assert not at.exception
    assert any("at least one input feature" in e.value for e in at.error)
    assert job(at) is before


def test_changing_the_network_keeps_the_trained_one_for_undo():
    at = open_page("playground")
    at.button(key="ctl_epoch").click().run()
    poll(at, lambda a: job(a).epoch == 1 and job(a).status()["state"] == "paused")
    trained = job(at)
    at.number_input(key="layers").set_value(2).run()
    assert job(at) is not trained and len(job(at).model.layers) == 5
    at.button(key="shell_playground_undo").click().run()
    assert job(at) is trained and at.number_input(key="layers").value == 3


def test_saved_model_loads_back_and_a_corrupt_one_is_refused():
    at = open_page("playground")
    at.button(key="ctl_epoch").click().run()
    poll(at, lambda a: job(a).epoch == 1 and job(a).status()["state"] == "paused")
    j, spec = job(at), run(at).extra["spec"]
    values = state.widget_values(run(at).settings) | {"layers": 3}
    blob = save_bytes(spec, j.model, {"values": values, "seed": 1})
    fresh = open_page("playground")
    fresh.file_uploader(key=upload_key("playground", 0)).set_value(
        ("m.pt", b"garbage", "application/octet-stream")).run()
    assert any("Could not load m.pt" in e.value for e in fresh.error) and not fresh.exception
    fresh.file_uploader(key=upload_key("playground", 1)).set_value(("m.pt", blob, "application/octet-stream")).run()
    assert not fresh.exception and not fresh.error
    loaded = job(fresh).model.state_dict()
    assert all((loaded[k] == v).all() for k, v in j.model.state_dict().items())


def test_a_teacher_can_hide_controls_and_the_link_keeps_their_values():
    at = open_page("playground", hide=["lr", "teacher"], lr="0.1")
    assert not [s for s in at.selectbox if s.key == "lr"]
    assert job(at).config.lr == 0.1
    assert not any("For teachers" in e.label for e in at.expander)


@pytest.mark.parametrize("naming", ["labels", "keys"])
def test_a_link_hides_controls_and_shares_values_whether_it_names_labels_or_keys(naming):
    """Streamlit's URL binding writes labels (`hide=Activation`, `dataset=XOR`, as the teacher box
    makes them); a hand-written link may use keys. Both must hide the control and share its value."""
    hide, dataset, activation, optimizer = ("dataset", "activation", "optimizer"), "xor", "relu", "sgd"
    if naming == "labels":
        fmt = state.PLAYGROUND["hide"].fmt
        hide = tuple(fmt(k) for k in hide)
        dataset, activation = state.PLAYGROUND["dataset"].fmt(dataset), state.PLAYGROUND["activation"].fmt(activation)
        optimizer = state.PLAYGROUND["optimizer"].fmt(optimizer)
    at = open_page("playground", hide=list(hide), dataset=dataset, activation=activation, optimizer=optimizer)
    assert not at.exception
    assert not {s.key for s in at.selectbox} & {"dataset", "activation", "optimizer"}
    assert run(at).settings["dataset"] == "xor" and run(at).settings["activation"] == "relu"
    assert job(at).config.optimizer == "sgd"


@pytest.mark.parametrize("name", list(__import__("dl_core.data.data2d", fromlist=["DATASETS"]).DATASETS))
def test_every_dataset_trains_and_draws_in_the_page(name):
    from dl_core.data.data2d import DATASETS

    at = open_page("playground")
    at.selectbox(key="dataset").set_value(name).run()
    at.button(key="ctl_step").click().run()
    poll(at, lambda a: job(a).step == 1 and job(a).status()["state"] == "paused")
    assert not at.exception and not at.error
    assert job(at).data.task == DATASETS[name].task
    drawn = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart") if DATASETS[name].curve else at.get("image")
    assert drawn


def test_cnn_lab_builds_trains_and_shows_feature_maps():
    at = open_page("cnn")
    assert not at.exception and not at.error
    untrained = lambda a: any("Untrained" in c.value for c in a.caption)  # noqa: E731
    mistakes = lambda a: any("confident mistakes" in m.value for m in a.markdown)  # noqa: E731
    assert untrained(at) and not mistakes(at)  # a random network's score is labelled, its "mistakes" not shown
    n_layers = len(at.session_state[state.CNN_LAYERS])
    at.button(key="ctl_epoch").click().run()
    cnn_job = job(at, "cnn")
    poll(at, lambda a: cnn_job.epoch == 1 and cnn_job.status()["state"] == "paused")
    assert float(metric(at, "Validation accuracy").rstrip("%")) > 0
    assert not untrained(at)
    assert cnn_job.view()["epochs"][-1]["test_acc"] > 0.3  # the page's defaults learn in one epoch (chance: 0.1)
    with_maps = [i for i, l in enumerate(at.session_state[state.CNN_LAYERS]) if l.kind not in ("flatten", "linear")]
    assert len(at.select_slider(key="cnn_map_layer").options) == len(with_maps)
    at.select_slider(key="cnn_map_layer").set_value(with_maps[-1]).run()
    heading = [m.value for m in at.markdown if m.value.startswith("**Layer ")]
    assert heading and heading[0].startswith(f"**Layer {with_maps[-1] + 1} · ")
    at.button(key="cnn_del_0").click().run()  # remove the first conv: still a valid stack, one layer fewer
    assert len(at.session_state[state.CNN_LAYERS]) == n_layers - 1 and not at.exception


def test_cnn_lab_edits_a_layer_in_place_and_shows_layer_statistics():
    from ui import builder

    at = open_page("cnn")
    first = at.session_state[state.CNN_LAYERS][0]
    prefix = builder._edit_prefix(0, first)
    at.number_input(key=prefix + "out_channels").set_value(12).run()
    at.button(key=prefix + "apply").click().run()
    layers = at.session_state[state.CNN_LAYERS]
    assert layers[0].p == {**first.p, "out_channels": 12} and not at.exception
    assert job(at, "cnn").model.layers[0].out_channels == 12
    at.button(key="ctl_step").click().run()
    trained = job(at, "cnn")
    poll(at, lambda a: trained.step == 1 and not trained.active)
    assert trained.view()["activations"] and len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) >= 4


def test_cnn_lab_explains_an_impossible_stack_and_keeps_training_off():
    from dl_core.spec import LayerSpec

    at = open_page("cnn")
    layers = at.session_state[state.CNN_LAYERS]
    at.session_state[state.CNN_LAYERS] = [LayerSpec.of("conv2d", out_channels=4, kernel=20, stride=1, padding=0),
                                          *layers]
    at.run()
    assert not at.exception
    assert any("20×20 kernel but its input is only 16×16" in e.value and "Training stays off" in e.value
               for e in at.error)
    assert not [b for b in at.button if b.key == "ctl_train"]


def test_cnn_lab_offline_torchvision_choice_falls_back_with_a_message(tmp_path, monkeypatch):
    from dl_core.data import images

    monkeypatch.setattr(images, "DATA_DIR", tmp_path)
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    at = open_page("cnn")
    at.selectbox(key="cnn_dataset").set_value("fashion").run()
    assert not at.exception
    assert any("offline sets" in w.value for w in at.warning)


def test_cnn_lab_reads_an_uploaded_picture_and_refuses_a_broken_one():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (30, 30), 255).save(buf, "PNG")
    at = open_page("cnn")
    at.session_state["cnn_in_source"] = "upload"
    at.run()
    at.file_uploader(key="cnn_in_upload").set_value(("seven.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    assert any("your picture" in str(i.proto) for i in at.get("image"))
    at.file_uploader(key="cnn_in_upload").set_value(("broken.png", b"nope", "image/png")).run()
    assert not at.exception and any("not a readable image" in e.value for e in at.error)


def test_cnn_lab_schedule_and_early_stopping_reach_the_job():
    at = open_page("cnn")
    at.selectbox(key="cnn_schedule").set_value("cosine").run()
    at.number_input(key="cnn_patience").set_value(3).run()
    at.multiselect(key="cnn_augment").set_value(["flip", "noise"]).run()
    config = job(at, "cnn").config
    assert config.schedule == "cosine" and config.early_stop_patience == 3 and not at.exception
    assert config.augment == ("flip", "noise")
    assert any("six random variations" in str(i.proto) for i in at.get("image"))


def test_cnn_lab_loads_matching_weights_and_refuses_others():
    from dl_core import cnn as cnn_core
    from dl_core.checkpoint import save_bytes
    from dl_core.spec import build

    at = open_page("cnn")
    job_ = job(at, "cnn")
    spec = run(at, "cnn").extra["spec"]
    trained = build(spec, seed=123)
    at.file_uploader(key=upload_key("cnn", 0)).set_value(
        ("w.pt", save_bytes(spec, trained), "application/octet-stream"))
    at.run()
    assert not at.exception and any("its weights are in your network" in s.value for s in at.success)
    assert all((job_.model.state_dict()[k] == v).all() for k, v in trained.state_dict().items())
    other = cnn_core.preset("linear", __import__("dl_core.data.images", fromlist=["digits"]).digits(16))
    at.file_uploader(key=upload_key("cnn", 1)).set_value(
        ("o.pt", save_bytes(other, build(other)), "application/octet-stream"))
    at.run()
    assert any("different network" in e.value for e in at.error) and not at.exception


def test_cnn_reset_keeps_the_trained_network_for_undo():
    at = open_page("cnn")
    at.button(key="ctl_epoch").click().run()
    trained = job(at, "cnn")
    poll(at, lambda a: trained.epoch == 1 and trained.status()["state"] == "paused")
    at.button(key="ctl_reset").click().run()
    assert job(at, "cnn") is not trained and job(at, "cnn").step == 0
    at.button(key="shell_cnn_undo").click().run()
    assert job(at, "cnn") is trained and not at.exception


def test_changed_layers_keep_the_trained_cnn_until_a_fresh_one_is_asked_for():
    at = open_page("cnn")
    at.button(key="ctl_step").click().run()
    trained = job(at, "cnn")
    poll(at, lambda a: trained.step == 1 and not trained.active)
    at.button(key="cnn_del_0").click().run()  # the layers change: the trained network stays, with a warning
    assert job(at, "cnn") is trained
    assert any("until you start a fresh one" in w.value for w in at.warning)
    at.button(key="cnn_fresh").click().run()
    fresh = job(at, "cnn")
    assert fresh is not trained and fresh.step == 0 and at.session_state[previous_key("cnn")].job is trained
    assert not at.exception


def test_cnn_new_images_keep_the_trained_network_with_its_own_images():
    """Colour shapes trained, then the digits picked: the kept network must not be fed the
    one-channel digits (it crashed with a channel mismatch)."""
    at = open_page("cnn")
    at.selectbox(key="cnn_dataset").set_value("shapes").run()
    at.button(key="ctl_epoch").click().run()
    trained = job(at, "cnn")
    poll(at, lambda a: trained.epoch >= 1 and not trained.active)
    at.selectbox(key="cnn_dataset").set_value("digits").run()
    assert not at.exception
    assert any("kept, with the images it was trained on" in w.value for w in at.warning)
    assert job(at, "cnn") is trained and run(at, "cnn").extra["data"].name.lower().startswith("shape")


def test_the_live_view_hands_its_pictures_over_without_a_second_encoding(monkeypatch):
    """Streamlit decodes and re-encodes an image whose format it has to guess, on every redraw
    (a fifth of a full room's server time): the live view names its format, so no picture of the
    Playground's network or output map is ever encoded by Streamlit."""
    from streamlit.elements.lib import image_utils

    checked, original = [], image_utils._ensure_image_size_and_format

    def same_bytes(data, *args):
        out = original(data, *args)
        assert out is data, "Streamlit re-encoded a picture"
        checked.append(len(data))
        return out

    at = open_page("playground")
    monkeypatch.setattr(image_utils, "_ensure_image_size_and_format", same_bytes)
    at.button(key="ctl_train").click().run()
    poll(at, lambda a: int(metric(a, "Epoch").replace(",", "")) >= 2)
    at.button(key="ctl_pause").click().run()
    poll(at, lambda a: job(a).status()["state"] == "paused")
    assert not at.exception and len(checked) >= 4  # the network and the output map, at least twice


def test_the_heavy_parts_of_closed_panels_are_drawn_only_once_opened():
    """The clickable plane (plotly) and the model's table and code cost a browser ~3.4 of the
    ~7.5 s it spent on its first drawing of the Playground: closed, the page leaves them out;
    opened, they are there (the downloads and uploaders are there either way)."""
    at = open_page("playground")
    labels = {d.proto.label for d in at.get("download_button")}
    assert not at.get("plotly_chart") and not at.dataframe and not any("import torch" in c.value for c in at.code)
    assert {"⬇ Trained model (.pt)", "⬇ These points as CSV"} <= labels
    at.session_state["pg_own_points"] = True
    at.session_state[panel_key("playground")] = True
    at.run()
    assert len(at.get("plotly_chart")) == 1 and at.dataframe
    assert any("import torch" in c.value for c in at.code)
    assert any(c.value.startswith("One network, 186 parameters, all trained by Adam at a learning rate of 0.03")
               for c in at.caption)  # the panel names every network the job trains


def test_an_unforeseen_error_shows_a_learner_no_traceback():
    """Students saw tracebacks with the server's paths (client.showErrorDetails was left on)."""
    import tomllib

    from streamlit import config
    from streamlit.elements.exception import _error_detail_visibility

    served = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"]
    before = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", served)
    try:
        assert tuple(_error_detail_visibility(True)) == (False, False, False)  # no message, no trace, no type
    finally:
        config.set_option("client.showErrorDetails", before)


def test_hiding_the_teacher_box_keeps_it_on_the_teachers_own_page():
    """Hiding 'this teacher box' hid it from the teacher too, with the share link and the hide list."""
    at = open_page("playground")
    at.multiselect(key="hide").set_value(["lr", "teacher"]).run()
    assert not at.exception
    assert at.multiselect(key="hide").value == ["lr", "teacher"]  # the box, its list and its link are still here
    assert any("For teachers" in e.label for e in at.expander)
    student = open_page("playground", hide=["lr", "teacher"])  # the link, opened by a student
    assert not any("For teachers" in e.label for e in student.expander)


def test_the_cnn_labs_test_section_says_it_is_out_of_date_while_training():
    """'Test accuracy 5.9 %' and the per-class bars described the untrained network while the
    validation accuracy read 97.8 %, with nothing marking them out of date."""
    at = open_page("cnn")
    assert not [c for c in at.caption if "Out of date while training" in c.value]
    at.button(key="ctl_train").click().run()
    try:
        assert job(at, "cnn").active
        assert any(m.label == "Test accuracy (epoch 0)" for m in at.metric)
        assert [c for c in at.caption if "Out of date while training" in c.value]
    finally:
        job(at, "cnn").pause()
