"""The teacher's view: behind the token, counts and a challenge board that never shows run ids."""
from __future__ import annotations

import time

import pytest
from test_pages import open_page

from dl_core import classroom
from dl_core.classroom import CHALLENGES, LESSON, Gate, board
from dl_core.engine import RUNS, Event
from dl_core.playground import Setup, make_job
from ui import state


def spiral_run(session, hidden, test_loss, name=None):
    job, spec, ds = make_job(Setup(dataset="spiral", hidden=hidden, resolution=8))
    job._record(Event("epoch", 10, 1, time.time(), data={"epoch": 1, "test_loss": test_loss, "test_acc": 0.9}))
    RUNS.touch(session)
    if name:
        RUNS.set_name(session, name)
    return RUNS.create(session, "playground", job, extra={"setup": Setup(dataset="spiral", hidden=hidden),
                                                          "data": ds, "spec": spec})


@pytest.fixture
def lesson(monkeypatch):
    monkeypatch.setattr(classroom, "GATE", Gate())  # each test starts with no wrong tokens counted
    LESSON.challenge = None
    yield LESSON
    LESSON.challenge = None


def test_the_board_ranks_learners_by_the_rules_and_names_only_those_who_chose_a_name(lesson):
    fast = spiral_run("s-ada", (6, 6), 0.05, name="Ada")
    spiral_run("s-anon", (8, 4), 0.08)  # reached the loss, but within 12 neurons? yes: 12
    spiral_run("s-big", (64, 64), 0.01)  # best loss, but too many neurons
    rows = board(CHALLENGES["spiral-12"], RUNS)
    assert [r["reached"] for r in rows] == [True, True, False]
    assert rows[0]["learner"] == "Ada" and rows[0]["best"] == pytest.approx(0.05)
    assert rows[1]["learner"].startswith("Learner ") and rows[2]["learner"].startswith("Learner ")
    assert fast.id not in str(rows)


def test_without_the_token_the_page_is_off_or_refuses(monkeypatch, lesson):
    monkeypatch.delenv("DLLAB_TEACHER_TOKEN", raising=False)
    at = open_page("teacher")
    assert not at.exception and "off on this server" in at.info[0].value and not at.metric
    monkeypatch.setenv("DLLAB_TEACHER_TOKEN", "correct horse")
    at = open_page("teacher")
    at.text_input(key="teacher_token").set_value("wrong").run()
    assert "not this server's teacher token" in at.error[0].value and not at.metric and not at.main.selectbox


def test_with_the_token_the_teacher_sees_the_room_sets_a_challenge_and_no_run_id(monkeypatch, lesson):
    monkeypatch.setenv("DLLAB_TEACHER_TOKEN", "correct horse")
    run = spiral_run("s-ada", (6, 6), 0.05, name="Ada")
    at = open_page("teacher")
    at.text_input(key="teacher_token").set_value("correct horse").run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert {"Learners connected", "Training now", "Waiting for a turn"} <= set(labels)
    at.main.selectbox[0].set_value("spiral-12").run()
    assert LESSON.challenge == "spiral-12"
    table = at.dataframe[0].value
    assert list(table["learner"]) == ["Ada"] and list(table["reached"]) == ["✅"]
    page_text = str([e.value for e in at.markdown] + [e.value for e in at.caption]) + table.to_string()
    assert run.id not in page_text
    learner = open_page("playground")  # the learners see the challenge in their sidebar
    assert any("Class challenge" in m.value for m in learner.sidebar.markdown)


def test_the_board_reads_a_long_runs_best_epoch_that_a_chart_leaves_out(lesson):
    """A chart's view thins 1,200 epochs to 500; the best one (here the first after the start)
    is among those left out, and the board must still find it."""
    job, spec, ds = make_job(Setup(dataset="spiral", hidden=(6, 6), resolution=8))
    for epoch in range(1, 1201):
        job._record(Event("epoch", epoch * 10, epoch, time.time(),
                          data={"epoch": epoch, "test_loss": 0.05 if epoch == 1 else 0.5, "test_acc": 0.9}))
    assert min(e["test_loss"] for e in job.view()["epochs"] if e.get("test_loss")) == 0.5  # left out of the view
    RUNS.touch("s-long")
    RUNS.create("s-long", "playground", job, extra={"setup": Setup(dataset="spiral", hidden=(6, 6)),
                                                    "data": ds, "spec": spec})
    row = next(r for r in board(CHALLENGES["spiral-12"], RUNS) if r["best"] is not None and r["best"] < 0.5)
    assert row["reached"] and row["best"] == pytest.approx(0.05)


def test_no_value_in_a_session_opens_the_teachers_view_only_the_token_does(monkeypatch, lesson):
    """A model file carrying `teacher_ok: true` opened /teacher without the token (a file's settings
    were copied into the session): the view now asks for a seal that only the token makes."""
    monkeypatch.setenv("DLLAB_TEACHER_TOKEN", "correct horse")
    at = open_page("teacher")
    for key, value in (("teacher_ok", True), (state.TEACHER, True), (state.TEACHER, "forged")):
        at.session_state[key] = value
        at.run()
        assert not at.metric and at.text_input(key="teacher_token")
    at.text_input(key="teacher_token").set_value("correct horse").run()
    assert at.metric


def test_wrong_tokens_are_limited_for_the_whole_server_and_the_right_one_waits_too():
    now = [0.0]
    gate = Gate(tries=3, window_s=60, clock=lambda: now[0])
    token = "correct horse battery"
    assert [gate.check(f"guess {i}", token) for i in range(4)] == ["wrong", "wrong", "wrong", "wait"]
    assert gate.check(token, token) == "wait"  # a guesser cannot tell the right token from a wrong one
    now[0] = 61.0
    assert gate.check(token, token) == "ok"
    assert gate.sealed(Gate.seal("s1", token), "s1", token) and not gate.sealed(Gate.seal("s1", token), "s2", token)
    assert not gate.sealed(Gate.seal("s1", "another token!"), "s1", token)


def test_a_token_too_short_to_protect_the_room_keeps_the_view_off(monkeypatch, lesson):
    monkeypatch.setenv("DLLAB_TEACHER_TOKEN", "owl-42")
    at = open_page("teacher")
    at.text_input(key="teacher_token").set_value("owl-42").run()
    assert "shorter than 12 characters" in at.error[0].value and not at.metric
