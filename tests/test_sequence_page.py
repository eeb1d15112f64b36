"""The Sequence Lab in AppTest: it opens, trains on each task, shows states, gates and the
gradient through time, and takes its own model files back."""
from __future__ import annotations

import pytest
import torch

from dl_core.checkpoint import save_bytes
from dl_core.sequences import SEQ_TASKS
from test_pages import job, metric, open_page, poll, run
from ui.shell import upload_key


def epoch_of(at) -> int:
    return int(metric(at, "Epoch").replace(",", ""))


@pytest.mark.parametrize("task", SEQ_TASKS)
def test_each_task_trains_and_shows_what_the_memory_holds(task):
    at = open_page("sequence")
    at.selectbox(key="seq_task").select(task).run()
    assert not at.exception
    assert job(at, "sequence").trainer.data.task == ("regression" if task == "adding" else "classification")
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
    if task != "adding":
        assert "gate: forget" in shows.options  # the default cell is an LSTM
        confusion = job(at, "sequence").view()["epochs"][-1]["confusion"]  # the names task's languages, too
        assert confusion.shape == (len(SEQ_TASKS[task].make(40, SEQ_TASKS[task].lags[2], 1).classes),) * 2


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
