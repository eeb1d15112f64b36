"""Where a chunk computes: the backends an executor (executors.py) drives its lanes through.

- `ThreadBackend`: in the lane's thread, in this process. GPU jobs always run here: CUDA
  kernels release the interpreter lock, and a CUDA context per process costs much GPU memory.
- `RemoteBackend`: the base of the two that train elsewhere, a worker process per lane
  (workerproc.py) and a Ray actor per lane (ray_backend.py). A lane's worker keeps a copy of
  each job it trained; a turn sends the whole job the first time, its state after that, and
  only its counters while the worker's copy is the state it sent back last (travel.py). A
  worker that dies loses one turn, never the learner's weights, and any lane can take any
  job's next turn. The worker's side of this protocol is worker_main.py.
"""
from __future__ import annotations

import ctypes
import pickle
import struct
from contextlib import ExitStack

from .gang import train_many

MISSING = pickle.dumps((None, "missing"))  # a worker's answer to a turn for a job it does not hold
READY = struct.pack("<Q", 0)  # a new worker's first message: its imports (torch's, mostly) are done
PROGRESS = 1 << 63  # in a frame's length: a progress report, the reply is still to come
REST = struct.pack("<Q", 0)  # to a worker: drop the jobs you hold (its lane is idle); no reply


class WorkerLost(RuntimeError):
    """The process (or Ray actor) computing a chunk went away; the job's weights did not."""


class ThreadBackend:
    """Chunks run in the calling lane's thread."""

    name = "thread"
    cuts_short = False  # whether interrupt() ends a gang's turn at its next step (free turns: FREE_TURN_S)

    def __init__(self, lanes: int):
        self.lanes = lanes

    def chunk(self, job, lane: int, budget: int | None, max_s: float) -> None:
        job.advance(budget, max_s, halt=job.halted)

    def gang(self, jobs: list, lane: int, budgets: list, max_s: float) -> None:
        """One turn for same-architecture jobs together (gang.py), each job's lock held."""
        with ExitStack() as held:
            for job in jobs:
                held.enter_context(job.lock)
            train_many(jobs, budgets, max_s, halt=lambda: all(j.halted() for j in jobs))

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Whether every lane can run chunks where this backend runs them (here: always)."""
        return True

    def warm(self) -> None:
        """Get every lane's worker ready before the first chunk (here: nothing to start)."""

    def interrupt(self, lane: int) -> None:
        """The job reads its own flags between batches: nothing to do."""

    def rest(self, lane: int) -> None:
        """Nobody has trained on the lane for a while: its worker drops the jobs it holds (here: none)."""

    def release(self, lane: int) -> None:
        """The lane has been idle for long: give back what it holds (a worker's memory)."""

    def close(self) -> None:
        pass


class RemoteBackend(ThreadBackend):
    """What the process and Ray backends share: each turn goes to the lane's worker and back.
    A backend supplies `_send`, `_lost` and, if its workers boot, `_ready`."""

    lost_message = "The training worker stopped unexpectedly"

    def __init__(self, lanes: int):
        super().__init__(lanes)
        self._jobs: list[dict] = [{} for _ in range(lanes)]  # per lane: uid -> (version, state mark) its worker holds

    def _ready(self, lane: int) -> bool:
        """Whether the lane's worker can take a turn now; a booting one leaves it to the lane's thread,
        so a first ▶ Train or ⏭ Step never waits for a worker's imports."""
        return True

    def _send(self, lane: int, payload: bytes, report=None) -> bytes:
        """The lane's worker's reply to `payload`; its progress frames on the way go to `report`."""
        raise NotImplementedError

    def _lost_errors(self) -> tuple:
        """The errors that mean the lane's worker is gone."""
        return EOFError, OSError, ValueError

    def _lost(self, lane: int) -> None:
        """The lane's worker died: forget it (the next turn starts another)."""
        raise NotImplementedError

    def chunk(self, job, lane: int, budget: int | None, max_s: float) -> None:
        if not self._ready(lane):
            return super().chunk(job, lane, budget, max_s)
        with job.lock.for_lane():  # held until the chunk is back: a page that changes the job waits for it
            try:
                if round_trip(job, self._jobs[lane], budget, max_s, lambda p: self._send(lane, p)):
                    return
            except self._lost_errors() as exc:
                self._lost(lane)
                raise WorkerLost(self.lost_message) from exc
        super().chunk(job, lane, budget, max_s)  # on a GPU, or holding something that cannot travel

    def gang(self, jobs: list, lane: int, budgets: list, max_s: float) -> None:
        if not self._ready(lane):
            return super().gang(jobs, lane, budgets, max_s)
        with ExitStack() as held:
            for job in jobs:
                held.enter_context(job.lock.for_lane())
            try:
                left = gang_trip(jobs, self._jobs[lane], budgets, max_s, lambda p, r: self._send(lane, p, r))
            except self._lost_errors() as exc:
                self._lost(lane)
                raise WorkerLost(self.lost_message) from exc
        for job in left:
            self.chunk(job, lane, budgets[jobs.index(job)], max_s / len(jobs))


