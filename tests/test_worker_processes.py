"""What only worker processes can do wrong (dl_core/workerproc.py): a pool that boots while the
first chunks train, workers warmed, rested and released, a gang's epochs reported while its turn
is away, and a first turn that imports nothing heavy. The job contract they share with the other
backends is in test_executors.py.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time

from conftest import new_job, wait_for
from dl_core.engine import Executor, ThreadBackend, executors
from dl_core.engine.backends import MISSING, order_for
from dl_core.engine.workerproc import ProcessBackend


def test_a_cold_process_pool_trains_at_once_while_its_workers_boot():
    """A worker needs seconds to import torch; the first ⏭ Step must not wait for it: the lane
    trains that chunk itself, and hands later ones to the worker once it is ready. A pause
    meanwhile leaves the booting worker alone."""
    ex = Executor(ProcessBackend(1), capacity=2, unwatched_s=None)
    try:
        job = new_job(ex)
        job.step_batch(1)
        wait_for(lambda: job.step == 1 and not job.active, timeout=30)
        assert not ex.backend.wait_ready(0)  # done before the worker finished booting
        booting = ex.backend._procs[0]
        ex.backend.interrupt(0)  # a pause now: the booting worker has no handler for the signal yet
        assert ex.backend.wait_ready(60)
        assert ex.backend._procs[0] is booting and booting.poll() is None  # the same worker, alive
        job.step_batch(2)
        wait_for(lambda: job.step == 3 and not job.active, timeout=30)
        assert ex.backend._jobs[0][job.uid][0] == job.version  # that one went to the worker
    finally:
        ex.shutdown()


def test_waiting_for_the_workers_outlasts_a_worker_released_meanwhile():
    """A lane idle for exit_s releases its worker, also while a test waits for it to boot: the
    wait starts a new one instead of waiting for the released one, which never comes."""
    ex = Executor(ProcessBackend(1), capacity=2, unwatched_s=None)
    try:
        ex.backend._proc(0)
        threading.Timer(0.3, ex.backend.release, args=(0,)).start()  # released while it boots
        assert ex.backend.wait_ready(30)
        assert ex.backend._procs[0].poll() is None
    finally:
        ex.shutdown()


def test_a_warmed_pool_has_its_workers_ready_before_the_first_job_rests_when_idle_and_ends_later():
    """A page warms the pool when a learner opens it: the workers boot before anyone trains, so
    the first chunk already runs in a worker. With nobody training, after idle_s the worker drops
    the jobs it held but stays up (the next class finds it ready); after exit_s it ends."""
    ex = Executor(ProcessBackend(1), capacity=2, unwatched_s=None, idle_s=2.0, exit_s=6.0)
    try:
        ex.warm()
        assert ex.backend.wait_ready(60)
        ex.warm()  # the page's next run (booting took about idle_s: the clock starts again, no worker restarts)
        job = new_job(ex)
        job.step_batch(1)
        wait_for(lambda: job.step == 1 and not job.active, timeout=30)
        assert ex.backend._jobs[0][job.uid][0] == job.version  # the very first chunk went to the worker
        worker = ex.backend._procs[0]
        held = order_for(job, {job.uid: (job.version, job.state_mark())}, 1, 0.1)  # "train the copy you hold"
        wait_for(lambda: not ex.backend._jobs[0], timeout=ex.idle_s + 3)  # rested
        with job.lock:
            assert ex.backend._send(0, held) == MISSING  # the worker dropped its copy
        assert ex.backend._procs[0] is worker and worker.poll() is None  # and is still up, ready
        job.step_batch(1)  # the next turn sends the whole job again
        wait_for(lambda: job.step == 2 and not job.active, timeout=30)
        assert ex.backend._procs[0] is worker
        end = time.monotonic() + ex.exit_s + 3
        while ex.backend._procs[0] is not None:  # idle: released, however often the lane is woken
            assert time.monotonic() < end, "the idle worker outlived exit_s"  # (jobs stopping after class)
            with ex._cond:
                ex._cond.notify_all()
            time.sleep(0.5)
        assert worker.wait(10) == 0
        off = Executor(ProcessBackend(1), warms=False)
        off.warm()
        assert off.backend._procs == [None]  # DLLAB_WARM_WORKERS=0: nothing started
    finally:
        ex.shutdown()


def test_a_gang_turn_away_shows_its_epochs_as_its_worker_reports_them():
    """Worker processes: a page polling while a gang's turn is away sees the epochs the worker
    has finished (status and the curves' epochs), ahead of the job's own record; the turn back,
    the record takes over without a repeated epoch; a turn lost with its worker takes its
    reports with it (the page shows the epoch the weights are at)."""
    ex = Executor(ProcessBackend(1), capacity=8, slice_s=1e9, unwatched_s=None)
    try:
        assert ex.backend.wait_ready(60)
        jobs = [new_job(ex, optimizer="sgd", lr=0.1) for _ in range(2)]
        for job in jobs:
            job.start()
        ahead = []

        def reported_ahead() -> bool:
            for job in jobs:
                with job._cond:  # the job's own counter and what a page reads, at one moment
                    own, shown, curve = job.epoch, job.status()["epoch"], job.view()["epochs"]
                numbers = [e["epoch"] for e in curve]
                assert numbers == sorted(set(numbers)) and numbers[-1] == shown, numbers[-5:]
                if shown > own:
                    ahead.append((own, shown))
            return len(ahead) >= 3

        wait_for(reported_ahead, timeout=60, interval=0.002)
        wait_for(lambda: ex.load()["ganged"] > 0, timeout=30)  # (counted when a turn is back)
        ex.backend.kill(0)
        wait_for(lambda: all(job.status()["state"] == "failed" for job in jobs), timeout=30)
        for job in jobs:
            numbers = [e["epoch"] for e in job.view()["epochs"]]
            assert job.status()["epoch"] == job.epoch == numbers[-1] and numbers == sorted(set(numbers))
    finally:
        ex.shutdown()


def test_a_page_that_needs_the_weights_ends_a_long_turn_at_its_next_step(monkeypatch):
    """A gang alone in the line takes long turns (here ten minutes: FREE_TURN_S and the pictures'
    pace patched); a page that takes the job's weights lock meanwhile (a new rate, a download)
    does not wait for the turn: the worker ends it at its next step, the page has the weights,
    and the job trains on."""
    monkeypatch.setattr(executors, "FREE_TURN_S", 600.0)
    ex = Executor(ProcessBackend(1), capacity=8, slice_s=1e9, unwatched_s=None)
    ex.pace = lambda: (0.1, 600.0)  # pictures once in ten minutes: a free turn may last that long
    try:
        assert ex.backend.wait_ready(60)
        job = new_job(ex, optimizer="sgd", lr=0.1)
        job.start()
        for lr in (0.05, 0.04, 0.03):  # (the lane, its turn back, took the lock straight back in 1 of 2 runs)
            wait_for(lambda: job.status()["epoch"] >= job.epoch + 2, timeout=60)  # the worker reports a turn away
            changed = threading.Event()
            threading.Thread(target=lambda: (job.set_config(lr=lr), changed.set()), daemon=True).start()
            assert changed.wait(30), "the page waited for the whole turn"
            assert job._optimizers["model"].param_groups[0]["lr"] == lr and job.status()["state"] == "running"
    finally:
        ex.shutdown()


def test_a_ready_worker_has_imported_what_its_first_turn_needs(tmp_path):
    """A worker says "ready" once its imports are done: a first turn (a gang of whole jobs, as at
    the start of a class) then imports nothing heavy. torch.optim's state_dict() imported
    torch._dynamo (892 modules) on its first call, inside the first turn."""
    jobs = [new_job(Executor(ThreadBackend(1))) for _ in range(3)]
    for job in jobs:
        job._want_run = True
    (tmp_path / "gang.pkl").write_bytes(pickle.dumps(("gang", [j.payload(None, 0.2) for j in jobs], 0.2)))
    code = ("import sys, pickle; from dl_core.engine.worker_main import preload, run_chunk; preload(); "
            "before = set(sys.modules); answers = pickle.loads(run_chunk(open(sys.argv[1], 'rb').read())); "
            "assert all(a[0] for a in answers), answers; print(sorted(set(sys.modules) - before))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "gang.pkl")], cwd=root, capture_output=True,
                         text=True, timeout=120, env=os.environ | {"PYTHONPATH": root})
    assert out.returncode == 0, out.stderr[-2000:]
    imported = eval(out.stdout.strip().splitlines()[-1])
    assert len(imported) < 20 and not any(m.startswith("torch._dynamo") for m in imported), imported
