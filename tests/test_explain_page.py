"""The Explainability Lab page, through AppTest: the grid, filled in by the session's explanation
job on the executor's lanes, the cost asked before a long run, targets, filters, own images,
the trust sections (the shuffled-label twin trains as a job), and the learner's own CNN Lab and
Playground models."""
import io
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from test_explain_jobs import same
from test_pages import open_page, poll, switch_to

from dl_core import explain, explain_jobs, reference
from ui import explain_work, state
from ui.shell import run_key


def captions(at) -> list[str]:
    return [str(i.proto) for i in at.get("image")]


def waiting(at) -> int:
    """Maps on the page not back yet (their input, greyed, stands in)."""
    return sum("computing" in c or "not computed" in c for c in captions(at))


def filled(at):
    return poll(at, lambda a: not waiting(a) and not a.exception)


def session_job(at):
    held = at.session_state[explain_work.JOB] if explain_work.JOB in at.session_state else None
    return held and held[1]


@pytest.fixture
def paced(monkeypatch):
    """Explanation jobs at 8 tasks a second (the executor paces them): a grid is seen filling in."""
    monkeypatch.setattr(explain_jobs, "CONFIG", replace(explain_jobs.CONFIG, steps_per_s=8.0))


def test_the_grid_fills_in_from_the_sessions_job_with_the_maps_computed_directly(paced):
    at = open_page("explain")
    assert not at.exception and not at.error
    methods = at.pills(key="xp_methods").value
    n_inputs = at.slider(key="xp_f_count").value
    job = session_job(at)
    assert job is not None and job.active and waiting(at) >= n_inputs * len(methods)  # the run did not wait
    seen = {len([c for c in captions(at) if " ms" in c])}
    while job.active:
        time.sleep(0.2)
        at.run()
        seen.add(len([c for c in captions(at) if " ms" in c]))
    filled(at)
    timed = [c for c in captions(at) if " ms" in c]
    assert len(methods) == 4 and len(timed) >= n_inputs * len(methods)
    assert seen - {0, len(timed)}, seen  # some maps were drawn before the others were back
    assert any("gap" in c for c in timed)  # Integrated Gradients shows its completeness gap
    ex = at.session_state[state.XP_EXPLAINER]
    for task in job.trainer.tasks:  # on the server's lanes (a worker) as here, to the bit
        assert same(ex.cached(task.key), task.fn(ex.model, *task.args))
    poll(at, lambda a: session_job(a) is not None and not session_job(a).active and not waiting(a))
    settled = session_job(at)
    at.run()
    assert session_job(at) is settled  # an unchanged rerun asks for nothing


def test_a_long_configuration_shows_its_cost_and_computes_nothing_until_the_click(monkeypatch):
    monkeypatch.setattr(explain_jobs, "pass_seconds", lambda model, shape, batch=32: 0.01)  # a slow machine
    at = open_page("explain")
    poll(at, lambda a: not waiting(a) and not session_job(a).active)  # the first maps, at the default settings
    at.slider(key="xp_integrated_gradients_n_steps").set_value(300).run()
    at.selectbox(key="xp_tunnel").set_value("smoothgrad").run()
    assert at.pills(key="xp_methods").value == list(explain.DEFAULT_SET)
    n_inputs = at.slider(key="xp_f_count").value
    # new: Saliency and Integrated Gradients in the tunnel, and the latter in "What if?" (no tunnel there);
    # GradCAM and Occlusion (never tunnelled) and the rest are cached from the first run
    shape, steps, copies = (1, 28, 28), {"n_steps": 300}, {"nt_samples": 10}
    passes = (n_inputs * (explain_jobs.passes("saliency", None, shape, "smoothgrad", copies)
                          + explain_jobs.passes("integrated_gradients", steps, shape, "smoothgrad", copies))
              + explain_jobs.passes("integrated_gradients", steps, shape))
    n_maps = 2 * n_inputs + 1
    label = f"▶ Compute {n_maps} maps (about {passes * 0.01:,.0f} s)"
    assert [b.label for b in at.button if b.key == "xp_compute"] == [label]
    assert any("Integrated Gradients gets 3" in c.value for c in at.caption)  # the tunnel's cap, said
    time.sleep(0.5)
    at.run()
    assert session_job(at) is None and waiting(at) == n_maps  # nothing computes meanwhile
    at.button(key="xp_compute").click().run()
    assert session_job(at) is not None
    filled(at)
    assert not [b for b in at.button if b.key == "xp_compute"]


def test_a_second_request_replaces_the_first(paced):
    at = open_page("explain")
    first = session_job(at)
    assert first.active
    at.pills(key="xp_methods").set_value(["saliency", "guided_backprop"]).run()
    second = session_job(at)
    assert second is not first and second.active
    first.join(5)
    assert first.status()["state"] == "stopped" and not first.executor.holds(first)
    assert len(explain_jobs.done(first)) < len(first.trainer.tasks)
    assert {t.key[3] for t in second.trainer.tasks} == {"saliency", "guided_backprop", "gradcam"}  # (+ depth)
    filled(at)
    n_inputs = at.slider(key="xp_f_count").value
    at.radio(key="xp_target_mode").set_value("pick").run()
    at.selectbox(key="xp_target_class").set_value(7).run()
    assert sum("explaining 7" in c for c in captions(at)) == n_inputs and not at.exception


