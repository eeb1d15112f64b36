"""Runs that survive a reload: every training run on the server, by an unguessable id.

A browser session owns its runs. The address bar carries a lab's run id, so a reload
(which is a new session) or a tab reopened within the grace period finds its run again,
still training. An address is not a key, though: only a session in the same browser (the
page passes a hash of the browser's secret cookie, ui/browsers.py) takes the run over, and
only once the old session is gone. Anyone else opening the address gets an independent
copy of the network as it is at that moment, never control of the owner's job, and no copy
at all of a run that trained on its owner's own uploaded data (`private`).

When a session goes away its runs' jobs are only *scheduled* to stop, because a Wi-Fi
blip drops and restores the same session; the next poll cancels the stop. Stopped runs
stay in memory for `keep_s`, and every run that rests (paused, finished, stopped) is also
saved to the run store on disk (runstore.py), so a restarted server, or another web
process behind the classroom proxy, finds it by its id.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .footprint import nbytes
from .runstore import RunStore

log = logging.getLogger(__name__)


@dataclass
class Run:
    id: str
    lab: str  # the key of the lab that made it
    job: object  # a TrainingJob (or anything with stop/join/clone)
    owner: str  # browser session id
    settings: dict = field(default_factory=dict)  # the lab's control values, restored on reattach
    extra: dict = field(default_factory=dict)  # what the lab needs besides the job (spec, data, …)
    shown_at: float = field(default_factory=time.monotonic)  # when its lab last made it the current run
    browser: str = ""  # a hash of its owner's browser secret: only that browser reattaches it
    saved_step: int = -1  # the job's step when the store last kept it

    @property
    def private(self) -> bool:
        """Whether it trains on its owner's own data (an upload): nobody else gets a copy."""
        return bool(self.extra.get("private"))


