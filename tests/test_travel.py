"""A job's way to a worker and back (travel.py), driven as a lane drives it, in this process.

The oracle is the worker's own copy of the job: whatever this process reads of the job, under
its weights lock, must be that copy's state, whether the answer was loaded at once (the job
rests) or kept packed (it trains on); and keeping it packed must not cost the next turn the
counters-only order.
"""
from __future__ import annotations

import pickle

import torch
from toy_trainers import ToyAdversarialTrainer, frozen_backbone_trainer

from conftest import new_job
from dl_core.engine import Executor, ThreadBackend, TrainingJob, travel
from dl_core.engine.backends import order_for, round_trip
from dl_core.engine.travel import JOB_FIELDS
from dl_core.engine.worker_main import RESIDENT, run_chunk


def _kind(job, lane: dict) -> str:
    """What the next turn would send: the whole "job", its "turn" state, or the counters ("same")."""
    return pickle.loads(order_for(job, lane, None, 0.05))[0][0]


def _same_state(job, copy) -> None:
    for p, q in zip(job.model.parameters(), copy.model.parameters()):
        assert torch.equal(p, q)
    theirs = copy._optimizers["model"].state_dict()["state"]
    for i, state in job._optimizers["model"].state_dict()["state"].items():
        assert all(torch.equal(v, theirs[i][k]) for k, v in state.items())
    assert torch.equal(job.generator.get_state(), copy.generator.get_state())


def test_a_training_jobs_answer_is_loaded_when_its_weights_are_read_and_the_next_turn_stays_small():
    job = new_job(Executor(ThreadBackend(1)))
    job._want_run = True  # ▶ Train: every answer is followed by another turn
    lane: dict = {}
    for _ in range(2):
        assert round_trip(job, lane, None, 0.05, run_chunk)
    worker = RESIDENT[job.uid][1]
    assert worker.step > 0 and job.step == worker.step and job.epoch == worker.epoch  # counters at once
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    with job.lock:  # a page reading the weights (a download, an explanation) finds the worker's
        _same_state(job, worker)
    assert _kind(job, lane) == "same"  # reading them changed nothing the worker does not hold

    assert round_trip(job, lane, None, 0.05, run_chunk)
    saved = TrainingJob.from_state(job.to_state(), job.executor)  # the run store, mid-training
    _same_state(saved, RESIDENT[job.uid][1])

    assert round_trip(job, lane, None, 0.05, run_chunk)
    with job.lock:  # weights changed here (a weights file loaded): the worker must get them
        job.model.load_state_dict(before)
    assert _kind(job, lane) == "turn"
    assert round_trip(job, lane, None, 0.05, run_chunk)
    with job.lock:
        _same_state(job, RESIDENT[job.uid][1])

    job._want_run = False  # ⏸ Pause while the turn is away: the answer is the job's resting state
    assert round_trip(job, lane, None, 0.05, run_chunk)
    worker = RESIDENT[job.uid][1]
    _same_state(job, worker)  # loaded at once: a resting job's weights are read without its lock too
    assert _kind(job, lane) == "same"


def test_every_attribute_of_a_job_is_declared_travelling_or_local():
    """travel.JOB_FIELDS names each attribute once; one in no list would silently not come back from
    a worker. Every kind of trainer, after training here, in a worker's copy, restored and cloned."""
    groups = (JOB_FIELDS.local, JOB_FIELDS.counters, JOB_FIELDS.trained, JOB_FIELDS.whole)
    assert sum(map(len, groups)) == len(JOB_FIELDS.all)  # no attribute in two lists
    pool = Executor(ThreadBackend(1))
    for trainer in (new_job(pool).trainer, ToyAdversarialTrainer(n=128), frozen_backbone_trainer()):
        job = TrainingJob(trainer, executor=pool)
        job.advance(max_batches=12, max_seconds=60)
        assert round_trip(job, {}, 3, 60, run_chunk)
        worker = RESIDENT[job.uid][1]
        for each in (job, worker, TrainingJob.from_state(job.to_state(), pool), job.clone(pool)):
            assert not JOB_FIELDS.undeclared(each), JOB_FIELDS.undeclared(each)
        assert {"models", "optimizers", "schedulers", "generator", "order", "good", "trainer", "best",
                "peak"} == set(job.trained_state())  # each from one of JOB_FIELDS.trained
    job.scratch = 1  # a new field nobody declared
    assert JOB_FIELDS.undeclared(job) == {"scratch"}


def test_a_job_travels_only_when_its_trainer_says_it_can_and_it_is_small_enough(monkeypatch):
    """A network bigger than TRAVEL_MAX_BYTES (a ResNet-18: ~45 MB, shipped three times over each
    turn) and a trainer whose `travels` flag is False train in the lane's thread: no payload."""
    job = new_job(Executor(ThreadBackend(1)))
    assert job.payload(None) is not None
    monkeypatch.setattr(travel, "TRAVEL_MAX_BYTES", job.state_bytes() - 1)
    assert job.payload(None) is None and not round_trip(job, {}, 3, 60, run_chunk)
    monkeypatch.undo()
    monkeypatch.setattr(job.trainer, "travels", False)
    assert job.payload(None) is None


def test_a_new_rate_travels_with_the_next_turn_not_the_whole_job():
    """set_config changes the optimizers here; the worker's copy gets them with the turn's state
    (its optimizer state carries the rate), never a re-pickled job with its data."""
    job, lane = new_job(Executor(ThreadBackend(1))), {}
    assert round_trip(job, lane, 3, 60, run_chunk) and _kind(job, lane) == "same"
    job.set_config(lr=0.001, batch_size=8)
    assert _kind(job, lane) == "turn"
    assert round_trip(job, lane, 3, 60, run_chunk)
    worker = RESIDENT[job.uid][1]
    assert worker.config.lr == 0.001 and worker.config.batch_size == 8
    assert worker.optimizers["model"].param_groups[0]["lr"] == job.optimizers["model"].param_groups[0]["lr"] == 0.001
    job.set_config(optimizer="sgd")  # another kind of optimizer: the whole job goes again
    assert _kind(job, lane) == "job"