def test_a_failure_is_one_sentence_with_a_way_to_try_again(monkeypatch, executor):
    def broken(*args):
        raise RuntimeError("Captum could not hook this layer")

    make = explain_jobs.explanation_job  # on this process's lanes: a worker would import the real function
    monkeypatch.setattr(explain_jobs, "explanation_job", lambda nets, tasks: make(nets, tasks, executor))
    monkeypatch.setattr(explain, "explain_image", broken)
    at = open_page("explain")
    poll(at, lambda a: a.error)
    assert [e.value for e in at.error] == ["The explanations could not be computed: Captum could not hook this layer"]
    assert [b.label for b in at.button if b.key == "xp_retry"] == ["↻ Try again"] and not at.exception


def test_filters_choose_the_inputs_and_an_empty_filter_says_so():
    at = open_page("explain")
    at.selectbox(key="xp_f_class").set_value(3).run()
    rows = [c for c in captions(at) if "says" in c and "true" in c]
    assert rows and all("true 3" in c for c in rows)
    at.selectbox(key="xp_f_outcome").set_value("wrong").run()
    at.selectbox(key="xp_f_order").set_value("least confident first").run()
    assert not at.exception  # either the wrong 3s, or a plain message that there are none
    if not any("true 3" in c for c in captions(at)):
        assert any("No test image matches" in i.value for i in at.info)


def test_an_uploaded_picture_is_explained_beside_the_test_images():
    buf = io.BytesIO()
    img = np.zeros((40, 40), np.uint8)
    img[5:35, 18:23] = 255  # a "1"
    Image.fromarray(img).save(buf, "PNG")
    at = open_page("explain")
    at.session_state["xp_own_source"] = "upload"
    at.run()
    at.file_uploader(key="xp_own_upload").set_value(("one.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and any("your picture" in c for c in captions(at))


def test_a_decompression_bomb_upload_is_one_sentence_and_the_page_goes_on():
    """At 14000² pixels Pillow's DecompressionBombError reached the page as a traceback."""
    buf = io.BytesIO()
    Image.new("1", (14000, 14000)).save(buf, "PNG")  # ~24 KB
    at = open_page("explain")
    at.session_state["xp_own_source"] = "upload"
    at.run()
    at.file_uploader(key="xp_own_upload").set_value(("bomb.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["That picture has too many pixels; the limit is 16,777,216. "
                                           "Showing a test image instead."]


def test_trust_sections_report_faithfulness_and_sanity_checks_with_a_twin_trained_as_a_job():
    at = open_page("explain")
    at.pills(key="xp_methods").set_value(["saliency", "guided_backprop"]).run()
    poll(at, lambda a: len(a.dataframe) == 1)
    faith = at.dataframe[0].value
    assert list(faith["method"]) == ["Saliency", "Guided Backprop"] and (faith["infidelity ↓"] >= 0).all()
    at.slider(key="xp_wi_row").set_value(2).run()  # new "What if?" maps to compute: the table stays meanwhile
    assert at.dataframe[0].value.equals(faith)
    at.button(key="xp_run_sanity").click().run()
    assert not at.exception
    twin = at.session_state[explain_work.TWIN][-1]
    assert twin.active  # the run came back while the copy trains on the lanes
    assert twin.config.max_epochs == reference.TWIN_EPOCHS and twin.trainer.n_train == reference.TWIN_IMAGES
    assert any("Training a copy of the network on shuffled labels" in c.value for c in at.caption)
    poll(at, lambda a: len(a.dataframe) == 2 and a.dataframe[1].value["model trained on shuffled labels"].notna().all(),
         timeout=60)
    assert twin.status()["state"] == "finished" and twin.epoch == reference.TWIN_EPOCHS
    sanity = at.dataframe[1].value
    assert list(sanity["method"]) == ["Saliency", "Guided Backprop"]
    assert sanity["after randomising all layers"].between(-1, 1).all()
    assert sanity["model trained on shuffled labels"].between(-1, 1).all()
    assert sanity["verdict"].iloc[0].startswith("✅")  # Saliency depends on the weights
    assert not [b for b in at.button if b.key == "xp_run_sanity"]  # answered: the button gives way to the results
    at.button(key="xp_sensitivity").click().run()
    poll(at, lambda a: len(a.dataframe) == 3)
    assert (at.dataframe[1].value["max sensitivity ↓"] > 0).all()  # drawn inside the first tab, after its table
    at.selectbox(key="xp_tunnel").set_value("smoothgrad").run()
    assert not at.exception


def test_the_learners_cnn_and_playground_models_can_be_explained():
    at = open_page("cnn")
    at.button(key="ctl_epoch").click().run()
    job = at.session_state[run_key("cnn")].job
    poll(at, lambda a: job.epoch == 1 and not job.active)
    switch_to(at, "explain")
    at.radio(key="xp_model").set_value("cnn").run()
    assert not at.exception and any("Your CNN Lab network, trained" in c.value for c in at.caption)
    assert at.session_state[state.XP_EXPLAINER].version == ("cnn", id(job), job.step)
    switch_to(at, "playground")
    at.button(key="ctl_step").click().run()
    pg = at.session_state[run_key("playground")].job
    poll(at, lambda a: pg.step == 1 and not pg.active)
    switch_to(at, "explain")
    at.radio(key="xp_model").set_value("playground").run()
    assert not at.exception
    features = at.session_state[run_key("playground")].extra["spec"].input_names
    assert [c for c in captions(at) if any(f"caption: \"{f}\"" in c for f in features)]
    at.selectbox(key="xp_pg_method").set_value("integrated_gradients").run()
    assert not at.exception
