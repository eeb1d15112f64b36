"""Runs that last the lesson: saved when they rest, found again after a restart, capped, expiring."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import wait_for
from dl_core.engine import RunRegistry, RunStore
from dl_core.playground import Setup, make_job


def trained_run(registry, executor, session="learner", steps=30):
    job, spec, ds = make_job(Setup(hidden=(4, 4), resolution=8))
    job.executor = executor
    run = registry.create(session, "playground", job, settings={"lr": 0.03}, extra={"spec": spec, "data": ds})
    job.step_batch(steps)
    wait_for(lambda: job.status()["state"] == "paused" and job.step == steps)
    return run


def test_a_paused_run_is_saved_and_a_restarted_server_gives_it_back_whole(tmp_path, executor):
    run = trained_run(RunRegistry(store=RunStore(tmp_path)), executor)
    wait_for(lambda: (tmp_path / f"{run.id}.json").exists())
    weights = {k: v.clone() for k, v in run.job.model.state_dict().items()}
    view = run.job.view()

    restarted = RunRegistry(store=RunStore(tmp_path))  # a new process: nothing in memory
    back, how = restarted.open(run.id, "the-same-learner-after-reload")
    assert how == "reattached" and back.lab == "playground" and back.settings == {"lr": 0.03}
    assert back.job.step == 30 and back.job.status()["state"] == "paused"
    assert all(torch.equal(weights[k], v) for k, v in back.job.model.state_dict().items())
    assert back.job.view()["steps"] == view["steps"] and back.job.view()["epochs"] == view["epochs"]
    assert back.extra["spec"] == run.extra["spec"]
    back.job.executor = executor
    back.job.step_batch(5)  # and it trains on from there
    wait_for(lambda: back.job.step == 35 and back.job.status()["state"] == "paused")


def test_a_reload_after_a_restart_brings_back_the_learners_other_runs(tmp_path, executor):
    registry = RunRegistry(store=RunStore(tmp_path))
    first, second = trained_run(registry, executor), trained_run(registry, executor)
    wait_for(lambda: len(RunStore(tmp_path).ids_of("learner")) == 2)
    restarted = RunRegistry(store=RunStore(tmp_path))
    restarted.open(first.id, "new-tab")
    assert {r.id for r in restarted.runs_of("new-tab")} == {first.id, second.id}


def test_each_session_has_a_size_cap_and_runs_expire(tmp_path, executor):
    store = RunStore(tmp_path, cap_bytes=1)  # room for the newest run only
    registry = RunRegistry(store=store)
    old = trained_run(registry, executor)
    new = trained_run(registry, executor)
    wait_for(lambda: store.ids_of("learner") == [new.id])
    assert store.load(old.id) is None and store.load(new.id) is not None
    other = trained_run(registry, executor, session="someone-else")  # another session's cap is its own
    wait_for(lambda: store.ids_of("someone-else") == [other.id])
    assert store.ids_of("learner") == [new.id]
    expired = RunStore(tmp_path, keep_s=-1)
    assert expired.load(new.id) is None
    expired.prune()
    assert not list(tmp_path.glob("*.run"))


def test_ids_that_are_not_run_ids_never_reach_the_disk(tmp_path):
    store = RunStore(tmp_path)
    for bad in ("", "../etc/passwd", "a/b", "..", "x" * 5 + "\x00"):
        assert store.load(bad) is None
    assert RunRegistry(store=store).open("../../secret", "s") == (None, "missing")


OLD_RUNS = Path(__file__).parent / "data" / "runstore_v1"  # saved by main at 04ec76e, before dl_core.engine/data


@pytest.mark.parametrize("run_id, lab, epoch", [("playground-v1", "playground", 3), ("cnn-v1", "cnn", 2),
                                                ("sequence-v1", "sequence", 1)])
def test_a_run_saved_before_the_engine_moved_still_loads_and_trains_on(tmp_path, executor, run_id, lab, epoch):
    """Its pickle names the old modules (dl_core.training, dl_core.jobparts.TensorData, dl_core.images, ...)."""
    for f in OLD_RUNS.glob(f"{run_id}.*"):
        shutil.copy(f, tmp_path / f.name)
    back, how = RunRegistry(store=RunStore(tmp_path, keep_s=1e12)).open(run_id, "owner-v1")
    assert how == "own" and back.lab == lab and back.job.epoch == epoch and back.job.state == "finished"
    assert len(back.job.view()["epochs"]) == epoch + 1 and type(back.job.data).__module__ == "dl_core.data.tensors"
    before = {k: v.clone() for k, v in back.job.model.state_dict().items()}
    back.job.executor, start = executor, back.job.step
    back.job.step_batch(2)  # (a one-epoch run may finish again at its epoch's end)
    wait_for(lambda: back.job.step > start and not back.job.active, timeout=60, seen=back.job.status)
    assert any(not torch.equal(before[k], v) for k, v in back.job.model.state_dict().items())


def test_a_damaged_saved_run_is_not_there_rather_than_a_traceback(tmp_path):
    shutil.copy(OLD_RUNS / "playground-v1.json", tmp_path)
    (tmp_path / "playground-v1.run").write_bytes((OLD_RUNS / "playground-v1.run").read_bytes()[:500])
    assert RunRegistry(store=RunStore(tmp_path, keep_s=1e12)).open("playground-v1", "owner-v1") == (None, "missing")
