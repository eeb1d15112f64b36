"""The backpropagation, gradient-flow and optimizer pages, through AppTest."""
import json
import threading

import numpy as np
import pytest
import streamlit as st
from test_pages import open_page, poll, switch_to

from dl_core import deepnets, surfaces, tuning
from dl_core.data import data2d
from ui import backprop_figures as bf
from ui import state
from ui.shell import run_key


def metric(at, label):
    return next(m.value for m in at.metric if m.label.startswith(label))


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_stepping_through_the_whole_backward_pass_without_an_exception(act, task):
    at = open_page("backprop")
    at.selectbox(key="bp_act").set_value(act).run()
    at.radio(key="bp_task").set_value(task).run()
    seen = set()
    for _ in range(60):
        seen.add(at.markdown[-1].value if at.markdown else "")
        if at.button(key="bp_next").disabled:
            break
        at.button(key="bp_next").click().run()
        assert not at.exception
    assert at.button(key="bp_next").disabled  # reached the last step
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    assert any("Weights into neuron" in t for t in titles)
    assert float(metric(at, "Largest |hand − autograd|")) < 1e-6
    assert float(metric(at, "Largest |hand − finite difference|")) < 1e-5


def test_updates_lower_the_loss_and_an_edited_weight_changes_it():
    at = open_page("backprop")
    before = float(metric(at, "Loss"))
    at.button(key="bp_sgd10").click().run()
    losses = at.session_state[state.BP_LOSSES]
    assert len(losses) == 11 and losses[-1] < losses[0] == pytest.approx(before, abs=1e-5)  # shown to 5 places
    name = at.selectbox(key="bp_edit_name").value
    key = f"bp_edit_value_{name}_0_0"
    at.number_input(key=key).set_value(5.0).run()
    at.button(key="bp_edit_set").click().run()
    assert float(dict(at.session_state[state.BP_MODEL].named_parameters())[name][0, 0].detach()) == 5.0
    assert float(metric(at, "Loss")) != pytest.approx(losses[-1])


def test_the_playground_network_can_be_stepped_through():
    at = open_page("playground")
    switch_to(at, "backprop")
    at.toggle(key="bp_use_pg").set_value(True).run()
    assert not at.exception
    assert float(metric(at, "Largest |hand − autograd|")) < 1e-6


def test_gradient_flow_presets_show_vanishing_and_its_fixes():
    at = open_page("gradflow")
    vanishing = float(metric(at, "First layer ÷ last layer"))
    for preset in ("he", "bn", "res"):
        at.button(key=f"gf_preset_{preset}").click().run()
        assert float(metric(at, "First layer ÷ last layer")) > 1e4 * vanishing, preset
    at.button(key="ctl_epoch").click().run()
    job = at.session_state[run_key("gradflow")].job
    poll(at, lambda a: job.epoch >= 1 and not job.active)
    assert not at.exception and job.view()["activations"] and job.snapshot()["histograms"]


def test_the_gradient_flow_factory_makes_a_job_that_learns(executor):
    name = next(k for k, v in data2d.DATASETS.items() if not v.curve and v.n_classes == 2)  # the page's default
    ds = data2d.make_dataset(name, 500, 0.1, 0.7, 1)
    job = deepnets.make_job(ds, deepnets.deep_spec(2, 5, 16, "relu", 2, input_names=("x", "y")), "kaiming", "relu", 1)
    job.executor = executor
    job.set_config(max_epochs=5)
    losses = [e["train_loss"] for e in tuning.train_blocking(job, 60).view()["epochs"]]
    assert len(job.data.x_train) == len(ds.train[0]) and len(losses) >= 5
    assert losses[-1] < 0.8 * losses[0], losses


def lanes() -> int:
    return sum(t.name.startswith("training-lane-") for t in threading.enumerate())


def test_the_optimizers_demo_runs_leave_no_lane_threads_behind():
    """Its runs train on the server's executor: a page that made an executor of its own on every
    rerun left one more lane thread behind each time it trained something."""
    at = open_page("optimizers")
    at.slider(key="opt_sched_epochs").set_value(5).run()
    at.button(key="opt_sched_run").click().run()
    before = lanes()
    for i in range(20):
        at.selectbox(key="opt_surface").set_value("beale" if i % 2 else "rosenbrock").run()
        if i in (7, 15):
            at.button(key="opt_sched_run").click().run()
    assert len(at.session_state[state.OPT_SCHEDULES]) == 4 and not at.exception
    assert 0 < lanes() <= before


def test_the_learning_rate_range_test_runs_once_per_setup(monkeypatch):
    real, calls = tuning.lr_range_test, []
    monkeypatch.setattr(tuning, "lr_range_test", lambda *a, **k: calls.append(a) or real(*a, **k))
    st.cache_data.clear()  # another test's page may have cached this set-up's curve already
    at = open_page("optimizers")
    at.run()
    at.selectbox(key="opt_surface").set_value("beale").run()
    assert len(calls) == 1 and not at.exception


