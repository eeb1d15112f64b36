"""Who trains when, and where: executors drive jobs in bounded chunks, round-robin.

A job (job.py) is flags plus a trainable state; it never owns a thread. An executor
admits jobs that want to train (up to `capacity`; the rest wait in a visible FIFO queue)
and has `lanes` threads that each take the next admitted job, run one chunk of its
`advance` (about 0.1 s or the exact batches a Step asked for) and put it back at the end
of the line. So every running job gets its turn, a paused or finished job holds nothing,
and, when the room is over capacity, a job that has had `slice_s` seconds in a row goes
to the back of the queue so that the queue moves. Nobody watching for `unwatched_s`
(the page stopped polling) pauses the job.

Where a chunk computes is the business of the backend the executor is given (backends.py):
the lane's own thread, a worker process per lane (workerproc.py) or a Ray actor per lane
(ray_backend.py). The app's server builds its executor from the environment (server.py).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque

from .backends import ThreadBackend, trim_heap
from .gang import MAX_GANG, gang_key
from .parts import CHUNK_S

# A gang's turn lasts a chunk per member, but at most this long. Pages no longer wait for a turn to
# come back to see its epochs (the worker reports each as it ends: worker_main.py), so turns can be
# long enough that shipping and absorbing a gang's jobs is a small part of them: shorter turns spent
# about as long travelling as training (docs/PERFORMANCE.md).
GANG_TURN_S = 1.0
# A gang's turn when no other job waits for a lane (a full room of one network: a gang per lane),
# on a backend that can end a turn early, may last as long as the pictures' pace (a job's snapshots
# reach the page when its turn is back), up to this: nobody waits for the lane meanwhile, and every
# seam between two turns (the worker answering, the next orders, the next turn's start) stalls its
# learners' pages. A pause, or a page that needs the weights (Executor.hurry), still ends the turn
# at its next step.
FREE_TURN_S = 2.0


class Executor:
    """Admission, the round-robin line and the lanes; see the module docstring."""

    def __init__(self, backend, capacity: int = 32, slice_s: float = 30.0, unwatched_s: float | None = 300.0,
                 idle_s: float = 20.0, warms: bool = True, exit_s: float = 600.0):
        """`backend`: where chunks compute, one lane per `backend.lanes` (backends.py)."""
        self.backend = backend
        self.capacity, self.slice_s, self.unwatched_s = max(1, capacity), slice_s, unwatched_s
        # A lane idle for idle_s rests: its worker drops the jobs it held and this process trims its
        # heap, so memory comes back soon after a class. The worker itself ends only after exit_s (a
        # lesson's gap), so that a class pressing ▶ Train at once does not find the pool gone cold,
        # its lanes training in the web processes while the workers boot.
        self.idle_s, self.exit_s, self.warms = idle_s, exit_s, warms
        self._rested = [False] * self.backend.lanes
        self._cond = threading.Condition()
        self._admitted: dict = {}  # job -> when its current stretch of turns began
        self._ready: deque = deque()  # admitted jobs waiting for their next chunk
        self._waiting: deque = deque()  # over capacity: the visible queue
        self._busy: dict = {}  # job -> the lane computing its chunk
        self._settling: dict = {}  # job -> lanes still settling it after its last turn (snapshot, save)
        self._threads: list[threading.Thread] = []
        self._idle_since = [time.monotonic()] * self.backend.lanes  # per lane: its last turn (or warm())
        self._closed = False
        self.chunks = 0  # chunks run so far (the teacher's view shows the load)
        self.ganged = 0  # of those, job turns taken together with others as one gang (gang.py)

    # ---- what jobs call ----
    def submit(self, job) -> None:
        """`job` wants to train: give it a place in the rotation, or in the queue."""
        with self._cond:
            if self._closed or job in self._admitted or job in self._waiting:
                return
            if len(self._admitted) < self.capacity and not self._waiting:
                self._admit(job)
            else:
                self._waiting.append(job)
            self._start_lanes()
            self._cond.notify_all()

    def warm(self) -> None:
        """A learner opened a training lab: start the workers now, and the lanes that release them
        after `idle_s` if nobody trains. A room pressing ▶ Train at once otherwise finds them
        cold: their lanes train in the web process while each worker imports torch, and every
        page waits for the web process."""
        with self._cond:
            if self._closed or not self.warms:
                return
            self._idle_since = [time.monotonic()] * self.backend.lanes
            self._rested = [False] * self.backend.lanes
            self._start_lanes()
            self._cond.notify_all()
        self.backend.warm()

    def halt(self, job) -> None:
        """`job` was paused or stopped: out of the line now, or at the end of its current chunk."""
        with self._cond:
            lane = self._busy.get(job)
            if lane is not None:
                self.backend.interrupt(lane)
                return
            held = self._admitted.pop(job, None) is not None or job in self._waiting
            if job in self._ready:
                self._ready.remove(job)
            if job in self._waiting:
                self._waiting.remove(job)
            self._fill()
        if held:
            job.left_line()

    def hurry(self, job) -> None:
        """Someone here waits for `job`'s weights lock, which its turn away holds: end that turn
        at its next step (the job trains on at its next turn). Lock-free, as its caller may hold
        the job's locks: at worst it ends the next turn on that lane instead, one seam more."""
        lane = self._busy.get(job)
        if lane is not None:
            self.backend.interrupt(lane)

    def position(self, job) -> int | None:
        """1-based place in the queue, or None when not waiting."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def holds(self, job) -> bool:
        with self._cond:
            return job in self._admitted or job in self._waiting

    def wait_idle(self, job, timeout: float | None = None) -> bool:
        """Block until no lane computes `job` (for join); True if that happened in time."""
        with self._cond:
            return self._cond.wait_for(lambda: job not in self._busy and job not in self._settling, timeout)

    def load(self) -> dict:
        """How full the room is: jobs taking turns, waiting, and the lanes that share them."""
        with self._cond:
            return {"training": len(self._admitted), "queued": len(self._waiting), "lanes": self.backend.lanes,
                    "capacity": self.capacity, "backend": self.backend.name, "chunks": self.chunks,
                    "ganged": self.ganged}

    def shutdown(self, timeout: float = 5.0) -> None:
        """Halt every job, let the lanes finish their chunks, stop the workers (server exit)."""
        with self._cond:
            self._closed = True
            jobs = [*self._admitted, *self._waiting]
            for lane in self._busy.values():
                self.backend.interrupt(lane)
            self._cond.notify_all()
        for job in jobs:
            job.pause()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        self.backend.close()

    # ---- the lanes ----
    def _admit(self, job) -> None:
        self._admitted[job] = time.monotonic()
        self._ready.append(job)

    def _fill(self) -> None:
        """Admit from the queue while there is room (called with the lock)."""
        while self._waiting and len(self._admitted) < self.capacity:
            self._admit(self._waiting.popleft())
        self._cond.notify_all()

    def _start_lanes(self) -> None:
        while len(self._threads) < self.backend.lanes:
            t = threading.Thread(target=self._lane, args=(len(self._threads),), daemon=True,
                                 name=f"training-lane-{len(self._threads)}")
            self._threads.append(t)
            t.start()

    def pace(self) -> tuple[float, float]:
        """(chunk seconds, seconds between snapshots) for the room as it is now. Every job taking
        turns should see a turn about once a second, so chunks shorten as the room fills (down
        to 30 ms). Snapshots (the probe's pictures) thin out as it fills, up to one every 3 s
        from 7.5 jobs per lane: each new one costs the web process a picture, and in a full room
        pictures took a large share of the web processes' time."""
        with self._cond:
            per_lane = len(self._admitted) / self.backend.lanes
        if per_lane <= 1:  # a lane each: as fast as the job's own settings ask
            return CHUNK_S, 0.0
        return max(0.03, min(CHUNK_S, 1.0 / per_lane - 0.015)), min(3.0, 0.4 * per_lane)

    def _pick(self):
        """(the first ready job whose turn is due, with the due jobs that can train with it as one
        gang (gang.py), None) or (None, seconds to wait): a paced job (slow motion) stays in line
        between its steps without holding a lane."""
        now = time.monotonic()
        for job in self._ready:
            if job.not_before <= now:
                key = gang_key(job)
                size = min(MAX_GANG, -(-len(self._admitted) // self.backend.lanes))  # every lane gets a share
                gang = [job] if key is None else [j for j in self._ready if j.not_before <= now
                                                  and gang_key(j) == key][:size]
                for j in gang:
                    self._ready.remove(j)
                return gang, None
        return None, (min(j.not_before for j in self._ready) - now) if self._ready else self.idle_s

    def _lane(self, lane: int) -> None:
        """Turns, one after another. Without one for `idle_s` (counted from the lane's last turn or
        warm(), not from the last wake-up: a room's jobs stopping one by one after class kept waking
        it, and its worker outlived the class by a minute) the lane rests; after `exit_s` its worker
        is released."""
        while True:
            with self._cond:
                if self._closed:
                    return
                jobs, wait = self._pick()
                if jobs is None:
                    idle = time.monotonic() - self._idle_since[lane]
                    if idle >= self.exit_s and not self._ready:
                        self._idle_since[lane] = math.inf  # released, until its next turn or warm()
                        self.backend.release(lane)
                        trim_heap()
                    elif idle >= self.idle_s and not self._ready and not self._rested[lane]:
                        self._rested[lane] = True
                        self.backend.rest(lane)  # nobody trains: the jobs' memory goes back,
                        trim_heap()  # and this process's freed heap with it
                    due = self.exit_s if self._rested[lane] else self.idle_s
                    self._cond.wait(min(wait, max(0.0, due - idle)))
                    continue
                for job in jobs:
                    self._busy[job] = lane
                free = not self._ready and self.backend.cuts_short
            self._turn(jobs, lane, free)
            self._idle_since[lane], self._rested[lane] = time.monotonic(), False

    def _turn(self, jobs: list, lane: int, free: bool = False) -> None:
        """One chunk for each of `jobs`: alone, or as one gang (a gang's turn lasts a chunk per job,
        or, when it is `free` (no other job waits for a lane), as long as the pictures' pace allows)."""
        chunk_s, floor = self.pace()
        going, budgets = [], []
        for job in jobs:
            budget = job.begin_turn()
            if budget is False:
                continue
            job.snapshot_floor_s = floor
            pace = job.config.steps_per_s
            if pace:  # paced: a chunk's worth of steps a turn (one in slow motion), the next turn due then
                steps = max(1, round(pace * CHUNK_S))
                budget = steps if budget is None else min(budget, steps)
                job.not_before = time.monotonic() + steps / pace
            going.append(job)
            budgets.append(budget)
        if going:
            try:
                if gang_key(going[0]) is None:
                    self.backend.chunk(going[0], lane, budgets[0], chunk_s)
                else:
                    turn_s = min(chunk_s * len(going), max(chunk_s, GANG_TURN_S))
                    self.backend.gang(going, lane, budgets, max(turn_s, min(FREE_TURN_S, floor)) if free else turn_s)
                    self.ganged += len(going) if len(going) > 1 else 0
            except Exception as exc:  # noqa: BLE001 - a worker's failure reaches the page as a message
                for job in going:
                    job.fail(exc)
            self.chunks += 1
        for job in jobs:
            self._end_turn(job)

    def _end_turn(self, job) -> None:
        unwatched = (self.unwatched_s is not None and job.seen_at is not None
                     and time.monotonic() - job.seen_at > self.unwatched_s)
        if unwatched:
            job.unwatched(self.unwatched_s)
        with self._cond:
            keep = not (self._closed or job.halted())  # a failure or the end clears the job's flags
            del self._busy[job]
            if not keep:
                self._settling[job] = self._settling.get(job, 0) + 1
            if keep and self._waiting and time.monotonic() - self._admitted[job] > self.slice_s:
                del self._admitted[job]  # its stretch is over while others wait: to the back of the queue
                self._waiting.append(job)
                job.requeued()
            elif keep:
                self._ready.append(job)
            else:
                self._admitted.pop(job, None)
            self._fill()
        if not keep:  # join() waits for this too: the job's last snapshot and its save
            try:
                job.left_line()
            finally:
                with self._cond:
                    self._settling[job] -= 1
                    if not self._settling[job]:
                        del self._settling[job]
                    self._cond.notify_all()


_default: Executor | None = None
_default_lock = threading.Lock()


def default() -> Executor:
    """The executor a job trains on when it is given none: the one `install` set (the app's
    server sets its own, server.py), else one in-process lane per core, made on first use, as a
    notebook or a script wants."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Executor(ThreadBackend(os.cpu_count() or 1))
        return _default


def install(executor: Executor | None) -> Executor | None:
    """Make `executor` the default from now on (None: back to none made yet); returns the one before."""
    global _default
    with _default_lock:
        before, _default = _default, executor
    return before
