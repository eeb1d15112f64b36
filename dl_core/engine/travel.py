"""A training job on its way to a worker process and back (the job's travelling half).

The process and Ray executors run a job's chunks elsewhere. The first time a worker sees a
job, the whole job goes (a pickle without its locks, events and history); after that, a
turn carries only what a chunk changes (`turn_state`: weights, optimizer and schedule
state, the random generator, counters), packed into one buffer per dtype, and the reply
brings the same back with the chunk's events (`absorb`). When the worker's copy is the very
state it sent back last (nothing changed here since: `state_mark`), a turn carries only the
counters, which the page may have changed (a pause, a step asked for): packing a gang's
state in a busy web process and loading it in the worker was a costly part of every
classroom turn. The run store saves a resting job whole (`to_state` / `from_state`).
TrainingJob (job.py) inherits this.

The way back is lazy too. A job that trains on after a turn keeps the worker's state as it
came, packed, and loads it only when someone takes its weights lock (`StateLock`: a page
reading the weights, a save, the next turn sending the state to another worker). Loading
a gang's state is many small torch calls, each giving up the interpreter lock, which a busy
process is slow to get back; a class's web process is busy, so loading every answer at once
ended every gang turn in a stall that no page could fill.
"""
from __future__ import annotations

import itertools
import pickle
import secrets
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass

from ..optim import track_steps
from .executors import default as default_executor
from .parts import CHUNK_S, pack_tensors, unpack_tensors
from .records import History
from .runstore import loads


@dataclass(frozen=True)
class Fields:
    """Every attribute a TrainingJob holds, declared once by where it goes; tests/test_travel.py
    fails on an attribute in none of them (it would otherwise silently not come back)."""

    local: tuple  # stays in this process: locks, logs, hooks, the executor, a packed answer
    counters: tuple  # plain values a page may change: both ways every turn, loaded at once
    trained: tuple  # what a step changes: both ways every turn, packed (trained_state)
    whole: tuple  # only with the whole job (its first trip to a worker, a saved run): fixed for a version

    @property
    def all(self) -> frozenset:
        return frozenset(self.local + self.counters + self.trained + self.whole)

    def undeclared(self, job) -> set[str]:
        """`job`'s attributes that no field list names."""
        return set(vars(job)) - self.all


JOB_FIELDS = Fields(
    local=("executor", "_cond", "lock", "_events", "_step_events", "_collect", "_history", "on_rest", "on_snapshot",
           "_live", "_packed", "_packed_mark", "_loaded_mark", "_tuned"),
    counters=("_pos", "step", "epoch", "_last_snapshot_t", "_want_run", "_budget", "state", "message",
              "snapshot_floor_s", "_low_epochs", "collapse", "config"),
    trained=("trainer", "_optimizers", "_schedulers", "generator", "_order", "_good_state", "_best", "_peak"),
    whole=("uid", "version", "copy", "_device", "_precision", "_networks", "_loss_names", "measuring",
           "last_batches", "_pending", "_pending_first", "_stop", "seen_at", "not_before"))
TRAVEL_MAX_BYTES = 16 << 20  # a bigger network trains in its lane's thread: shipping it each turn costs more
_ABSORBED = itertools.count()  # names each state a worker sent back (state_mark while it is still packed)


class StateLock:
    """A job's weights lock, re-entrant. Taking it loads the state a worker sent back if the job
    still holds it packed (see the module docstring), so whoever reads the weights under it finds
    them current. `bare` is the same lock without that: an executor's round trip takes it
    (`for_lane`), as it is about to send the state on or replace it.

    A page that finds the lock held by a turn away asks the executor to end that turn at its
    next step (`Executor.hurry`: a full room's turns last up to 2 s), and goes before the job's
    next turn: Python's locks are not fair, and the lane can take the lock straight back for
    the next turn (a test that changes a setting mid-turn saw it)."""

    def __init__(self, job):
        self.bare = threading.RLock()
        self._job = weakref.ref(job)
        self._waiting: set = set()  # threads blocked in acquire(): the next turn lets them go first

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        job = self._job()
        if not self.bare.acquire(False):  # a turn away holds it (or another reader): ask for it back
            if not blocking:
                return False
            me = threading.get_ident()
            self._waiting.add(me)
            try:
                if job is not None and job.executor is not None:
                    job.executor.hurry(job)
                if not self.bare.acquire(True, timeout):
                    return False
            finally:
                self._waiting.discard(me)
        try:
            if job is not None:
                job._unpack()
        except BaseException:
            self.bare.release()
            raise
        return True

    def for_lane(self, patience_s: float = 1.0) -> threading.RLock:
        """The bare lock, for a lane to take for a turn once the threads waiting for it have had it
        (at most `patience_s`: a waiter that holds it longer waits for the turn after)."""
        end = time.monotonic() + patience_s
        while self._waiting and time.monotonic() < end:
            time.sleep(0.002)
        return self.bare

    def release(self) -> None:
        self.bare.release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.bare.release()


