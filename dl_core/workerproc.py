"""Worker processes: where the process executor's chunks run, and the protocol both ends speak.

A worker is a plain `python -m dl_core.workerproc` process on pipes (length-prefixed
pickles), not multiprocessing's spawn: under `streamlit run` the `__main__` module is the
app's script, and spawn ran the whole app again in every worker. It keeps a copy of each
job it has trained (`run_chunk`); `round_trip` sends a whole job the first time, its state
after that, and only its counters while the worker's copy is the state it sent back last
(travel.py). While a gang trains, the worker also reports each epoch as it ends (a
progress frame: its length's top bit set), so a page shows the epochs of a turn still
away. A lane idle for a while sends its worker an empty frame (REST): the worker drops its
copies and stays up. The Ray backend's actors speak the same protocol, without progress frames.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from contextlib import ExitStack
from pathlib import Path

from .executors import ThreadBackend, trim_heap
from .gang import train_many
from .jobparts import pack_tensors
from .worker import WorkerLost

_RESIDENT: OrderedDict = OrderedDict()  # in a worker: uid -> (version, job), the jobs it has seen lately
RESIDENT_MAX = 64
MISSING = pickle.dumps((None, "missing"))  # a worker's answer to a turn for a job it does not hold
READY = struct.pack("<Q", 0)  # a new worker's first message: its imports (~3 s of torch) are done
PROGRESS = 1 << 63  # in a frame's length: a progress report, the reply is still to come
REST = struct.pack("<Q", 0)  # to a worker: drop the jobs you hold (its lane is idle); no reply


def _resident(order: tuple):
    """The worker's copy of the job a chunk's `order` is for, brought up to date (a whole job
    stays here; a turn brings only its state), with the order's step budget; None if this
    worker does not hold the job at that version."""
    (kind, uid, body), version, budget, _max_s = order
    if kind == "job":
        _RESIDENT[uid] = (version, body)
    elif _RESIDENT.get(uid, (None,))[0] != version:
        return None, budget
    elif kind == "same":
        _RESIDENT[uid][1].load_counters(body)
    else:
        _RESIDENT[uid][1].load_turn_state(body)
    _RESIDENT.move_to_end(uid)
    job = _RESIDENT[uid][1]
    while len(_RESIDENT) > RESIDENT_MAX:
        _RESIDENT.popitem(last=False)
    return job, budget


def _answer(job, events) -> bytes:
    """The trained state as one pickle inside the answer: the web process may keep it as bytes
    until someone reads the weights (travel.py)."""
    state = pickle.dumps(pack_tensors(job.trained_state()))
    return pickle.dumps((True, (state, job.counters(), events, job.last_batches)))


def _failure(exc: Exception) -> bytes:
    return pickle.dumps((False, f"{type(exc).__name__}: {exc}"))


def run_chunk(payload: bytes, halt=lambda: False, report=None) -> bytes:
    """In a worker (process or actor): train one chunk of a job and answer with its state and
    events, or a gang of jobs together ("gang": a list of chunk orders, answered by a list of
    answers, MISSING for a job this worker does not hold; `report(bytes)`, if given, at each of
    its epoch boundaries). Any error comes back as a message, never as a dead worker."""
    try:
        order = pickle.loads(payload)
        if order[0] == "gang":
            return _run_gang(order[1], order[2], halt, report)
        job, budget = _resident(order)
        return MISSING if job is None else _answer(job, job.advance(budget, order[3], halt))
    except Exception as exc:  # noqa: BLE001 - reaches the learner as a message
        return _failure(exc)


def _run_gang(orders: list[bytes], max_s: float, halt, report) -> bytes:
    held = [_resident(pickle.loads(o)) for o in orders]
    jobs = [(job, budget) for job, budget in held if job is not None]
    sent = {}  # uid -> epochs reported so far this turn

    def tick() -> None:  # each job's counters and the epochs it measured since the last report
        rows = []
        for job, _ in jobs:
            epochs = [e.data for e in job._collect or () if e.kind == "epoch"]
            rows.append((job.uid, job.epoch, job.step, epochs[sent.get(job.uid, 0):]))
            sent[job.uid] = len(epochs)
        report(pickle.dumps(rows))

    try:
        events = dict(zip((j for j, _ in jobs), train_many([j for j, _ in jobs], [b for _, b in jobs], max_s, halt,
                                                           tick if report else lambda: None) if jobs else []))
        answers = [MISSING if job is None else _answer(job, events[job]) for job, _ in held]
    except Exception as exc:  # noqa: BLE001 - every job of the gang hears of it
        answers = [MISSING if job is None else _failure(exc) for job, _ in held]
    return pickle.dumps(answers)


def _order(job, lane_jobs: dict, budget, max_s) -> bytes | None:
    """`job`'s payload for a lane whose worker holds what `lane_jobs` says (uid -> (version,
    state mark of the copy it sent back last, or None when that is unknown))."""
    held = lane_jobs.get(job.uid, (None, None))
    return job.payload(budget, max_s, resident=held[0] == job.version,
                       current=held[0] == job.version and held[1] == job.state_mark())


def _absorbed(job, lane_jobs: dict, answer: bytes) -> None:
    """Take a worker's answer; the lane's worker then holds this very state, unless the answer
    failed (its copy may have trained on: the next turn sends the state again)."""
    lane_jobs[job.uid] = (job.version, None)
    job.absorb(answer)
    lane_jobs[job.uid] = (job.version, job.state_mark())


def round_trip(job, lane_jobs: dict, budget, max_s, send) -> bool:
    """Run one chunk of `job` through `send(payload) -> reply`, as a turn if the lane's worker
    holds it at this version (`lane_jobs`: this lane's guess), else whole. False if the job
    cannot travel. The caller holds job.lock."""
    payload = _order(job, lane_jobs, budget, max_s)
    if payload is None:
        return False
    reply = send(payload)
    if reply == MISSING:  # the worker restarted or dropped it: send the whole job
        reply = send(job.payload(budget, max_s))
    _absorbed(job, lane_jobs, reply)
    return True


def gang_trip(jobs: list, lane_jobs: dict, budgets: list, max_s: float, send) -> list:
    """Run one turn of `jobs` together (gang.py) through `send(payload, report)`, as round_trip
    does for one; `report` takes the worker's progress frames (shown until the turn is back).
    Return the jobs left to train one by one (they cannot travel, or the worker lacked them).
    A job whose own part failed hears of it alone. The caller holds every job's lock."""
    orders = [_order(job, lane_jobs, b, max_s) for job, b in zip(jobs, budgets)]
    if any(o is None for o in orders):
        return list(jobs)
    by_uid, left = {job.uid: job for job in jobs}, []

    def report(data: bytes) -> None:
        for uid, epoch, step, epochs in pickle.loads(data):
            by_uid[uid]._progress(epoch, step, epochs)

    try:
        for job, answer in zip(jobs, pickle.loads(send(pickle.dumps(("gang", orders, max_s)), report))):
            if answer == MISSING:
                left.append(job)
                continue
            try:
                _absorbed(job, lane_jobs, answer)
            except RuntimeError as exc:
                job._fail(exc)
    finally:
        for job in jobs:  # the job's own record from here on (or, the turn lost, as it was before)
            job._progress(None)
    return left


def preload() -> None:
    """Import, before a worker says "ready", what its first turn would import: the modules a
    job's pickle names, and torch._dynamo, which torch.optim's state_dict() imports on its
    first call (892 modules, 1.9 s of CPU; at the start of a class of 30, on busy cores, a
    first turn took 5-6 s and no page saw an epoch meanwhile)."""
    import torch._dynamo  # noqa: F401

    from . import probes, training  # noqa: F401


def _serve() -> None:
    """A worker process's loop (`python -m dl_core.workerproc`): one chunk per message on stdin,
    the reply on stdout, until stdin closes. SIGUSR1 interrupts the chunk in progress (pause)."""
    import signal
    import struct

    import torch

    preload()
    torch.set_num_threads(1)  # one process per core: more threads would only fight each other
    if hasattr(os, "nice"):  # training fills the idle cores; the web process's redraws and first paints come first
        os.nice(int(os.environ.get("DLLAB_WORKER_NICE", "5")))
    out, sys.stdout = os.fdopen(os.dup(1), "wb"), sys.stderr  # nothing but replies on the pipe
    out.write(READY)  # imports done: the lane may send chunks now
    out.flush()
    halted = [False]
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda *_: halted.__setitem__(0, True))

    def report(data: bytes) -> None:
        out.write(struct.pack("<Q", len(data) | PROGRESS) + data)
        out.flush()

    while True:
        head = sys.stdin.buffer.read(8)
        if len(head) < 8:
            return
        size = struct.unpack("<Q", head)[0]
        if not size:  # REST
            _RESIDENT.clear()
            gc.collect()
            trim_heap()
            continue
        payload = sys.stdin.buffer.read(size)
        halted[0] = False
        reply = run_chunk(payload, lambda: halted[0], report)
        out.write(struct.pack("<Q", len(reply)) + reply)
        out.flush()


