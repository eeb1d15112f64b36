"""Stop rules and collapse watching (dl_core/stopping.py), on real Playground jobs."""
from __future__ import annotations

import pytest

from conftest import wait_for
from dl_core.engine import TrainConfig
from dl_core.engine.stopping import COLLAPSE_EPOCHS
from dl_core.playground import Setup, make_job


def _job(executor, **train):
    job = make_job(Setup(dataset="circle", hidden=(8, 8), resolution=8, train=TrainConfig(**train)))[0]
    job.executor = executor
    return job


def _run_until_rest(job, timeout=60):
    job.start()
    wait_for(lambda: not job.active, timeout=timeout)
    job.join(5)


def test_a_goal_stops_the_run_at_the_first_epoch_that_reaches_it(executor):
    job = _job(executor, target_acc=0.9, max_epochs=300)
    _run_until_rest(job)
    accs = [e["test_acc"] for e in job.view(10**6)["epochs"]]
    assert job.status()["state"] == "finished" and "Goal reached" in job.message
    assert accs[-1] >= 0.9 and all(a < 0.9 for a in accs[:-1])


def test_a_loss_goal_stops_a_regression(executor):
    job = make_job(Setup(dataset="plane", hidden=(8,), resolution=8,
                         train=TrainConfig(target_loss=0.05, max_epochs=300)))[0]
    job.executor = executor
    _run_until_rest(job)
    losses = [e["test_loss"] for e in job.view(10**6)["epochs"]]
    assert losses[-1] <= 0.05 and all(v > 0.05 for v in losses[:-1]) and "test loss" in job.message


def test_a_collapse_is_told_once_and_the_best_weights_come_back(executor):
    """A trained network whose output layer is wiped answers one class for everything (chance),
    with finite losses; with a rate of 0 it stays there. After COLLAPSE_EPOCHS epochs the job
    says so, once; restore_peak() puts back the best epoch's weights, which score what they did."""
    job = _job(executor, target_acc=0.95, max_epochs=300)
    _run_until_rest(job)
    peak_acc, peak_epoch = job.view(10**6)["epochs"][-1]["test_acc"], job.epoch
    assert job.collapse is None and peak_acc >= 0.95
    with job.lock:
        out = job.model.layers[-1]
        out.weight.data.zero_()
        out.bias.data.zero_()
    job.set_config(optimizer="sgd", lr=0.0, target_acc=None, max_epochs=peak_epoch + COLLAPSE_EPOCHS + 3)
    _run_until_rest(job)
    events = [e for e in job.view()["events"] if e.kind == "collapse"]
    assert len(events) == 1 and job.status()["collapse"]["peak_epoch"] == peak_epoch
    assert "collapsed" in events[0].message and "epoch" in events[0].message
    assert job.evaluate()["test_acc"] <= job.trainer.chance + 0.01
    assert job.restore_peak() == peak_epoch and job.collapse is None
    assert job.evaluate()["test_acc"] == pytest.approx(peak_acc)


def test_a_run_that_only_wobbles_is_not_a_collapse(executor):
    job = _job(executor, max_epochs=60)
    _run_until_rest(job)
    assert job.collapse is None and not [e for e in job.view()["events"] if e.kind == "collapse"]
