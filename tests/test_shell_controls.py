"""The training controls never stay stale: a job that ends between drawing the buttons and
drawing the live view (a ⏭ Step or ⏩ Epoch often does) gets the page redrawn once.

Found in the browser (tests/test_browser_runs.py): after a step the buttons stayed on
⏸ Pause with ⏭ Step and ⏩ Epoch greyed out, and nothing polled, until the next click.
Here the race is made certain: the job reports itself busy to the first `n` status reads.
"""
import json

import pytest
from test_pages import open_page

from ui.shell import run_key


class EndsWhileDrawing:
    """A real, idle job that says "running" to the first `busy_reads` status() calls."""

    def __init__(self, job, busy_reads: int):
        self._job, self._left = job, busy_reads

    def status(self):
        status = self._job.status()
        if self._left > 0:
            self._left -= 1
            status |= {"busy": True, "state": "running"}
        return status

    def __getattr__(self, name):
        return getattr(self._job, name)


@pytest.mark.parametrize("lab", ["playground", "cnn", "gradflow"])
def test_controls_drawn_busy_for_a_job_that_has_ended_are_redrawn(lab):
    at = open_page(lab)
    run = at.session_state[run_key(lab)]
    assert not run.job.active
    run.job = EndsWhileDrawing(run.job, busy_reads=2)  # whatever the shell reads before drawing, and the buttons
    at.run()
    assert not at.exception
    keys = {b.key for b in at.button}
    assert "ctl_train" in keys and "ctl_pause" not in keys, keys
    assert not next(b for b in at.button if b.key == "ctl_step").disabled


def test_a_step_moves_the_step_counter_and_shows_that_batchs_loss():
    """Losses are measured per epoch, so after one ⏭ Step only the step counter and the batch's
    own loss can move: both must show it (they did not; the count hid in a tooltip)."""
    from test_pages import counters, job, poll

    at = open_page("playground")
    at.button(key="ctl_step").click().run()
    poll(at, lambda a: job(a).step == 1 and not job(a).active)
    value, note = counters(at)["Step"]
    loss = job(at).view()["steps"][-1][1]
    assert value == "1" and f"batch loss {loss:.2g}" == note, (value, note)


