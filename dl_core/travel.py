"""A training job on its way to a worker process and back (the job's travelling half).

The process and Ray executors run a job's chunks elsewhere. The first time a worker sees a
job, the whole job goes (a pickle without its locks, events and history); after that, a
turn carries only what a chunk changes (`turn_state`: weights, optimizer and schedule
state, the random generator, counters), packed into one buffer per dtype, and the reply
brings the same back with the chunk's events (`absorb`). When the worker's copy is the very
state it sent back last (nothing changed here since: `state_mark`), a turn carries only the
counters, which the page may have changed (a pause, a step asked for): packing 15 jobs'
state in a busy web process and loading it in the worker took 0.1-0.3 s of every
classroom turn. The run store saves a resting job whole (`to_state` / `from_state`).
TrainingJob (training.py) inherits this.
"""
from __future__ import annotations

import pickle
import secrets
import threading
from collections import deque

from .jobparts import History, pack_tensors, unpack_tensors
from .optim import track_steps

CHUNK_S = 0.1  # the longest chunk: a job reads its losses back and checks its controls at least this often
_LOCAL = ("executor", "_cond", "lock", "_events", "_step_events", "_collect", "_history", "on_rest", "on_snapshot",
          "_live")
_COUNTERS = ("_pos", "step", "epoch", "_best", "_last_snapshot_t", "_want_run", "_budget", "state", "message",
             "snapshot_floor_s", "_peak", "_low_epochs", "collapse")


class Travelling:
    """Pickling, turn state and absorbing for TrainingJob; see the module docstring."""

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in _LOCAL}
        state["_history"] = History(epochs=self._history.epochs[-1:])  # early stopping reads the last epoch
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.executor, self._cond, self.lock, self._collect, self.on_rest, self.on_snapshot, self._live = \
            None, threading.Condition(), threading.RLock(), None, None, None, None
        self.copy = secrets.randbits(48)  # a copy from elsewhere (a saved run): no lane holds its tensors
        self._events, self._step_events = deque(maxlen=5000), deque(maxlen=100)
        for opt in self._optimizers.values():
            track_steps(opt)

    def to_state(self) -> bytes:
        """Everything, history included, for the run store (runstore.py)."""
        with self.lock, self._cond:
            return pickle.dumps((self, self._history, list(self._events)))

    @classmethod
    def from_state(cls, data: bytes, executor=None) -> "Travelling":
        """A saved job back, resting (paused), on this server's executor."""
        from .executors import executor as default_executor

        job, history, events = pickle.loads(data)
        job._history = history
        job._events.extend(events)
        job.executor = executor or default_executor()
        job._want_run, job._budget, job._stop, job.seen_at = False, 0, False, None
        if job.state in ("running", "queued"):
            job.state = "paused"
        return job

    def payload(self, budget: int | None, max_s: float = CHUNK_S, resident: bool = False,
                current: bool = False) -> bytes | None:
        """One chunk's orders as bytes for a worker, or None if this job cannot travel (it is on
        a GPU, or holds something pickle cannot carry, such as a lambda probe). With `resident`
        the worker already holds this job at this version: only its changing state goes (about
        a tenth of the bytes and of the time), never its data, probe or network structure;
        `current` as well, its copy is this state: only the counters go."""
        if self._portable is False or self._device.type != "cpu":
            return None
        with self.lock, self._cond:
            if resident and current:
                what = ("same", self.uid, pack_tensors({k: getattr(self, k) for k in _COUNTERS}))
            elif resident:
                what = ("turn", self.uid, pack_tensors(self.turn_state()))
            else:
                what = ("job", self.uid, self)
            try:
                data = pickle.dumps((what, self.version, budget, max_s))
            except (pickle.PicklingError, TypeError, AttributeError):
                self._portable = False
                return None
            self._portable = True
        return data

    def turn_state(self) -> dict:
        """Everything a chunk changes: weights, optimizer and schedule state, the random generator,
        the place in the epoch, counters and the trainer's running sums. (Jobs that travel are on
        the CPU, where mixed precision keeps no loss-scaler state.)"""
        return {"models": {n: m.state_dict() for n, m in self.trainer.models.items()},
                "optimizers": {n: o.state_dict() for n, o in self._optimizers.items()},
                "schedulers": {n: s.state_dict() for n, s in self._schedulers.items()},
                "generator": self.generator.get_state(), "order": self._order, "good": self._good_state,
                "trainer": self.trainer.turn_state(), **{k: getattr(self, k) for k in _COUNTERS}}

    def load_turn_state(self, state: dict) -> None:
        """`state` from turn_state(), or packed by jobparts.pack_tensors on its way."""
        if isinstance(state, tuple):
            state = unpack_tensors(state)
        with self.lock, self._cond:
            for n, m in self.trainer.models.items():
                m.load_state_dict(state["models"][n])
            for part, objs in (("optimizers", self._optimizers), ("schedulers", self._schedulers)):
                for n, obj in objs.items():
                    obj.load_state_dict(state[part][n])
            self.generator.set_state(state["generator"])
            self._order, self._good_state = state["order"], state["good"]
            self.trainer.load_turn_state(state["trainer"])
            self.load_counters(state)

    def state_mark(self) -> tuple:
        """What this copy's trained state is: which tensors hold its weights and how often torch
        saw each written in place. Any change here shows: a turn absorbed, a chunk trained here
        (the optimizer writes in place), a weights file loaded, the best weights restored."""
        return self.copy, tuple((id(t), t._version) for m in self.trainer.models.values()
                                for t in m.state_dict(keep_vars=True).values())

    def load_counters(self, state) -> None:
        """The counters from turn_state(), or packed by jobparts.pack_tensors on their way."""
        if isinstance(state, tuple):
            state = unpack_tensors(state)
        for k in _COUNTERS:
            setattr(self, k, state[k])

    def absorb(self, reply: bytes) -> None:
        """Take back what a worker's chunk did (its state and events). The backend holds the
        weights lock from payload to absorb, so nothing changes in between."""
        ok, body = pickle.loads(reply)
        if not ok:
            raise RuntimeError(body)
        state, events, n = body
        with self.lock, self._cond:
            want_run, budget = self._want_run, self._budget
            self.load_turn_state(state)
            ended = self.state in ("finished", "failed")  # the chunk's end, or its divergence, clears the flags
            self._want_run, self.last_batches = want_run and not ended, n
            self._budget = 0 if ended else budget if want_run else max(0, budget - n)  # Step presses during the chunk stay
            for event in events:
                self._record(event)
