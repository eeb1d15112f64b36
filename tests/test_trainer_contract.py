"""The Trainer contract (dl_core/engine/trainers.py), held by every trainer on every backend: the
supervised trainer, a two-network adversarial one (two optimizers at two rates, two losses, no test
loss) and one on a frozen backbone. Each trains, pauses, steps, survives its worker being killed, is
saved to the run store and restored, and is cloned."""
from __future__ import annotations

import os

import pytest
import torch
from toy_trainers import ToyAdversarialTrainer, frozen_backbone_trainer

from conftest import wait_for
from dl_core.engine import Executor, RunRegistry, RunStore, TrainConfig, TrainingJob, make_backend
from dl_core.engine.trainers import Trainer
from dl_core.playground import Setup, make_job

TRAINERS = {"supervised": lambda: make_job(Setup(hidden=(4, 4), resolution=8))[0].trainer,
            "adversarial": lambda: ToyAdversarialTrainer(n=256), "frozen": frozen_backbone_trainer}


@pytest.fixture(scope="module", params=["thread", "process", "ray"])
def pool(request):
    options = {}
    if request.param == "ray":
        os.environ["DLLAB_RAY_ADDRESS"] = request.getfixturevalue("ray_cluster")
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.path.dirname(__file__)}}  # toy_trainers
    ex = Executor(make_backend(request.param, 1, **options), capacity=4, slice_s=1e9, unwatched_s=None)
    assert ex.backend.wait_ready(90)  # turns in the workers, not in the lane while they boot
    yield ex
    ex.shutdown()


@pytest.fixture(params=list(TRAINERS))
def job(request, pool):
    job = TrainingJob(TRAINERS[request.param](), TrainConfig(lr=0.01, batch_size=32), pool)
    yield job
    job.stop()
    job.join(10)


def weights(job) -> dict:
    with job.lock:
        return {f"{n}.{k}": v.clone() for n, m in job.models.items() for k, v in m.state_dict().items()}


def test_each_trainer_is_a_trainer_and_its_optimizers_hold_its_trainable_parameters_only(job):
    assert isinstance(job.trainer, Trainer)
    for name, opt in job.optimizers.items():
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        assert held == {id(p) for p in job.models[name].parameters() if p.requires_grad}


def test_it_trains_pauses_and_steps_and_frozen_weights_stay_bitwise(job, pool):
    frozen = {n: p.clone() for n, p in job.model.named_parameters() if not p.requires_grad}
    before = weights(job)
    job.start()
    wait_for(lambda: job.epoch >= 2, timeout=90, seen=job.status)
    job.pause()
    wait_for(lambda: not job.active and job.status()["state"] == "paused", seen=job.status)
    step = job.step
    job.step_batch(3)
    wait_for(lambda: job.step == step + 3 and not job.active, seen=job.status)
    after = weights(job)
    assert any(not torch.equal(before[k], v) for k, v in after.items())
    assert all(torch.equal(p, dict(job.model.named_parameters())[n]) for n, p in frozen.items())
    view = job.view()
    assert len(view["epochs"]) >= 3 and view["steps"][-1][0] == job.step
    if len(job.optimizers) > 1:
        assert set(view["named_steps"]) == set(job.optimizers)


def test_it_survives_its_worker_being_killed(job, pool):
    if pool.backend.name == "thread":
        pytest.skip("in-process lanes have no worker to lose")
    job.start()
    wait_for(lambda: job.epoch >= 1, timeout=90, seen=job.status)
    for lane in range(pool.backend.lanes):
        pool.backend.kill(lane)
    wait_for(lambda: job.status()["state"] in ("running", "failed"), seen=job.status)
    if job.status()["state"] == "failed":  # the kill caught a turn away: one plain message, the weights kept
        assert "safe" in job.status()["message"]
    epoch = job.epoch
    assert all(torch.isfinite(v).all() for v in weights(job).values() if v.is_floating_point())
    job.start()  # a fresh worker takes over from the last weights
    wait_for(lambda: job.epoch >= epoch + 2, timeout=120, seen=job.status)


def test_it_is_saved_to_the_run_store_restored_and_cloned(job, pool, tmp_path):
    registry = RunRegistry(store=RunStore(tmp_path))
    run = registry.create("learner", "toy", job, browser="their-browser")
    job.step_batch(5)
    wait_for(lambda: job.step == 5 and (tmp_path / f"{run.id}.run").exists(), seen=job.status)
    kept = weights(job)
    back, how = RunRegistry(store=RunStore(tmp_path)).open(run.id, "learner-after-restart", "their-browser")
    assert how == "reattached" and back.job.step == 5
    assert all(torch.equal(kept[k], v) for k, v in weights(back.job).items())
    twin = back.job.clone(pool)
    assert all(torch.equal(kept[k], v) for k, v in weights(twin).items())
    for restored in (back.job, twin):
        restored.executor = pool
        restored.step_batch(4)
        wait_for(lambda: restored.step == 9 and not restored.active, timeout=60, seen=restored.status)
    assert all(torch.equal(kept[k], v) for k, v in weights(job).items())  # the original did not move
    assert weights(back.job).keys() == weights(twin).keys()
