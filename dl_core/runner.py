"""Who may train right now, and whose jobs they are.

One server serves a classroom and every job shares its cores (and Python's
GIL), so a process-wide cap limits how many jobs compute at once; the rest
wait in a FIFO queue and can show their place in it. Jobs belong to a browser
session: when a session goes away the stop is only *scheduled*, because a
Wi-Fi blip drops and restores the same session, and the next poll cancels it.
Pages talk to jobs through TrainingJob's methods only, so a process-based
runner can replace this one without touching them.
"""
from __future__ import annotations

import os
import threading
from collections import deque


class JobRunner:
    """A counting gate with a visible queue."""

    def __init__(self, max_running: int):
        self.max_running = max(1, int(max_running))
        self._cond = threading.Condition()
        self._running: set[int] = set()
        self._queue: deque[int] = deque()

    def reserve(self, job) -> None:
        """Take a place in the queue now (when the learner presses Train), so places
        follow the order of the clicks, not of thread scheduling."""
        key = id(job)
        with self._cond:
            if key not in self._running and key not in self._queue:
                self._queue.append(key)

    def cancel(self, job) -> None:
        """Give up a place in the queue (a stopped job)."""
        with self._cond:
            if id(job) in self._queue:
                self._queue.remove(id(job))
                self._cond.notify_all()

    def acquire(self, job, abort) -> bool:
        """Block until `job` may compute; False if `abort()` became true first."""
        key = id(job)
        with self._cond:
            if key in self._running:
                return True
            if key not in self._queue:
                self._queue.append(key)
            try:
                while self._queue[0] != key or len(self._running) >= self.max_running:
                    if abort():
                        return False
                    self._cond.wait(timeout=0.05)
                self._running.add(key)
                return True
            finally:
                if key in self._queue:
                    self._queue.remove(key)
                self._cond.notify_all()

    def release(self, job) -> None:
        with self._cond:
            self._running.discard(id(job))
            self._cond.notify_all()

    def position(self, job) -> int | None:
        """1-based place in the queue, or None when not waiting."""
        with self._cond:
            try:
                return self._queue.index(id(job)) + 1
            except ValueError:
                return None

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)


class SessionJobs:
    """Maps browser sessions to their jobs and stops them after a grace period."""

    def __init__(self, grace_s: float = 30.0):
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, object]] = {}
        self._timers: dict[str, threading.Timer] = {}

    def register(self, session_id: str, name: str, job) -> None:
        """Own `job` under `name`; a job it replaces is stopped (its weights stay with it)."""
        with self._lock:
            old = self._jobs.setdefault(session_id, {}).get(name)
            self._jobs[session_id][name] = job
        if old is not None and old is not job:
            old.stop()

    def jobs(self, session_id: str) -> dict[str, object]:
        with self._lock:
            return dict(self._jobs.get(session_id, {}))

    def touch(self, session_id: str) -> None:
        """The session is alive: cancel any stop scheduled for it."""
        with self._lock:
            timer = self._timers.pop(session_id, None)
        if timer:
            timer.cancel()

    def session_ended(self, session_id: str, grace_s: float | None = None) -> None:
        """Schedule the session's jobs to stop; never blocks (it runs on the server's event loop)."""
        timer = threading.Timer(self.grace_s if grace_s is None else grace_s, self._expire, (session_id,))
        timer.daemon = True
        with self._lock:
            old = self._timers.pop(session_id, None)
            self._timers[session_id] = timer
        if old:
            old.cancel()
        timer.start()

    def stop_all(self, join_timeout: float = 5.0) -> None:
        """Stop every job of every session and wait for their threads (server or test shutdown)."""
        with self._lock:
            jobs = [j for js in self._jobs.values() for j in js.values()]
            self._jobs.clear()
        for job in jobs:
            job.stop()
        for job in jobs:
            job.join(join_timeout)

    def _expire(self, session_id: str) -> None:
        with self._lock:
            self._timers.pop(session_id, None)
            jobs = self._jobs.pop(session_id, {})
        for job in jobs.values():
            job.stop()


def _default_cap() -> int:
    return int(os.environ.get("DLLAB_MAX_RUNNING_JOBS", "8"))


RUNNER = JobRunner(_default_cap())
SESSIONS = SessionJobs(float(os.environ.get("DLLAB_SESSION_GRACE_S", "30")))