class Travelling:
    """Pickling, turn state and absorbing for TrainingJob; see the module docstring."""

    _packed: bytes | None = None  # the state a worker sent back, not loaded yet (absorb)
    _packed_mark: tuple | None = None  # state_mark() while it is packed ...
    _loaded_mark: tuple | None = None  # ... and (that mark, the weights' own mark) once it is loaded
    _tuned = 0  # settings changed here (set_config): part of the state mark, so the next turn carries them

    def __getstate__(self) -> dict:
        with self.lock:
            state = {k: v for k, v in self.__dict__.items() if k not in JOB_FIELDS.local}
        state["_history"] = History(epochs=self._history.epochs[-1:])  # early stopping reads the last epoch
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k in JOB_FIELDS.all})  # (a saved run's old caches)
        if "_networks" not in state:  # saved before trainers chose each network's optimizer
            self._networks, self._loss_names = self.trainer.param_groups(self.config), ("loss",)
        self.executor, self._cond, self.lock, self._collect, self.on_rest, self.on_snapshot, self._live = \
            None, threading.Condition(), StateLock(self), None, None, None, None
        self.copy = secrets.randbits(48)  # a copy from elsewhere (a saved run): no lane holds its tensors
        self._events, self._step_events = deque(maxlen=5000), deque(maxlen=100)
        for opt in self._optimizers.values():
            track_steps(opt)

    def to_state(self, dumps=pickle.dumps) -> bytes:
        """Everything, history included, for the run store (runstore.py, whose `dumps` writes
        uploaded data apart, once)."""
        with self.lock, self._cond:
            return dumps((self, self._history, list(self._events)))

    @classmethod
    def from_state(cls, data: bytes, executor=None, loads=loads) -> "Travelling":
        """A saved job back, resting (paused), on this server's executor (`loads`: the run store's)."""
        job, history, events = loads(data)
        job._history = history
        job._events.extend(events)
        job.executor = executor or default_executor()
        job._want_run, job._budget, job._stop, job.seen_at = False, 0, False, None
        if job.state in ("running", "queued"):
            job.state = "paused"
        return job

    def payload(self, budget: int | None, max_s: float = CHUNK_S, resident: bool = False,
                current: bool = False) -> bytes | None:
        """One chunk's orders as bytes for a worker, or None if this job trains where it is: on a
        GPU, with a trainer that says it cannot travel, or bigger than TRAVEL_MAX_BYTES. With
        `resident` the worker already holds this job at this version: only its changing state
        goes (about a tenth of the bytes and of the time), never its data, probe or network
        structure; `current` as well, its copy is this state: only the counters go."""
        if not self.trainer.travels or self._device.type != "cpu" or self.state_bytes() > TRAVEL_MAX_BYTES:
            return None
        with self.lock.bare, self._cond:
            if resident and current:
                what = ("same", self.uid, self.counters())
            else:
                self._unpack()
                what = ("turn", self.uid, pack_tensors(self.turn_state())) if resident else ("job", self.uid, self)
            return pickle.dumps((what, self.version, budget, max_s))

    def state_bytes(self) -> int:
        """The networks' parameter and buffer bytes (a turn ships about three times this: weights,
        optimizer state, the last good weights)."""
        return sum(t.numel() * t.element_size() for m in self.trainer.models.values()
                   for t in (*m.parameters(), *m.buffers()))

    def trained_state(self) -> dict:
        """What a chunk trains: weights, optimizer and schedule state, the random generator, the
        epoch's order, the last good and best weights, the trainer's running sums. (Jobs that
        travel are on the CPU, where mixed precision keeps no loss-scaler state.)"""
        return {"models": {n: m.state_dict() for n, m in self.trainer.models.items()},
                "optimizers": {n: o.state_dict() for n, o in self._optimizers.items()},
                "schedulers": {n: s.state_dict() for n, s in self._schedulers.items()},
                "generator": self.generator.get_state(), "order": self._order, "good": self._good_state,
                "trainer": self.trainer.turn_state(), "best": self._best, "peak": self._peak}

    def counters(self) -> dict:
        """The place in the epoch and the controls' flags: plain values, which a page may change."""
        return {k: getattr(self, k) for k in JOB_FIELDS.counters}

    def turn_state(self) -> dict:
        """Everything a chunk changes."""
        return self.trained_state() | self.counters()

    def load_turn_state(self, packed: tuple) -> None:
        """turn_state(), packed by jobparts.pack_tensors on its way."""
        state = unpack_tensors(packed)
        with self.lock.bare, self._cond:
            self._load_trained(state)
            self.load_counters(state)

    def _load_trained(self, state: dict) -> None:
        """trained_state() into this job. The caller holds the lock."""
        for n, m in self.trainer.models.items():
            m.load_state_dict(state["models"][n])
        for part, objs in (("optimizers", self._optimizers), ("schedulers", self._schedulers)):
            for n, obj in objs.items():
                obj.load_state_dict(state[part][n])
        self.generator.set_state(state["generator"])
        self._order, self._good_state = state["order"], state["good"]
        self._best, self._peak = state["best"], state["peak"]
        self.trainer.load_turn_state(state["trainer"])
        self._loaded_mark = None

    def _unpack(self) -> None:
        """Load the state a worker sent back, if it is still packed. The caller holds the lock."""
        packed, self._packed = self._packed, None
        if packed is not None:
            self._load_trained(unpack_tensors(pickle.loads(packed)))
            self._loaded_mark = self._packed_mark, self._own_mark()

    def _own_mark(self) -> tuple:
        return self.copy, self._tuned, tuple((id(t), t._version) for m in self.trainer.models.values()
                                for t in m.state_dict(keep_vars=True).values())

    def state_mark(self) -> tuple:
        """What this copy's trained state is: which tensors hold its weights and how often torch
        saw each written in place. Any change here shows: a turn absorbed, a chunk trained here
        (the optimizer writes in place), a weights file loaded, the best weights restored, a setting
        changed (set_config: the optimizers' settings travel with the state). A
        worker's state loaded from its packed form keeps the mark it had while packed."""
        if self._packed is not None:
            return self._packed_mark
        mark, loaded = self._own_mark(), self._loaded_mark
        return loaded[0] if loaded is not None and loaded[1] == mark else mark

    def load_counters(self, state: dict) -> None:
        for k in JOB_FIELDS.counters:
            setattr(self, k, state[k])

    def absorb(self, reply: bytes) -> None:
        """Take back what a worker's chunk did (its counters and events at once; its trained
        state packed while the job trains on, see the module docstring). The backend holds the
        weights lock from payload to absorb, so nothing changes in between."""
        ok, body = pickle.loads(reply)
        if not ok:
            raise RuntimeError(body)
        state, counters, events, n = body
        with self.lock.bare, self._cond:
            want_run, budget = self._want_run, self._budget
            self.load_counters(counters)
            ended = self.state in ("finished", "failed")  # the chunk's end, or its divergence, clears the flags
            self._want_run, self.last_batches = want_run and not ended, n
            # Step presses during the chunk stay
            self._budget = 0 if ended else budget if want_run else max(0, budget - n)
            self._packed, self._packed_mark = state, (self.copy, "absorbed", next(_ABSORBED))
            if not self._want_run:  # it rests now: a page will read it, the run store save it
                self._unpack()
            for event in events:
                self._record(event)