class ProcessBackend(ThreadBackend):
    """One worker process per lane; jobs travel as pickles (see the module docstring)."""

    name = "process"
    cuts_short = True  # SIGUSR1 ends the worker's turn at its next step

    def __init__(self, lanes: int):
        super().__init__(lanes)
        self._procs: list[subprocess.Popen | None] = [None] * lanes
        self._ready: list[threading.Event] = [threading.Event() for _ in range(lanes)]
        self._jobs: list[dict] = [{} for _ in range(lanes)]  # per lane: uid -> (version, state mark) its worker holds
        self._spawning = threading.Lock()  # a lane and a page warming the pool: one worker per lane

    def warm(self) -> None:
        for lane in range(self.lanes):
            self._proc(lane)

    def _proc(self, lane: int) -> subprocess.Popen:
        with self._spawning:
            return self._spawn(lane)

    def _spawn(self, lane: int) -> subprocess.Popen:
        proc = self._procs[lane]
        if proc is None or proc.poll() is not None:
            root = str(Path(__file__).resolve().parents[1])
            env = os.environ | {"PYTHONPATH": os.pathsep.join([root, *sys.path])}
            self._jobs[lane].clear()
            ready = self._ready[lane] = threading.Event()
            proc = self._procs[lane] = subprocess.Popen(
                [sys.executable, "-m", "dl_core.workerproc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=env, cwd=root)
            threading.Thread(target=lambda: proc.stdout.read(len(READY)) == READY and ready.set(), daemon=True,
                             name=f"worker-{lane}-boot").start()
        return proc

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Start every lane's worker and wait until all have done their imports (tests that need
        chunks to run in a worker, not in the lane's thread while the worker boots). A worker
        released meanwhile (its lane idle) or ended is started again: waiting on the old one
        would wait for a worker that never comes."""
        end = time.monotonic() + timeout
        while True:
            for lane in range(self.lanes):
                self._proc(lane)
            if all(event.is_set() for event in self._ready):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    def kill(self, lane: int) -> None:
        """End one worker process the hard way (tests: a worker lost mid-chunk), and wait until it
        has ended: a killed worker not yet reaped still looks alive to the next chunk, which then
        fails on its pipe (the likely cause of one CI run where a job started again at once after
        its workers were killed did not train)."""
        proc = self._procs[lane]
        if proc:
            proc.kill()
            proc.wait(5)

    def chunk(self, job, lane: int, budget: int | None, max_s: float) -> None:
        self._proc(lane)
        if not self._ready[lane].is_set():  # the worker is still importing torch: train here meanwhile,
            return super().chunk(job, lane, budget, max_s)  # so a first ▶ Train or ⏭ Step never waits ~3 s
        with job.lock.for_lane():  # held until the chunk is back: a page that changes the job waits for it
            try:
                if round_trip(job, self._jobs[lane], budget, max_s, lambda payload: self._send(lane, payload)):
                    return
            except (EOFError, OSError, ValueError) as exc:
                self._restart(lane)
                raise WorkerLost("The training worker process stopped unexpectedly") from exc
        super().chunk(job, lane, budget, max_s)  # on a GPU, or holding something that cannot travel

    def gang(self, jobs: list, lane: int, budgets: list, max_s: float) -> None:
        self._proc(lane)
        if not self._ready[lane].is_set():
            return super().gang(jobs, lane, budgets, max_s)
        with ExitStack() as held:
            for job in jobs:
                held.enter_context(job.lock.for_lane())
            try:
                left = gang_trip(jobs, self._jobs[lane], budgets, max_s,
                                 lambda payload, report: self._send(lane, payload, report))
            except (EOFError, OSError, ValueError) as exc:
                self._restart(lane)
                raise WorkerLost("The training worker process stopped unexpectedly") from exc
        for job in left:
            self.chunk(job, lane, budgets[jobs.index(job)], max_s / len(jobs))

    def _send(self, lane: int, payload: bytes, report=lambda data: None) -> bytes:
        """The worker's reply to `payload`; its progress frames on the way go to `report`."""
        proc = self._proc(lane)
        proc.stdin.write(struct.pack("<Q", len(payload)) + payload)
        proc.stdin.flush()
        while True:
            head = proc.stdout.read(8)
            if len(head) < 8:
                raise EOFError
            size = struct.unpack("<Q", head)[0]
            if not size & PROGRESS:
                return proc.stdout.read(size)
            report(proc.stdout.read(size & ~PROGRESS))

    def interrupt(self, lane: int) -> None:
        """SIGUSR1 to a ready worker only: a booting one has no handler yet, and the signal's
        default ended it (a pause while the lane trained here meanwhile cost a worker)."""
        proc = self._procs[lane]
        if proc is not None and self._ready[lane].is_set() and proc.poll() is None and hasattr(signal, "SIGUSR1"):
            proc.send_signal(signal.SIGUSR1)

    def _restart(self, lane: int) -> None:
        with self._spawning:
            proc, self._procs[lane] = self._procs[lane], None
        if proc:
            proc.kill()
            proc.wait(5)

    def rest(self, lane: int) -> None:
        """The worker drops the jobs it holds and hands their memory back, but stays up with its
        imports done, so the next ▶ Train (a class pressing it at once) finds it ready."""
        self._jobs[lane].clear()  # the next turn of any job sends it whole
        proc = self._procs[lane]
        if proc is not None and self._ready[lane].is_set() and proc.poll() is None:
            try:
                proc.stdin.write(REST)
                proc.stdin.flush()
            except OSError:  # it has just ended: the next chunk starts another
                pass

    def release(self, lane: int) -> subprocess.Popen | None:
        """Close the worker's pipe (its loop ends at EOF) and let it exit in its own time, reaped in
        the background: the lane calls this holding the executor's lock, which a page's status()
        needs too, and a niced worker on busy cores took over 2 s to exit (it was killed then)."""
        with self._spawning:
            proc, self._procs[lane] = self._procs[lane], None
        if proc:
            proc.stdin.close()
            threading.Thread(target=_reap, args=(proc,), daemon=True, name=f"worker-{lane}-exit").start()
        return proc

    def close(self) -> None:
        """Server exit: every worker told to end, then waited for (killed after 10 s)."""
        for proc in [self.release(lane) for lane in range(self.lanes)]:
            if proc:
                _reap(proc)


def _reap(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    _serve()