def order_for(job, lane_jobs: dict, budget, max_s) -> bytes | None:
    """`job`'s payload for a lane whose worker holds what `lane_jobs` says (uid -> (version,
    state mark of the copy it sent back last, or None when that is unknown))."""
    held = lane_jobs.get(job.uid, (None, None))
    return job.payload(budget, max_s, resident=held[0] == job.version,
                       current=held[0] == job.version and held[1] == job.state_mark())


def absorbed(job, lane_jobs: dict, answer: bytes) -> None:
    """Take a worker's answer; the lane's worker then holds this very state, unless the answer
    failed (its copy may have trained on: the next turn sends the state again)."""
    lane_jobs[job.uid] = (job.version, None)
    job.absorb(answer)
    lane_jobs[job.uid] = (job.version, job.state_mark())


def round_trip(job, lane_jobs: dict, budget, max_s, send) -> bool:
    """Run one chunk of `job` through `send(payload) -> reply`, as a turn if the lane's worker
    holds it at this version (`lane_jobs`: this lane's guess), else whole. False if the job
    cannot travel. The caller holds job.lock."""
    payload = order_for(job, lane_jobs, budget, max_s)
    if payload is None:
        return False
    reply = send(payload)
    if reply == MISSING:  # the worker restarted or dropped it: send the whole job
        reply = send(job.payload(budget, max_s))
    absorbed(job, lane_jobs, reply)
    return True


def gang_trip(jobs: list, lane_jobs: dict, budgets: list, max_s: float, send) -> list:
    """Run one turn of `jobs` together (gang.py) through `send(payload, report)`, as round_trip
    does for one; `report` takes the worker's progress frames (shown until the turn is back).
    Return the jobs left to train one by one (they cannot travel, or the worker lacked them).
    A job whose own part failed hears of it alone. The caller holds every job's lock."""
    orders = [order_for(job, lane_jobs, b, max_s) for job, b in zip(jobs, budgets)]
    if any(o is None for o in orders):
        return list(jobs)
    by_uid, left = {job.uid: job for job in jobs}, []

    def report(data: bytes) -> None:
        for uid, epoch, step, epochs in pickle.loads(data):
            by_uid[uid].progress(epoch, step, epochs)

    try:
        for job, answer in zip(jobs, pickle.loads(send(pickle.dumps(("gang", orders, max_s)), report))):
            if answer == MISSING:
                left.append(job)
                continue
            try:
                absorbed(job, lane_jobs, answer)
            except RuntimeError as exc:
                job.fail(exc)
    finally:
        for job in jobs:  # the job's own record from here on (or, the turn lost, as it was before)
            job.progress(None)
    return left


def trim_heap() -> None:
    """Hand freed heap back to the operating system (glibc keeps it for reuse otherwise): after a
    class, the server's memory returns towards its level before it. No gc.collect() here: a forced
    collection released session-scoped cache entries of sessions still open (their on_release
    scheduled a stop), and a learner reading another page lost a training run."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