def test_speed_and_stop_reach_the_job_and_suit_the_task():
    from test_pages import job

    at = open_page("playground")
    per_epoch = -(-job(at).trainer.n_train // job(at).config.batch_size)
    assert job(at).config.max_epochs == 300 and job(at).config.steps_per_s == 10 * per_epoch  # the defaults
    at.select_slider(key="speed").set_value("full").run()
    assert job(at).config.steps_per_s is None
    at.select_slider(key="speed").set_value("step1").run()
    at.selectbox(key="stop").set_value("acc95").run()
    cfg = job(at).config
    assert cfg.steps_per_s == 1.0 and cfg.target_acc == 0.95 and cfg.max_epochs is None
    at.selectbox(key="dataset").set_value("plane").run()  # regression: no accuracy goal to offer
    assert "acc95" not in at.selectbox(key="stop").options and not at.exception
    assert job(at).config.target_acc is None and job(at).config.max_epochs == 300


def test_train_after_the_epoch_limit_raises_the_stop_and_trains_on():
    """▶ Train after "Finished 300 epochs" trained about one epoch and stopped again, unexplained."""
    from test_pages import job, poll

    at = open_page("playground")
    at.selectbox(key="stop").set_value("e100").run()
    at.select_slider(key="speed").set_value("full").run()
    at.button(key="ctl_train").click().run()
    poll(at, lambda a: job(a).status()["state"] == "finished", timeout=120)
    assert job(at).epoch == 100
    assert any("Train on raises *Stop*" in s.value for s in at.success)
    train_on = at.button(key="ctl_train")
    assert train_on.label == "▶ Train on" and "at epoch 300" in train_on.help
    train_on.click().run()
    assert at.session_state["stop"] == "e300" and job(at).config.max_epochs == 300
    poll(at, lambda a: job(a).epoch >= 110, timeout=120)  # more than the one epoch it used to train
    job(at).pause()


def test_a_collapsed_run_is_told_and_its_best_weights_come_back_with_one_click():
    from test_pages import counters, job

    from conftest import wait_for
    from dl_core.engine.stopping import COLLAPSE_EPOCHS

    at = open_page("playground")
    j = job(at)
    j.set_config(target_acc=0.95)
    j.start()
    wait_for(lambda: not j.active, timeout=60)
    peak = j.evaluate()["test_acc"]
    with j.lock:
        j.model.layers[-1].weight.data.zero_()
    j.set_config(lr=0.0, target_acc=None, max_epochs=j.epoch + COLLAPSE_EPOCHS + 2)
    j.start()
    wait_for(lambda: not j.active, timeout=60)
    at.run()
    assert any("collapsed" in w.value for w in at.warning), [w.value for w in at.warning]
    collapsed = counters(at)["Test accuracy"][0]
    at.button(key="ctl_restore_peak").click().run()
    assert j.evaluate()["test_acc"] == peak and not any("collapsed" in w.value for w in at.warning)
    # every view at once, and it says so: the counters showed the collapsed network until another epoch
    assert counters(at)["Test accuracy"][0] == f"{peak:.0%}" != collapsed, (counters(at), peak)
    assert any("are back" in s.value for s in at.success)


class Training(EndsWhileDrawing):
    """A real, idle job that says it is training (status and `active`) to every read."""

    active = True

    def __init__(self, job):
        super().__init__(job, busy_reads=10**9)


@pytest.mark.parametrize("lab", ["playground", "cnn", "gradflow", "sequence"])
@pytest.mark.parametrize("room", [1, 30])
def test_the_browser_asks_for_the_counters_and_the_pictures_slow_down_as_the_room_fills(lab, room, monkeypatch):
    """While a job trains, its counters come from the browser asking this server's route
    (ui/counters.py: no script run), at the lab's pace alone and every TICK_S in a full room;
    the status line, pictures and charts redraw in one fragment, at the lab's pace alone and
    every VIEWS_S once the room fills (widgets.poll_interval). The route answers the page's
    token with what the page drew, and nothing for any other token."""
    import json

    import streamlit

    from ui import counters, widgets

    paces, fragment = [], streamlit.fragment

    def spy(func=None, *, run_every=None):
        paces.append(run_every)
        return fragment(func, run_every=run_every) if func else fragment(run_every=run_every)

    at = open_page(lab)
    run = at.session_state[run_key(lab)]
    run.job = Training(run.job)
    monkeypatch.setattr(streamlit, "fragment", spy)
    monkeypatch.setattr(widgets, "executor", lambda: type("Room", (), {"load": lambda self: {
        "training": room, "lanes": 2, "queued": 0}})())
    at.run()
    assert not at.exception
    drawn = [e.proto for e in at.get("bidi_component")
             if e.proto.component_name == "dllab.counters"]
    assert len(drawn) == 1 and "Epoch" in counters.shown(drawn[0])
    data = json.loads(drawn[0].json)
    live = [p for p in paces if p is not None]
    if room == 1:  # the lab's own pace, and the counters at least as often
        assert len(live) == 1 and live[0] < 1.0, paces
        assert data["every_ms"] / 1000 == min(live[0], widgets.TICK_S), (paces, data)
    else:
        assert live == [widgets.VIEWS_S] and data["every_ms"] / 1000 == widgets.TICK_S < 1.0, (paces, data)
    token = data["url"].split("k=")[1]
    assert data["url"] == f"{counters.PATH}?k={token}" and len(token) >= 20
    assert counters.read(token)["values"] == data["values"] and counters.read(token)["live"]
    assert counters.read(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_an_idle_job_s_counters_are_drawn_without_asking_the_server():
    at = open_page("playground")
    drawn = next(e.proto for e in at.get("bidi_component"))
    assert json.loads(drawn.json)["url"] is None and json.loads(drawn.json)["values"][0] == ["Epoch", "0", None]


def test_the_counters_route_answers_over_http_and_forgets_a_job_that_is_gone():
    """The route itself (as Streamlit's server mounts it): JSON for a known token, 404 for an
    unknown one, and 404 once the job is garbage (a token never keeps a job alive)."""
    import asyncio
    import gc

    from starlette.requests import Request

    from ui import counters

    class Job:
        def status(self):
            return {"busy": True}

    def get(tok):
        scope = {"type": "http", "method": "GET", "path": counters.PATH, "query_string": f"k={tok}".encode(),
                 "headers": []}
        reply = asyncio.run(counters.ROUTES[0].endpoint(Request(scope)))
        return reply.status_code, json.loads(reply.body)

    job = Job()
    values = lambda j: [counters.Counter("Epoch", "7", "note")]  # noqa: E731
    tok = counters.token(job, values)
    assert counters.token(job, values) == tok  # one token a job
    assert get(tok) == (200, {"values": [["Epoch", "7", "note"]], "live": True})
    assert get("nope")[0] == 404
    del job
    gc.collect()
    assert get(tok)[0] == 404


@pytest.mark.parametrize("version", [("snap", 1), ("snap", 2)])
def test_a_picture_built_ahead_is_sent_as_built_and_only_for_its_version(version):
    """widgets.picture_ahead builds a picture off the page's thread (as a snapshot arrives);
    widgets.picture then sends those bytes without building it again, for that version only:
    for another one it builds its own (here, a builder that refuses, so the page shows an error)."""
    from streamlit.testing.v1 import AppTest

    def script(version):
        import time

        from PIL import Image

        from ui import widgets

        widgets.picture_ahead("test:ahead", ("snap", 1), lambda: Image.new("RGB", (8, 8), "red"))
        end = time.monotonic() + 30
        while widgets._BUILT.get("test:ahead") is None and time.monotonic() < end:
            time.sleep(0.05)

        def again():
            raise RuntimeError("built again")

        widgets.picture("test", version, again, ahead="test:ahead")

    at = AppTest.from_function(script, args=(version,)).run(timeout=60)
    if version == ("snap", 1):
        assert not at.exception
    else:
        assert at.exception and "built again" in at.exception[0].message


def test_a_picture_that_fails_ahead_does_not_stop_the_builder():
    import io

    from PIL import Image

    from conftest import wait_for
    from ui import widgets

    widgets.picture_ahead("test:broken", 1, lambda: 1 / 0)
    widgets.picture_ahead("test:fine", 1, lambda: Image.new("RGB", (4, 4), "blue"))
    wait_for(lambda: widgets._BUILT.get("test:fine") is not None, timeout=30)
    assert "test:broken" not in widgets._BUILT
    version, data, _ = widgets._BUILT["test:fine"]
    assert version == 1 and Image.open(io.BytesIO(data)).size == (4, 4)


def test_the_builder_skips_a_picture_that_a_newer_snapshot_superseded_in_its_queue():
    """A room's snapshots can come faster than one thread draws them: of a picture's versions
    still waiting, only the newest is drawn (an older one would never be shown)."""
    import threading

    from PIL import Image

    from conftest import wait_for
    from ui import widgets

    busy, drawn = threading.Event(), []

    def slow():
        busy.wait(30)
        return Image.new("RGB", (4, 4))

    def draw(version):
        drawn.append(version)
        return Image.new("RGB", (4, 4))

    widgets.picture_ahead("test:busy", 1, slow)  # holds the builder while the next two queue up
    for version in (1, 2):
        widgets.picture_ahead("test:superseded", version, lambda v=version: draw(v))
    busy.set()
    wait_for(lambda: widgets._BUILT.get("test:superseded", (None,))[0] == 2, timeout=30)
    assert drawn == [2]


def test_a_mistyped_link_says_once_which_values_it_left_out_and_why():
    """?lr=-1, ?layers=999, ?dataset=nope fell back to their defaults without a word."""
    at = open_page("playground", lr="-1", layers="999", dataset="nope", batch="16")
    said = [w.value for w in at.warning if "This link's values" in w.value]
    assert len(said) == 1, [w.value for w in at.warning]
    for part in ("lr=-1 (learning rate: not one of its choices)", "layers=999 (hidden layers: a number from 0 to 8)",
                 "dataset=nope (data: not one of its choices)"):
        assert part in said[0], said[0]
    assert "batch" not in said[0]  # a good value is not named
    at.run()
    assert not [w for w in at.warning if "This link's" in w.value]  # once
    assert not [w for w in open_page("playground", lr="0.01").warning if "This link's" in w.value]
