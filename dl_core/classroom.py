"""The teacher's view of the room: who is here, who trains, who waits, and a challenge board.

Plain data from the run registry and the executor; the page (labs/teacher.py) only draws
it. Nothing here carries a run id: the board names learners by the name they chose, or
"Learner n" in the order they arrived, so a projected board gives no one a way into
another learner's run.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import resource
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable


def _hidden_neurons(run) -> int:
    return sum(run.extra["setup"].hidden)


def _best(run, metric: str, pick=min) -> float | None:
    return run.job.best(metric, pick)


@dataclass(frozen=True)
class Challenge:
    title: str
    lab: str
    rule: str  # how the board judges it, for the teacher to read out
    dataset: str
    limit: Callable[[object], bool]  # the network's shape is within the rules
    score: Callable[[object], float | None]  # the run's best so far (lower is better unless noted)
    target: float
    lower_is_better: bool = True

    def reached(self, run) -> tuple[bool, float | None]:
        """(within the rules and at the target, best score so far) for one run."""
        if run.lab != self.lab or run.extra.get("data") is None or run.extra["data"].name != self.dataset:
            return False, None
        score = self.score(run)
        if score is None or not self.limit(run):
            return False, score
        return (score < self.target) if self.lower_is_better else (score >= self.target), score


CHALLENGES: dict[str, Challenge] = {
    "spiral-12": Challenge(
        "Spiral: test loss below 0.1 with at most 12 neurons", "playground",
        "Data 'Spiral', 12 hidden neurons or fewer in all, best test loss < 0.1.", "spiral",
        lambda run: _hidden_neurons(run) <= 12, lambda run: _best(run, "test_loss"), 0.1),
    "circle-4": Challenge(
        "Circle: 99 % test accuracy with one layer of at most 4 neurons", "playground",
        "Data 'Circle', one hidden layer of 4 neurons or fewer, best test accuracy ≥ 99 %.", "circle",
        lambda run: len(run.extra["setup"].hidden) == 1 and _hidden_neurons(run) <= 4,
        lambda run: _best(run, "test_acc", max), 0.99, lower_is_better=False),
    "xor-plain": Challenge(
        "XOR with x and y only: test loss below 0.05", "playground",
        "Data 'XOR', input features x and y only, best test loss < 0.05.", "xor",
        lambda run: set(run.extra["setup"].features) <= {"x", "y"}, lambda run: _best(run, "test_loss"), 0.05),
}


def room(registry, executor) -> dict:
    """Counts for the teacher: connected learners, runs training and waiting, the server's load."""
    load = executor.load()
    runs = registry.all_runs()
    states = [r.job.status()["state"] for r in runs]
    return {"connected": registry.connected(), "runs": len(runs), "training": states.count("running"),
            "queued": states.count("queued"), "lanes": load["lanes"], "backend": load["backend"],
            "capacity": load["capacity"], "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "cpus": os.cpu_count(), "rss_mb": _rss_mb()}


def board(challenge: Challenge, registry) -> list[dict]:
    """One row per learner who tried the challenge: name (or Learner n), reached, best score."""
    best: dict[str, dict] = {}
    for run in registry.all_runs():
        reached, score = challenge.reached(run)
        if score is None:
            continue
        name = registry.display_name(run.owner)
        row = best.get(name)
        better = row is None or (reached, score if not challenge.lower_is_better else -score) > \
            (row["reached"], row["best"] if not challenge.lower_is_better else -row["best"])
        if better:
            best[name] = {"learner": name, "reached": reached, "best": score}
    return sorted(best.values(), key=lambda r: (not r["reached"], r["best"] if challenge.lower_is_better
                                                else -r["best"]))


def _rss_mb() -> float:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Lesson:
    """The challenge the teacher has set for the room (one per server process)."""

    challenge: str | None = None


LESSON = Lesson()


MIN_TOKEN_CHARS = 12  # a room's teacher token is guessed online: too short a one falls to a script


class Gate:
    """The teacher's token, checked with an attempt limit: at most `tries` wrong tokens in any
    `window_s`, counted for the whole server (a learner can open many sessions), after which
    every attempt waits; the right token never proves more than the session that typed it."""

    def __init__(self, tries: int = 10, window_s: float = 60.0, clock=time.monotonic):
        self.tries, self.window_s, self.clock = tries, window_s, clock
        self._wrong: deque[float] = deque()
        self._lock = threading.Lock()

    def check(self, given: str, token: str) -> str:
        """"ok", "wrong", "short" (the server's token is too short to protect anything) or "wait"."""
        if len(token) < MIN_TOKEN_CHARS:
            return "short"
        with self._lock:
            now = self.clock()
            while self._wrong and now - self._wrong[0] > self.window_s:
                self._wrong.popleft()
            if len(self._wrong) >= self.tries:
                return "wait"
            if hmac.compare_digest(given.encode(), token.encode()):
                return "ok"
            self._wrong.append(now)
            return "wrong"

    @staticmethod
    def seal(session: str, token: str) -> str:
        """What a session that gave the right token keeps: a value only the token makes, so no file
        or address that writes a session's values can pass for it."""
        return hmac.new(token.encode(), session.encode(), hashlib.sha256).hexdigest()

    def sealed(self, value, session: str, token: str) -> bool:
        return isinstance(value, str) and len(token) >= MIN_TOKEN_CHARS and \
            hmac.compare_digest(value, self.seal(session, token))


GATE = Gate()
