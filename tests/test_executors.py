"""The job contract over every executor: in-process lanes, a spawned process pool, Ray.

The same tests run against each backend: start trains, pause means no more steps, step n
takes exactly n batches, stop ends, events rebuild the history, failures arrive as
messages. Then what only a pool can do wrong: a killed worker, settings changed while a
chunk is away, fair turns, a queue that moves, a run nobody watches.
"""
from __future__ import annotations

import os
import pickle
import time

import pytest
import torch

from conftest import new_job, wait_for
from dl_core.engine import Executor, History, ThreadBackend, make_backend

BACKENDS = ["thread", "process", "ray"]


class FailingProbe:
    """A probe that travels (a module-level class) and fails on its second call."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        if self.calls > 1:
            raise ValueError("the probe broke")
        return {}


class SlowProbe:
    """A probe that says when it starts (a file, seen from any process) and then takes its time,
    so a chunk is surely in flight when its worker is killed."""

    def __init__(self, started: str):
        self.started = started

    def __call__(self, model):
        open(self.started, "w").close()
        time.sleep(2.0)
        return {}


@pytest.fixture(scope="module", params=BACKENDS)
def pool(request):
    """One executor per backend for the module (a process pool spawns its workers once)."""
    options = {}
    if request.param == "ray":
        os.environ["DLLAB_RAY_ADDRESS"] = request.getfixturevalue("ray_cluster")
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.path.dirname(__file__)}}  # this module's probes
    ex = Executor(make_backend(request.param, 2, **options), capacity=8, slice_s=1e9, unwatched_s=None)
    yield ex
    ex.shutdown()


def test_start_trains_and_pause_means_no_more_steps(pool):
    job = new_job(pool)
    job.start()
    wait_for(lambda: job.epoch >= 3, timeout=60)
    assert job.status()["state"] == "running"
    job.pause()
    wait_for(lambda: not job.active and job.status()["state"] == "paused")
    step = job.step
    time.sleep(0.5)
    assert job.step == step
    job.stop()
    wait_for(lambda: job.status()["state"] == "stopped")


def test_each_new_snapshot_reaches_the_pages_hook_in_this_process(pool):
    """TrainingJob.on_snapshot (a page builds its pictures as snapshots arrive) is called here
    with the very snapshot the job then shows, whichever process trained it; it never travels."""
    job = new_job(pool, batch_size=10, snapshot_interval_s=0.0)
    seen = []
    job.on_snapshot = seen.append
    job.step_batch(6)
    wait_for(lambda: job.status()["state"] == "paused", timeout=60)
    assert len(seen) >= 3 and seen[-1] is job.snapshot(), len(seen)
    assert all(len(s["neurons"]) == 2 for s in seen)  # hidden=(4, 4): two layers of maps
    assert "on_snapshot" not in job.__getstate__()  # what travels to a worker
    job.join(30)  # its last snapshot is in: the page's hook is let go (a page shows it training again)
    assert job.on_snapshot is None


def test_step_n_takes_exactly_n_batches_and_events_rebuild_the_history(pool):
    job = new_job(pool, batch_size=10)
    job.step_batch(7)
    wait_for(lambda: job.status()["state"] == "paused", timeout=60)
    assert job.step == 7
    job.step_epoch()  # 250 training points: 25 batches per epoch
    wait_for(lambda: job.epoch == 1 and job.status()["state"] == "paused", timeout=60)
    assert job.step == 25
    view = job.view()
    replay = History()
    for event in view["events"]:
        replay.apply(event)
    assert [e["epoch"] for e in replay.epochs] == [0, 1] == [e["epoch"] for e in view["epochs"]]
    assert [s for s, _ in view["steps"]] == list(range(1, 26))
    kinds = [e.kind for e in view["events"]]
    assert "started" in kinds and "paused" in kinds and "snapshot" in kinds
    job.stop()


def test_a_failure_in_a_chunk_arrives_as_a_message_and_the_job_stays_usable(pool):
    job = new_job(pool)
    job.probe = FailingProbe()
    job.probe(job.model)  # the next call fails, wherever it runs
    job.start()
    wait_for(lambda: job.status()["state"] == "failed", timeout=60)
    assert "the probe broke" in job.status()["message"]
    job.probe = None
    job.step_batch(3)
    wait_for(lambda: job.status()["state"] == "paused", timeout=60)
    job.stop()


def test_settings_changed_mid_training_reach_the_optimizer(pool):
    job = new_job(pool, optimizer="sgd", lr=0.1)
    job.start()
    wait_for(lambda: job.step > 20, timeout=60)
    job.set_config(lr=0.01, optimizer="adam")
    wait_for(lambda: job.config.lr == 0.01, timeout=30)
    step = job.step
    wait_for(lambda: job.step > step + 20, timeout=60)
    job.pause()
    wait_for(lambda: not job.active)
    opt = job._optimizers["model"]
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == pytest.approx(0.01)
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], job.model.parameters()))
    job.stop()


def test_turns_that_carry_only_counters_train_exactly_as_the_job_alone(pool):
    """After its first turn a worker keeps the job, and while its copy is the state it sent
    back, a turn carries only the counters (travel.py). Asked for 5 batches at a time, with a
    new rate in between, weights loaded here and a chunk trained here in the web process (the
    worker's copy is then behind and must get the state again), the weights are those of the
    same job trained alone."""
    pool.warm()  # the idle clock starts again: no worker is released during this test
    assert pool.backend.wait_ready(60)  # chunks in the workers, not in the lanes while they boot
    job = new_job(pool, batch_size=10)
    alone = pickle.loads(pickle.dumps(job))
    alone.executor = Executor(ThreadBackend(1))

    def both(n):
        job.step_batch(n)
        wait_for(lambda: job.status()["state"] == "paused" and not job.active, timeout=60)
        alone.advance(n, 30)

    for _ in range(3):
        both(5)
    held = getattr(pool.backend, "_jobs", None)
    if held is not None:  # a worker holds the very state this process holds: the next turn is small
        assert (job.version, job.state_mark()) in [lane.get(job.uid) for lane in held]
        assert len(job.payload(None, resident=True, current=True)) < 2_000 < len(job.payload(None, resident=True))
    job.set_config(lr=0.3)
    alone.set_config(lr=0.3)
    both(5)
    halved = {k: v * 0.5 for k, v in alone.model.state_dict().items()}  # a weights file loaded (the CNN lab)
    for twin in (job, alone):
        with twin.lock:
            twin.model.load_state_dict(halved)
    both(5)
    job._budget = 3  # three batches asked for, trained here, as a lane does while its worker boots
    ThreadBackend.chunk(pool.backend, job, 0, 3, 30)
    alone.advance(3, 30)
    both(5)
    assert job.step == alone.step == 33
    for p, q in zip(job.model.parameters(), alone.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    job.stop()


def test_every_running_job_gets_its_turn(pool):
    jobs = [new_job(pool) for _ in range(5)]  # more jobs than the pool's 2 lanes
    for job in jobs:
        job.start()
    wait_for(lambda: all(job.epoch >= 2 for job in jobs), timeout=90)
    for job in jobs:
        job.stop()


def test_a_killed_worker_becomes_a_message_and_the_weights_survive(pool, tmp_path):
    if pool.backend.name == "thread":
        pytest.skip("in-process lanes have no worker to lose")
    job = new_job(pool)
    job.start()
    wait_for(lambda: job.epoch >= 2, timeout=60)
    job.pause()
    wait_for(lambda: not job.active)
    job.join()  # its last snapshot is taken: the probe below runs only in a worker
    assert pool.backend.wait_ready(60)  # booting workers leave their lanes' chunks to the lane's thread
    job.probe = SlowProbe(str(tmp_path / "started"))
    job.start()
    wait_for(lambda: (tmp_path / "started").exists(), timeout=30)  # a chunk is taking a snapshot, in a worker
    for lane in range(pool.backend.lanes):
        pool.backend.kill(lane)
    wait_for(lambda: job.status()["state"] == "failed", timeout=30)
    assert "stopped unexpectedly" in job.status()["message"] and "safe" in job.status()["message"]
    assert job.epoch >= 2 and all(torch.isfinite(p).all() for p in job.model.parameters())
    epoch = job.epoch
    job.probe = None
    job.start()  # a fresh worker takes over from the last weights
    wait_for(lambda: job.epoch >= epoch + 2, timeout=90, seen=lambda: (job.status(), pool.load()))
    assert job.view()["epochs"][-1]["test_loss"] < job.view()["epochs"][0]["test_loss"]
    job.stop()


def test_over_capacity_the_queue_moves_and_shows_its_place():
    ex = Executor(ThreadBackend(1), capacity=2, slice_s=0.5, unwatched_s=None)
    try:
        jobs = [new_job(ex) for _ in range(4)]
        for job in jobs:
            job.start()
        assert [j.status()["queue_position"] for j in jobs] == [None, None, 1, 2]
        assert jobs[3].status()["state"] == "queued"
        wait_for(lambda: all(j.epoch >= 1 for j in jobs), timeout=60)  # the last in line trained too
    finally:
        ex.shutdown()


def test_a_run_nobody_watches_pauses_and_says_why():
    ex = Executor(ThreadBackend(1), capacity=4, unwatched_s=0.5)
    try:
        job = new_job(ex)
        job.watched()
        job.start()
        wait_for(lambda: job.status()["state"] == "paused", timeout=30)
        assert "nobody had looked" in job.status()["message"]
    finally:
        ex.shutdown()


def test_slow_motion_paces_the_steps_and_holds_no_lane(pool):
    """At 5 steps a second a job takes about 5 steps a second, one per turn; between its turns the
    lanes train the others at full speed (two busy jobs on two lanes: still all turns taken)."""
    slow, fast, other = new_job(pool, steps_per_s=5.0), new_job(pool), new_job(pool)
    for job in (slow, fast, other):
        job.start()
    wait_for(lambda: slow.step >= 1, timeout=60)
    s0, f0, t0 = slow.step, fast.step, time.monotonic()
    time.sleep(2.0)
    s1, f1, dt = slow.step, fast.step, time.monotonic() - t0
    for job in (slow, fast, other):
        job.stop()
    assert 0.5 * 5 * dt <= s1 - s0 <= 5 * dt + 2, (s1 - s0, dt)
    assert f1 - f0 > 4 * (s1 - s0), (f1 - f0, s1 - s0)


def test_learners_with_the_same_network_train_as_one_gang_and_keep_the_contract(pool):
    """Four learners, one network shape: their turns meet at epoch boundaries and train as one
    stacked step (gang.py); step n still takes exactly n batches each, and a rate that blows
    up fails only its own run."""
    jobs = [new_job(pool, optimizer="sgd", lr=0.1) for _ in range(4)]
    before = pool.load()["ganged"]
    for job in jobs:
        job.start()
    wait_for(lambda: all(job.epoch >= 4 for job in jobs) and pool.load()["ganged"] > before, timeout=90)
    for job in jobs:
        job.pause()
    wait_for(lambda: all(job.status()["state"] == "paused" for job in jobs))  # (inactive at once; paused when put back)
    steps = [job.step for job in jobs]
    jobs[3].set_config(lr=1e9)
    for job in jobs:
        job.step_batch(12)
    wait_for(lambda: jobs[3].status()["state"] == "failed" and all(
        job.step >= s + 12 and job.status()["state"] == "paused" for job, s in zip(jobs[:3], steps)), timeout=60)
    time.sleep(0.3)
    assert [job.step for job in jobs[:3]] == [s + 12 for s in steps[:3]]
    assert jobs[3].status()["state"] == "failed" and "Learning rate too high" in jobs[3].status()["message"]
    assert all(job.status()["state"] == "paused" for job in jobs[:3])
    for job in jobs:
        job.stop()


@pytest.mark.parametrize("cuts_short", [True, False])
def test_a_gang_turn_is_long_only_while_nobody_waits_for_a_lane(cuts_short):
    """A gang alone in the line may train as long as its pictures' pace (up to FREE_TURN_S), on a
    backend that can end a turn early (a pause, a page that needs the weights); a learner of
    another network waiting for the lane makes every turn short again (GANG_TURN_S at most), and
    a backend that cannot end a turn early never takes long ones."""
    from dl_core.engine.executors import FREE_TURN_S, GANG_TURN_S

    class Recording(ThreadBackend):
        def gang(self, jobs, lane, budgets, max_s):
            self.turns.append((len(jobs), max_s))
            super().gang(jobs, lane, budgets, 0.02)

    ex = Executor(ThreadBackend(1), capacity=8, unwatched_s=None)
    ex.backend = Recording(1)
    ex.backend.cuts_short, ex.backend.turns = cuts_short, []
    try:
        gang = [new_job(ex) for _ in range(4)]
        with ex._cond:  # all in line before the lane picks
            for job in gang:
                job.start()
        wait_for(lambda: len(ex.backend.turns) >= 3)
        floor = ex.pace()[1]
        assert floor > GANG_TURN_S and {n for n, _ in ex.backend.turns} == {4}
        if cuts_short:
            assert {s for _, s in ex.backend.turns} == {min(FREE_TURN_S, floor)}
        else:
            assert all(s <= GANG_TURN_S for _, s in ex.backend.turns)
        other = new_job(ex, optimizer="sgd")  # another gang key: it waits whenever the four train
        other.start()
        wait_for(lambda: other.step > 0)
        seen = len(ex.backend.turns)
        wait_for(lambda: len(ex.backend.turns) >= seen + 4)
        assert all(s <= GANG_TURN_S for _, s in ex.backend.turns[seen:])
    finally:
        ex.shutdown()
