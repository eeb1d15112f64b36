"""The controls and lifecycle of a training job, apart from what it trains.

Controls (start, pause, step n batches, stop) are flags under one condition variable; an
executor (executors.py) gives the job its turns and calls `advance` chunk after chunk
while the flags say train. The job owns no thread. TrainingJob (job.py) supplies
`advance`, `take_snapshot` and `_emit`.
"""
from __future__ import annotations

import threading
import time

from .backends import WorkerLost
from .executors import default as default_executor


class Controls:
    """The lifecycle half of TrainingJob; see the module docstring."""

    not_before = 0.0  # a paced job's next turn is due then (time.monotonic); the executor waits till then

    def __init__(self, executor=None):
        self.executor = executor or default_executor()
        self._cond = threading.Condition()
        self._want_run = False
        self._budget = 0  # optimizer steps still to take while paused
        self._stop = False
        self.state, self.message = "idle", ""
        self.step = self.epoch = 0
        self.seen_at: float | None = None  # when a page last showed this job (None: no page watches)
        self.on_rest = None  # called when the job stops taking turns (the run registry saves it then)
        self.on_snapshot = None  # called with each new snapshot as it is recorded here (a page builds its pictures)
        self._live: dict | None = None  # a turn still away: what its worker reported so far (_progress)

    # ---- controls (called from the UI thread) ----
    def carry_on_from(self, epoch: int, step: int) -> None:
        """A network loaded from a file counts on from where it was saved, not from epoch 0 (an
        untrained job only)."""
        with self._cond:
            if self.step == 0:
                self.epoch, self.step = max(0, int(epoch)), max(0, int(step))

    def start(self) -> None:
        """Train continuously (also resumes after pause, stop, finish or failure)."""
        with self._cond:
            self._want_run, self._stop, self.message = True, False, ""
        self._submit()


    def pause(self) -> None:
        with self._cond:
            self._want_run = False
            self._budget = 0
        self.executor.halt(self)

    def step_batch(self, n: int = 1) -> None:
        """Take exactly `n` optimizer steps, then stay paused."""
        with self._cond:
            self._want_run, self._stop = False, False
            self._budget += n
        self._submit()

    def stop(self) -> None:
        """Leave the executor; the model keeps its weights and can train on later."""
        with self._cond:
            self._stop = True
            self._want_run = False
            self._budget = 0
        self.executor.halt(self)
        if not self.executor.holds(self):
            self.left_line()

    def join(self, timeout: float | None = None) -> None:
        """Wait until no lane is computing this job."""
        self.executor.wait_idle(self, timeout)

    def watched(self) -> None:
        """A page is showing this job now (jobs nobody watches pause after a while)."""
        self.seen_at = time.monotonic()

    # ---- observation (any thread) ----
    def status(self) -> dict:
        with self._cond:
            live = self._live or {"step": self.step, "epoch": self.epoch}
            out = {"state": self.state, "message": self.message, "step": live["step"], "epoch": live["epoch"],
                   "busy": self._want_run or self._budget > 0, "collapse": getattr(self, "collapse", None)}
        out["queue_position"] = self.executor.position(self)
        return out

    @property
    def active(self) -> bool:
        """True while the job has work to do (the page should keep polling)."""
        with self._cond:
            busy = not self._stop and (self._want_run or self._budget > 0)
        return busy and self.executor.holds(self)

    # ---- the executor's side ----
    def _submit(self) -> None:
        self.executor.submit(self)
        if self.executor.position(self) is not None:
            with self._cond:
                self.state = "queued"

    def halted(self) -> bool:
        """Whether the controls say stop. Lock-free on purpose: the executor calls it while
        holding its own lock, and status() takes ours then the executor's."""
        return self._stop or not (self._want_run or self._budget > 0)

    def begin_turn(self):
        """A lane is about to run a chunk: the step budget (None: train on), or False if the
        job was halted while it waited for its turn."""
        with self._cond:
            if self.halted():
                return False
            if self.state != "running":
                self.state = "running"
                self._emit("started")
            return None if self._want_run else self._budget

    def progress(self, epoch: int | None, step: int = 0, epochs: tuple = ()) -> None:
        """A worker's report from a turn still away: its step and epoch counters and the epochs'
        measurements so far, shown by status() and view() until the turn comes back (then the
        job's own record takes over: call with None). Only what is shown: the weights, the
        counters the job trains from and its history change when the turn is absorbed, so a
        turn that fails takes its reports with it. A gang's turn (up to 1 s) runs several epochs,
        and a page redrawing meanwhile otherwise found the epoch of the turn before."""
        with self._cond:
            if epoch is None:
                self._live = None
                return
            live = self._live = self._live or {"epochs": []}
            live["epoch"], live["step"] = epoch, step
            live["epochs"].extend(epochs)

    def requeued(self) -> None:
        with self._cond:
            if self.state == "running":
                self.state = "queued"

    def left_line(self) -> None:
        """The job no longer takes turns: say how it ended, show the network as it is now, and
        let the run registry save it. The page's snapshot hook goes (its page may have gone too):
        a page showing the job train hooks it again."""
        try:
            self._settle()
        finally:
            self.on_snapshot = None
            if self.on_rest is not None:
                self.on_rest()

    def _settle(self) -> None:
        with self._cond:
            if self._stop:
                if self.state in ("running", "queued", "paused"):
                    self.state = "stopped"
                    self._emit("stopped")
                return
            if self.state not in ("running", "queued") or not self.halted():  # (started again meanwhile)
                return
            self.state = "paused"
            self._emit("paused")
        try:
            self.take_snapshot()
        except Exception as exc:  # noqa: BLE001 - a failing probe is the page's message, not a crash
            self.fail(exc)

    def fail(self, exc: Exception) -> None:
        """An error in a chunk reaches the page as a message; the app (and the job) stay usable."""
        self._pending.clear()
        lost = isinstance(exc, WorkerLost)
        with self._cond:
            self.state = "failed"
            self.message = (f"{exc}. Your network is safe, as it was at step {self.step}: press ▶ Train to go on."
                            if lost else f"Training stopped with an error: {exc}")
            self._want_run, self._budget = False, 0
            self._emit("failed", self.message)

    def unwatched(self, limit_s: float) -> None:
        with self._cond:
            self._want_run, self._budget = False, 0
            self.message = (f"Paused: nobody had looked at this run for {limit_s / 60:g} minutes, so its turn went "
                            "to others. Press ▶ Train to go on.")
