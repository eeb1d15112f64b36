"""Who may train right now.

One server serves a classroom and every job shares its cores (and Python's
GIL), so a process-wide cap limits how many jobs compute at once; the rest
wait in a FIFO queue and can show their place in it. Whose jobs they are is
runs.py's business. Pages talk to jobs through TrainingJob's methods only, so
a process-based runner can replace this one without touching them.
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


def _default_cap() -> int:
    return int(os.environ.get("DLLAB_MAX_RUNNING_JOBS", "8"))


RUNNER = JobRunner(_default_cap())
