"""The Sequence Lab in AppTest: it opens, trains on each task, shows states, gates and the
gradient through time, and takes its own model files back."""
from __future__ import annotations

import pytest
import torch
from test_pages import job, metric, open_page, poll, run

from dl_core.checkpoint import save_bytes
from dl_core.data.sequences import SEQ_TASKS
from ui.shell import upload_key


def epoch_of(at) -> int:
    return int(metric(at, "Epoch").replace(",", ""))


@pytest.mark.parametrize("task", [k for k, t in SEQ_TASKS.items() if not t.upload])  # uploads: their own test
def test_each_task_trains_and_shows_what_the_memory_holds(task):
    at = open_page("sequence")
    at.selectbox(key="seq_task").select(task).run()
    assert not at.exception
    info = SEQ_TASKS[task]
    assert job(at, "sequence").trainer.data.task == ("regression" if info.kind == "forecast" or task == "adding"
                                                     else "classification")
    at.button(key="ctl_train").click().run()
    poll(at, lambda a: epoch_of(a) >= 1, timeout=60)
    at.button(key="ctl_pause").click().run()
    poll(at, lambda a: job(a, "sequence").status()["state"] == "paused")
    shows = at.radio(key="seq_show")
    for option in shows.options:  # the hidden state, the LSTM's cell state and every gate
        shows.set_value(option).run()
        assert not at.exception, option
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) >= 3
    assert any("the network says" in m.value for m in at.markdown)
    assert "gate: forget" in shows.options  # the default cell is an LSTM
    data = job(at, "sequence").trainer.data
    classes = run(at, "sequence").extra["data"].classes
    if data.task == "classification" and len(classes) <= 12:  # the names task's languages, too; not ~80 letters
        assert job(at, "sequence").view()["epochs"][-1]["confusion"].shape == (len(classes),) * 2


def test_a_cell_change_builds_a_fresh_network_and_keeps_the_trained_one_for_undo():
    at = open_page("sequence")
    at.button(key="ctl_step").click().run()
    poll(at, lambda a: job(a, "sequence").step == 1)
    trained = run(at, "sequence")
    at.radio(key="seq_cell").set_value("GRU").run()
    assert run(at, "sequence") is not trained and at.button(key="shell_sequence_undo")
    assert type(run(at, "sequence").job.model.layers[1].cell).__name__ == "GRU"


def test_its_own_model_file_loads_back_and_another_labs_is_refused():
    at = open_page("sequence")
    at.button(key="ctl_step").click().run()
    poll(at, lambda a: job(a, "sequence").step == 1)
    r = run(at, "sequence")
    data = save_bytes(r.extra["spec"], r.job.model, {"values": r.settings, "seed": 1}, lab="sequence")
    at.file_uploader(key=upload_key("sequence", 0)).set_value(("seq.pt", data, "application/octet-stream")).run()
    assert any(s.value.startswith("Loaded seq.pt") for s in at.success), [e.value for e in at.error]
    back = run(at, "sequence").job.model.state_dict()
    assert all(torch.equal(back[k], v) for k, v in r.job.model.state_dict().items())
    other = save_bytes(r.extra["spec"], r.job.model, {}, lab="playground")
    at.file_uploader(key=upload_key("sequence", 1)).set_value(("pg.pt", other, "application/octet-stream")).run()
    assert len(at.error) == 1 and not at.exception


def test_a_model_files_settings_are_parsed_like_the_controls_and_grant_nothing():
    """The Sequence Lab copied every plain seq_* value of a file into the session: a value no
    control offers (a learning rate of 9e9, 100,000 hidden units) reached the widgets and the job."""
    at = open_page("sequence")
    at.button(key="ctl_step").click().run()
    poll(at, lambda a: job(a, "sequence").step == 1)
    r = run(at, "sequence")
    hostile = r.settings | {"seq_lr": 9e9, "seq_layers": True, "seq_hidden": 100_000, "seq_surprise": "x",
                            "teacher_seal": "forged", "teacher_ok": True}
    data = save_bytes(r.extra["spec"], r.job.model, {"values": hostile, "seed": 1}, lab="sequence")
    fresh = open_page("sequence")
    fresh.file_uploader(key=upload_key("sequence", 0)).set_value(("s.pt", data, "application/octet-stream")).run()
    assert not fresh.exception and any(s.value.startswith("Loaded s.pt") for s in fresh.success)
    kept = fresh.session_state
    assert kept["seq_lr"] == 0.01 and kept["seq_layers"] == 1 and kept["seq_hidden"] == r.settings["seq_hidden"]
    for key in ("seq_surprise", "teacher_seal", "teacher_ok"):
        with pytest.raises(KeyError):
            kept[key]
    assert run(fresh, "sequence").job.config.lr == 0.01


def _tab(at, label: str):
    """Open a tab of the lab's lazy tabs (only the open one is drawn)."""
    tabs = ("🔍 Look closer (and edit)", "❓ Why this answer?", "✍️ Let it write", "📈 The forecast",
            "🏁 RNN vs LSTM vs GRU")
    at.session_state["seq_tabs"] = next(t for t in tabs if t.startswith(label))
    at.run()
    assert not at.exception, at.exception


