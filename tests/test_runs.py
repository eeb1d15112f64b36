"""Runs that survive: ownership by browser session, reattaching after a reload in the same
browser (never by the address alone), copies for anyone else, and the grace period after a tab
closes."""
import threading

from conftest import wait_for
from dl_core.engine import RunRegistry
from dl_core.playground import Setup, make_job


def job(executor):
    j, _, _ = make_job(Setup())
    j.executor = executor
    return j


def test_run_ids_are_unguessable_and_distinct(executor):
    runs = RunRegistry()
    ids = {runs.create("s", "playground", job(executor)).id for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 20 for i in ids)


def test_session_end_stops_jobs_after_grace_unless_the_session_comes_back(executor):
    runs = RunRegistry(grace_s=0.2)
    a = runs.create("s1", "playground", job(executor))
    b = runs.create("s2", "playground", job(executor))
    a.job.start()
    b.job.start()
    runs.session_ended("s1")
    runs.session_ended("s2")
    runs.touch("s2")  # s2 reconnected within the grace period
    wait_for(lambda: a.job.status()["state"] == "stopped", timeout=5)
    threading.Event().wait(0.4)
    assert b.job.status()["state"] == "running"
    assert runs.get(a.id) is a  # stopped, but its weights are still there for a late reload
    b.job.stop()


def test_a_reload_reattaches_the_running_job_and_it_keeps_training(executor):
    runs = RunRegistry(grace_s=0.3, reattach_wait_s=2.0)
    run = runs.create("old-tab", "cnn", job(executor), settings={"lr": 0.1}, browser="b1")
    run.job.start()
    wait_for(lambda: run.job.step > 0)
    threading.Timer(0.05, runs.session_ended, ("old-tab",)).start()  # the old tab's end arrives a bit later
    got, how = runs.open(run.id, "new-tab", "b1")
    assert (got, how) == (run, "reattached") and got.owner == "new-tab" and got.settings == {"lr": 0.1}
    threading.Event().wait(0.6)  # past the old session's grace period
    assert run.job.status()["state"] == "running"  # the stop was for the old owner only
    assert runs.open(run.id, "new-tab", "b1") == (run, "own")
    run.job.stop()


def test_someone_else_opening_a_live_runs_address_gets_a_copy_never_the_job(executor):
    runs = RunRegistry(reattach_wait_s=0.1)
    run = runs.create("owner", "playground", job(executor), settings={"lr": 0.03})
    run.job.step_batch(5)
    wait_for(lambda: run.job.step == 5 and not run.job.active)
    copy, how = runs.open(run.id, "visitor")
    assert how == "copied" and copy.id != run.id and copy.owner == "visitor" and run.owner == "owner"
    assert copy.job is not run.job and copy.job.step == 5 and copy.settings == run.settings
    copy.job.step_batch(3)
    wait_for(lambda: copy.job.step == 8 and not copy.job.active)
    assert run.job.step == 5
    assert runs.runs_of("visitor") == [copy] and runs.runs_of("owner", "playground") == [run]
    assert runs.open("not-a-run", "visitor") == (None, "missing")


def test_a_reload_brings_back_the_runs_of_every_lab_and_the_last_shown_comes_first(executor):
    runs = RunRegistry(reattach_wait_s=0.1)
    cnn = runs.create("old", "cnn", job(executor), browser="b1")
    older = runs.create("old", "playground", job(executor), browser="b1")
    newer = runs.create("old", "playground", job(executor), browser="b1")
    runs.session_ended("old")
    assert runs.open(cnn.id, "new", "b1") == (cnn, "reattached")
    assert runs.runs_of("new", "playground") == [newer, older] and runs.runs_of("old") == []
    older.shown_at = newer.shown_at + 1  # the learner had undone back to the older one
    assert runs.runs_of("new", "playground")[0] is older


def test_an_address_opened_in_another_browser_never_takes_the_run_over_even_after_its_tab_closed(executor):
    """The run id in the address bar is not a password: after the owner's tab closed, another
    browser opening it got the run ("Welcome back"), paused it and received all the owner's
    other runs; the owner, coming back, got only a copy."""
    runs = RunRegistry(reattach_wait_s=0.1)
    run = runs.create("owner", "playground", job(executor), browser="owners-browser")
    other = runs.create("owner", "cnn", job(executor), browser="owners-browser")
    run.job.step_batch(2)
    wait_for(lambda: run.job.step == 2 and not run.job.active)
    runs.session_ended("owner")
    for browser in ("someone-else", ""):  # another browser, or one that sends no secret at all
        got, how = runs.open(run.id, f"visitor-{browser}", browser)
        assert how == "copied" and got is not run and got.job is not run.job and got.browser == browser
    assert run.owner == "owner" and other.owner == "owner" and runs.runs_of("visitor-someone-else", "cnn") == []
    assert runs.open(run.id, "owner-after-reload", "owners-browser") == (run, "reattached")
    assert other.owner == "owner-after-reload"


def test_a_run_on_its_owners_own_data_gives_nobody_else_a_copy(executor):
    """While the owner was connected, another browser's copy included the owner's uploaded data."""
    runs = RunRegistry(reattach_wait_s=0.1)
    run = runs.create("owner", "cnn", job(executor), extra={"private": True, "data": "their images"}, browser="b1")
    assert runs.open(run.id, "visitor", "b2") == (None, "private")
    assert runs.runs_of("visitor") == []
    runs.session_ended("owner")
    assert runs.open(run.id, "owner-again", "b1") == (run, "reattached")  # its owner still gets it back
