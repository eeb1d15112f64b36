"""The thread and the controls of a training job, apart from what it trains.

Controls (start, pause, step n batches, stop) are flags under one condition variable; the
worker thread waits for work, takes a slot from the runner (the server's cap on jobs
computing at once), then calls the job's `advance` chunk after chunk until the flags say
stop. TrainingJob (training.py) supplies `advance`, `_take_snapshot` and `_emit`.
"""
from __future__ import annotations

import threading

from .runner import JobRunner


class Worker:
    """The lifecycle half of TrainingJob; see the module docstring."""

    def __init__(self, runner: JobRunner):
        self.runner = runner
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._want_run = False
        self._budget = 0  # optimizer steps still to take while paused
        self._stop = False
        self.state, self.message = "idle", ""
        self.step = self.epoch = 0

    # ---- controls (called from the UI thread) ----
    def start(self) -> None:
        """Train continuously (also resumes after pause, stop, finish or failure)."""
        with self._cond:
            self._want_run = True
            self._ensure_thread()

    resume = start

    def pause(self) -> None:
        with self._cond:
            self._want_run = False
            self._budget = 0
            self._cond.notify_all()

    def step_batch(self, n: int = 1) -> None:
        """Take exactly `n` optimizer steps, then stay paused."""
        with self._cond:
            self._want_run = False
            self._budget += n
            self._ensure_thread()

    def stop(self) -> None:
        """End the worker thread; the model keeps its weights and can train on later."""
        with self._cond:
            self._stop = True
            self._want_run = False
            self._budget = 0
            self._cond.notify_all()
        self.runner.cancel(self)

    def join(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    # ---- observation (any thread) ----
    def status(self) -> dict:
        with self._cond:
            return {"state": self.state, "message": self.message, "step": self.step, "epoch": self.epoch,
                    "queue_position": self.runner.position(self), "busy": self._want_run or self._budget > 0}

    @property
    def active(self) -> bool:
        """True while the worker has work to do (the page should keep polling)."""
        with self._cond:
            return self._thread is not None and self._thread.is_alive() and (self._want_run or self._budget > 0)

    # ---- the worker thread ----
    def _ensure_thread(self) -> None:
        """Called with self._cond held, from start and step."""
        self.runner.reserve(self)
        if self.runner.position(self) is not None:
            self.state = "queued"
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="training-job", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _halted(self) -> bool:
        """Whether the controls say stop. Lock-free on purpose: the runner calls it while holding
        its own lock, and status() takes ours then the runner's (reading three flags is atomic)."""
        return self._stop or not (self._want_run or self._budget > 0)

    def _run(self) -> None:
        # Lock order, everywhere: self.lock (weights) before self._cond (state).
        holding = False
        with self.lock:
            for m in self.trainer.models.values():
                m.train()
        try:
            while True:
                with self._cond:
                    idle = not self._stop and not self._want_run and self._budget == 0
                    if idle and self.state == "running":
                        self.state = "paused"
                        self._emit("paused")
                if idle:
                    if holding:
                        self.runner.release(self)
                        holding = False
                    self._take_snapshot()
                    with self._cond:
                        while not self._stop and not self._want_run and self._budget == 0:
                            self._cond.wait()
                with self._cond:
                    if self._stop:
                        break
                    if not holding:
                        self.state = "queued"
                if not holding:
                    holding = self.runner.acquire(self, abort=self._halted)
                    if not holding:
                        if self._stop:
                            break
                        with self._cond:  # paused while waiting: leave the queue, wait for the next start
                            self.state = "paused"
                        continue
                    with self._cond:
                        self.state = "running"
                        self._emit("started")
                self.advance(halt=self._halted)
        except Exception as exc:  # reaches the page as a message; the app stays usable
            self._pending.clear()
            with self._cond:
                self.state, self.message = "failed", f"Training stopped with an error: {exc}"
                self._want_run, self._budget = False, 0
                self._emit("failed", self.message)
        finally:
            if holding:
                self.runner.release(self)
            with self._cond:
                if self.state not in ("failed", "finished"):
                    self.state = "stopped"
                    self._emit("stopped")
                if not self._stop and (self._want_run or self._budget > 0):  # asked again while ending
                    self._thread = None
                    self._ensure_thread()