def test_look_closer_edits_the_sequence_and_the_answer_follows():
    at = open_page("sequence")
    at.slider(key="seq_lag_recall").set_value(6).run()
    _tab(at, "🔍")
    assert at.get("html") and any("network says" in m.value for m in at.markdown)
    edit = at.text_input[0]  # the edit box (found afresh after each run: the sequence's length keys the slider)
    edit.set_value("DABCABCABCABCABC").run()  # longer than the task's sequences: a recurrent net reads any length
    assert not at.exception and not at.warning
    said = [m.value for m in at.markdown if m.value.startswith("The network says")]
    assert said and "answer" not in said[0]  # an edited sequence has no known answer
    at.text_input[0].set_value("DAxB").run()
    assert at.warning and "'x'" in at.warning[0].value and not at.exception
    at.slider(key="seq_step").set_value(2).run()
    at.number_input(key="seq_unit").set_value(5).run()
    assert not at.exception


@pytest.mark.parametrize("task", ["recall", "depth_steps", "adding"])  # a class, a label per step, a value
def test_why_checks_completeness_and_a_removed_unit_is_measured(task):
    at = open_page("sequence")
    at.selectbox(key="seq_task").select(task).run()
    at.slider(key=f"seq_lag_{task}").set_value(6).run()
    _tab(at, "❓")
    assert any(c.value.startswith("✅ Completeness") for c in at.caption), [c.value for c in at.caption]
    at.button(key="seq_ablate_go").click().run()
    assert any(i.value.startswith("Without unit") for i in at.info), [i.value for i in at.info]
    assert not at.exception


def test_the_language_model_writes_and_the_forecast_is_compared_with_persistence():
    at = open_page("sequence")
    at.selectbox(key="seq_task").select("docs").run()
    _tab(at, "✍️")
    assert any("has not trained yet" in i.value for i in at.info)  # epoch 0: random characters, said so
    at.slider(key="seq_len").set_value(40).run()
    at.button(key="seq_write").click().run()
    assert len(at.code[0].value) >= 40 and not at.exception
    at.selectbox(key="seq_task").select("co2").run()
    _tab(at, "📈")
    assert any("persistence" in c.value for c in at.caption) and not at.exception


def test_a_race_trains_all_three_cells_and_draws_the_memory_horizon():
    at = open_page("sequence")
    at.slider(key="seq_lag_recall").set_value(5).run()
    _tab(at, "🏁")
    at.button(key="seq_race").click().run()
    race = run(at, "sequence").extra["race"]
    assert sorted(race) == ["GRU", "LSTM", "RNN"]
    assert len({id(j.trainer.data.x_train) for j in race.values()}) == 1  # the same data for all three
    poll(at, lambda a: not any(j.active for j in race.values()), timeout=120)
    assert all(j.epoch == 30 for j in race.values())
    horizon = run(at, "sequence").extra["horizon"]
    assert set(horizon) == {("RNN", 5), ("LSTM", 5), ("GRU", 5)}
    assert any("Memory horizon" in m.value for m in at.markdown)
    reached = next(m.value for m in at.markdown if "Reached 95 %" in m.value)
    assert all(cell in reached for cell in ("RNN", "LSTM", "GRU"))


@pytest.mark.parametrize("junk", [b"", b"\x00\x01binary" * 100, "é".encode("latin-1") * 900, b"short"])
def test_uploads_of_junk_say_one_plain_sentence_and_good_text_trains(junk):
    at = open_page("sequence")
    at.selectbox(key="seq_task").select("my_text").run()
    assert any("Upload a file" in i.value for i in at.info)
    at.file_uploader(key="seq_file_my_text").set_value(("junk.txt", junk, "text/plain")).run()
    assert at.error and at.error[0].value.startswith("Could not use junk.txt") and not at.exception
    good = ("the quick brown fox jumps over the lazy dog. " * 30).encode()
    at.file_uploader(key="seq_file_my_text").set_value(("fox.txt", good, "text/plain")).run()
    assert not at.exception and "fox.txt" in run(at, "sequence").extra["data"].source


def test_a_link_sets_up_the_lab_and_the_share_box_gives_it_without_the_run():
    at = open_page("sequence", seq_task="Bracket depth", seq_lag_parens="20", seq_cell="GRU", seq_hidden="64",
                   seq_layers="2", seq_dropout="20%", seq_lr="0.003", seq_clip="off", seq_embed="16")
    assert not at.exception
    r = run(at, "sequence")
    rnn = r.job.model.layers[1].cell
    assert (type(rnn).__name__, rnn.hidden_size, rnn.num_layers, rnn.dropout) == ("GRU", 64, 2, 0.2)
    assert r.extra["data"].name == "parens" and r.extra["data"].length == 20
    assert r.job.model.layers[0].embedding_dim == 16
    assert (r.job.config.lr, r.job.config.clip) == (0.003, None)
    link = [c.value for c in at.code if "seq_cell=GRU" in c.value]
    assert link and "run=" not in link[0] and "seq_hidden=64" in link[0]