class RunRegistry:
    """Runs by id, owned by sessions; see the module docstring."""

    def __init__(self, grace_s: float = 30.0, keep_s: float = 3600.0, reattach_wait_s: float = 1.5,
                 store: RunStore | None = None, budget_bytes: int = 256 << 20):
        self.grace_s, self.keep_s, self.reattach_wait_s, self.store = grace_s, keep_s, reattach_wait_s, store
        self.budget_bytes = budget_bytes  # what one session's runs may hold in memory (the pages keep to it)
        self._cond = threading.Condition()
        self._runs: dict[str, Run] = {}
        self._gone: dict[str, float] = {}  # session -> when its connection dropped
        self._arrived: dict[str, int] = {}  # session -> its number in order of arrival ("Learner 7")
        self._names: dict[str, str] = {}  # session -> the name the learner chose for the class board
        self._timers: dict[str, threading.Timer] = {}

    def create(self, session: str, lab: str, job, settings: dict | None = None, extra: dict | None = None,
               browser: str = "") -> Run:
        run = Run(secrets.token_urlsafe(16), lab, job, session, dict(settings or {}), dict(extra or {}),
                  browser=browser)
        if run.private:  # the learner's upload: the store writes it once, not into every saved run
            for data in (getattr(job, "data", None), run.extra.get("data")):
                if hasattr(data, "__dict__") and not getattr(data, "blob_key", ""):
                    object.__setattr__(data, "blob_key", secrets.token_hex(16))  # frozen dataclasses too
        with self._cond:
            self._prune()
            self._runs[run.id] = run
        if self.store is not None:
            self.store.prune()  # outside the lock: now and then it reads the whole store
        job.on_rest = lambda: self.save(run)
        return run

    def save(self, run: Run) -> None:
        """Put a trained run in the store (called from the executor when its job rests). A run
        whose owner left for good is then dropped from memory: the store gives it back."""
        if self.store is None or run.job.step == 0 or self._runs.get(run.id) is not run:
            return
        try:
            if self.store.save(run) is False:  # too big to keep: it stays in memory only
                return
        except Exception:  # noqa: BLE001 - a full disk must not stop training; the run stays in memory
            log.exception("could not save run %s", run.id)
            return
        run.saved_step = run.job.step
        resting = not run.job.active  # read outside our lock: the job takes its own
        with self._cond:
            if self._left(run.owner) and resting:
                self._runs.pop(run.id, None)

    def _left(self, session: str) -> bool:
        """The session is gone and its grace period is over (called with the lock)."""
        return session in self._gone and session not in self._timers

    def footprint(self, session: str) -> int:
        """The bytes that a session's runs hold in this process (their networks, data, optimizers)."""
        with self._cond:
            mine = [r for r in self._runs.values() if r.owner == session]
        return nbytes(*mine)

    def _restore(self, run_id: str) -> Run | None:
        """A run from the store into memory (called with the lock), resting, with its old owner."""
        from .job import TrainingJob

        saved = self.store.load(run_id) if self.store is not None else None
        if saved is None:
            return None
        lab, settings, extra, state, meta = saved
        try:
            job = TrainingJob.from_state(state, loads=self.store.loads)
        except Exception:  # noqa: BLE001 - a file from an older version: as if it were not there
            log.exception("could not restore run %s", run_id)
            return None
        run = Run(run_id, lab, job, meta["owner"], settings, extra, browser=meta.get("browser", ""))
        job.on_rest = lambda: self.save(run)
        self._runs[run_id] = run
        self._gone.setdefault(run.owner, time.monotonic())  # its owner is not connected to this process
        return run

    def get(self, run_id: str | None) -> Run | None:
        with self._cond:
            return self._runs.get(run_id or "")

    def open(self, run_id: str | None, session: str, browser: str = "") -> tuple[Run | None, str]:
        """What a session in `browser` gets for a run id from its address bar: ("own" |
        "reattached" | "copied" | "private" | "missing", with the run or its copy). A reload's
        old session usually reports its end within milliseconds; wait briefly for that before
        deciding the owner is still here."""
        with self._cond:
            run = self._runs.get(run_id or "") or self._restore(run_id or "")
            if run is None:
                return None, "missing"
            if run.owner == session:
                return run, "own"
            if browser and run.browser == browser:
                self._cond.wait_for(lambda: run.owner in self._gone, timeout=self.reattach_wait_s)
                if run.owner in self._gone:  # a reload: the same learner gets all their runs back
                    self._take_over(run.owner, session)
                    return run, "reattached"
            if run.private:
                return None, "private"
        twin = self.create(session, run.lab, run.job.clone(), run.settings, run.extra, browser=browser)
        return twin, "copied"

    def _take_over(self, old: str, session: str) -> None:
        """`session` owns all of `old`'s runs from now on, those on disk too (called with the lock)."""
        if old in self._names:
            self._names[session] = self._names.pop(old)
        for other in self.store.ids_of(old) if self.store is not None else ():
            if other not in self._runs:
                self._restore(other)
        for r in self._runs.values():
            if r.owner == old:
                r.owner = session

    def runs_of(self, session: str, lab: str | None = None) -> list[Run]:
        """A session's runs, the one its lab showed last first."""
        with self._cond:
            mine = [r for r in self._runs.values() if r.owner == session and (lab is None or r.lab == lab)]
        return sorted(mine, key=lambda r: -r.shown_at)

    def discard(self, run: Run) -> None:
        """Forget a run (its job stops; nothing else refers to it)."""
        with self._cond:
            self._runs.pop(run.id, None)
        run.job.stop()
        if self.store is not None:
            self.store.forget(run.id)

    def all_runs(self) -> list[Run]:
        with self._cond:
            return list(self._runs.values())

    def connected(self) -> int:
        """Browser sessions connected now."""
        with self._cond:
            return sum(1 for s in self._arrived if s not in self._gone)

    def set_name(self, session: str, name: str) -> None:
        """The learner's own name for the class board ("" to stay anonymous)."""
        with self._cond:
            if name.strip():
                self._names[session] = name.strip()[:40]
            else:
                self._names.pop(session, None)

    def display_name(self, session: str) -> str:
        with self._cond:
            return self._names.get(session) or f"Learner {self._arrived.setdefault(session, len(self._arrived) + 1)}"

    def touch(self, session: str) -> None:
        """The session is alive: cancel any stop scheduled for it."""
        with self._cond:
            self._arrived.setdefault(session, len(self._arrived) + 1)
            self._gone.pop(session, None)
            timer = self._timers.pop(session, None)
        if timer:
            timer.cancel()

    def session_ended(self, session: str, grace_s: float | None = None) -> None:
        """Schedule the session's jobs to stop; never blocks (it runs on the server's event loop)."""
        timer = threading.Timer(self.grace_s if grace_s is None else grace_s, self._expire, (session,))
        timer.daemon = True
        with self._cond:
            self._gone[session] = time.monotonic()
            old = self._timers.pop(session, None)
            self._timers[session] = timer
            self._cond.notify_all()
        if old:
            old.cancel()
        timer.start()

    def stop_all(self, join_timeout: float = 5.0) -> None:
        """Stop every job, wait for their threads and forget every run (server or test shutdown)."""
        with self._cond:
            jobs = [r.job for r in self._runs.values()]
            self._runs.clear()
        for job in jobs:
            job.stop()
        for job in jobs:
            job.join(join_timeout)

    def _expire(self, session: str) -> None:
        """The grace period is over: stop the jobs this session still owns (a run taken over
        by a reload belongs to the new session by now and trains on); those the store already
        holds as they are leave memory."""
        with self._cond:
            self._timers.pop(session, None)
            mine = [r for r in self._runs.values() if r.owner == session]
        kept = [r for r in mine if self.store is not None and not r.job.active and r.saved_step == r.job.step]
        with self._cond:
            for r in kept:
                if r.owner == session:
                    self._runs.pop(r.id, None)
        for r in mine:
            r.job.stop()

    def _prune(self) -> None:
        """Drop runs whose owner has been gone for longer than keep_s (called with the lock)."""
        now = time.monotonic()
        for run_id, run in list(self._runs.items()):
            gone = self._gone.get(run.owner)
            if gone is not None and now - gone > self.keep_s:
                del self._runs[run_id]
                run.job.stop()


def _store() -> RunStore:
    env = os.environ.get
    root = env("DLLAB_RUN_STORE") or Path.home() / ".cache" / "deep-learning-lab" / "runs"
    return RunStore(root, int(float(env("DLLAB_RUN_STORE_MB", "50")) * (1 << 20)),
                    float(env("DLLAB_RUN_STORE_KEEP_S", str(4 * 3600))))


RUNS = RunRegistry(float(os.environ.get("DLLAB_SESSION_GRACE_S", "30")),
                   float(os.environ.get("DLLAB_RUN_KEEP_S", "3600")), store=_store(),
                   budget_bytes=int(float(os.environ.get("DLLAB_SESSION_MB", "256")) * (1 << 20)))