def test_changing_the_optimizer_changes_the_race():
    at = open_page("optimizers")
    first = at.dataframe[0].value
    at.multiselect(key="opt_keys").set_value(["adagrad", "rmsprop", "nesterov", "adamw"]).run()
    second = at.dataframe[0].value
    assert list(first["optimizer"]) == ["SGD", "SGD + momentum", "Adam"]
    assert list(second["optimizer"]) == ["Adagrad", "RMSprop", "Nesterov", "AdamW"] and not at.exception
    at.selectbox(key="opt_surface").set_value("rosenbrock").run()
    assert not at.exception
    lines = [(t["line"]["color"], t["line"]["dash"]) for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
             if t.get("mode") == "lines+markers"]
    assert len(lines) == 4 and len(set(lines)) == 4  # every optimizer keeps its own, distinct look


@pytest.mark.parametrize("surface", list(surfaces.SURFACES))
def test_every_surfaces_default_race_shows_something(surface):
    """At the surface's own rates and steps, with the page's default racers (SGD, momentum, Adam):
    nobody blows up, somebody arrives near a minimum, and somebody does not (plain SGD), so the
    race shows a difference. With one shared rate of 0.001 nobody got near the banana's minimum."""
    surf = surfaces.SURFACES[surface]
    ends = {}
    for key in ("sgd", "momentum", "adam"):
        path = surfaces.trajectory(surface, key, {"lr": surfaces.rate(surface, key)}, surf.steps)
        assert len(path) == surf.steps + 1, f"{key} diverged"
        ends[key] = min(np.hypot(path[-1, 0] - mx, path[-1, 1] - my) for mx, my in surf.minima)
    assert min(ends.values()) < 0.25, ends
    assert ends["sgd"] > 0.5, ends


def test_the_race_page_starts_each_surface_at_its_own_rates():
    at = open_page("optimizers")
    at.selectbox(key="opt_surface").set_value("rosenbrock").run()
    assert at.select_slider(key="opt_lr_rosenbrock").value == 0.001
    assert at.select_slider(key="opt_alr_rosenbrock").value == 0.1
    assert at.slider(key="opt_steps_rosenbrock").value == 500
    ends = dict(zip(at.dataframe[0].value["optimizer"], at.dataframe[0].value["loss at the end"]))
    assert ends["Adam"] < 0.05 and ends["SGD + momentum"] < 0.05 and ends["SGD"] > 1, ends
    assert not at.exception


def test_every_optimizer_has_its_own_path_style():
    assert set(bf.PATH_STYLE) == {o.label for o in surfaces.OPTIMIZERS.values()}
    assert len(set(bf.PATH_STYLE.values())) == len(bf.PATH_STYLE)


def test_batch_sizes_and_the_landscape_run_on_request():
    at = open_page("optimizers")
    at.button(key="opt_batch_run").click().run()
    runs = at.session_state[state.OPT_BATCH]
    assert runs["batch 1"]["updates"] > runs["batch 256"]["updates"]
    at.button(key="opt_sched_run").click().run()
    assert len(at.session_state[state.OPT_SCHEDULES]) == 4 and not at.exception
    at.radio(key="opt_dirs").set_value("the training path's own (PCA)").run()
    at.button(key="opt_land_run").click().run()
    alphas, one_d, two_d, coords, explained, _ = at.session_state[state.OPT_LANDSCAPE]
    assert two_d.shape == (41, 41) and coords.shape[1] == 2 and 0 < explained <= 1
    assert not at.exception


@pytest.mark.parametrize("page, kind, key, value", [
    ("cnn", "selectbox", "cnn_dataset", "shapes"),
    ("explain", "selectbox", "xp_f_outcome", "wrong"),
    ("backprop", "selectbox", "bp_act", "sigmoid"),
    ("gradflow", "slider", "gf_depth", 10),
    ("optimizers", "selectbox", "opt_surface", "beale"),
])
def test_a_labs_settings_survive_a_visit_to_another_page(page, kind, key, value):
    at = open_page(page)
    getattr(at, kind)(key=key).set_value(value).run()
    switch_to(at, "start")
    switch_to(at, page)
    assert getattr(at, kind)(key=key).value == value and not at.exception


def test_the_gradient_flow_network_is_still_there_after_a_visit_elsewhere():
    at = open_page("gradflow")
    at.button(key="ctl_epoch").click().run()
    job = at.session_state[run_key("gradflow")].job
    poll(at, lambda a: job.epoch >= 1 and not job.active)
    at.slider(key="gf_depth").set_value(12).run()  # a new network for the new depth, then train it
    job = at.session_state[run_key("gradflow")].job
    at.button(key="ctl_epoch").click().run()
    poll(at, lambda a: job.epoch >= 1 and not job.active)
    switch_to(at, "optimizers")
    switch_to(at, "gradflow")
    assert at.session_state[run_key("gradflow")].job is job and job.epoch >= 1 and not at.exception
