"""The Explainability Lab page, through AppTest: the grid, targets, filters, own images,
the trust sections, and the learner's own CNN Lab and Playground models."""
import io

import numpy as np
from PIL import Image
from test_pages import open_page, poll, switch_to

from ui import state
from ui.shell import run_key


def captions(at) -> list[str]:
    return [str(i.proto) for i in at.get("image")]


def test_the_grid_has_one_map_per_method_and_input_with_its_cost():
    at = open_page("explain")
    assert not at.exception and not at.error
    methods = at.pills(key="xp_methods").value
    n_inputs = at.slider(key="xp_f_count").value
    timed = [c for c in captions(at) if " ms" in c]
    assert len(methods) == 4 and len(timed) >= n_inputs * len(methods)
    assert any("gap" in c for c in timed)  # Integrated Gradients shows its completeness gap
    at.pills(key="xp_methods").set_value(["saliency", "guided_backprop"]).run()
    at.radio(key="xp_target_mode").set_value("pick").run()
    at.selectbox(key="xp_target_class").set_value(7).run()
    assert sum("explaining 7" in c for c in captions(at)) == n_inputs and not at.exception


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


def test_trust_sections_report_faithfulness_and_sanity_checks():
    at = open_page("explain")
    at.pills(key="xp_methods").set_value(["saliency", "guided_backprop"]).run()
    faith = at.dataframe[0].value
    assert list(faith["method"]) == ["Saliency", "Guided Backprop"] and (faith["infidelity ↓"] >= 0).all()
    at.button(key="xp_run_sanity").click().run()
    assert not at.exception
    sanity = at.dataframe[1].value
    assert list(sanity["method"]) == ["Saliency", "Guided Backprop"]
    assert sanity["after randomising all layers"].between(-1, 1).all()
    assert sanity["model trained on shuffled labels"].between(-1, 1).all()
    assert sanity["verdict"].iloc[0].startswith("✅")  # Saliency depends on the weights
    assert not [b for b in at.button if b.key == "xp_run_sanity"]  # answered: the button gives way to the results
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
