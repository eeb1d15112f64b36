"""A worker's side of a remote backend (backends.py): a process started as `python -m
dl_core.engine.worker_main` on pipes (length-prefixed pickles), or a Ray actor (ray_backend.py).

Plain pipes, not multiprocessing's spawn: under `streamlit run` the `__main__` module is the
app's script, and spawn ran the whole app again in every worker. A worker keeps a copy of each
job it has trained (`run_chunk`); while a gang trains it reports each epoch as it ends (a
progress frame: its length's top bit set), so a page shows the epochs of a turn still away. An
empty frame (REST) makes it drop its copies and stay up.
"""
from __future__ import annotations

import gc
import os
import pickle
import sys
from collections import OrderedDict

from .backends import MISSING, PROGRESS, READY, trim_heap
from .gang import train_many
from .parts import pack_tensors

RESIDENT: OrderedDict = OrderedDict()  # in a worker: uid -> (version, job), the jobs it has seen lately
RESIDENT_MAX = 64


def _resident(order: tuple):
    """The worker's copy of the job a chunk's `order` is for, brought up to date (a whole job
    stays here; a turn brings only its state), with the order's step budget; None if this
    worker does not hold the job at that version."""
    (kind, uid, body), version, budget, _max_s = order
    if kind == "job":
        RESIDENT[uid] = (version, body)
    elif RESIDENT.get(uid, (None,))[0] != version:
        return None, budget
    elif kind == "same":
        RESIDENT[uid][1].load_counters(body)
    else:
        RESIDENT[uid][1].load_turn_state(body)
    RESIDENT.move_to_end(uid)
    job = RESIDENT[uid][1]
    while len(RESIDENT) > RESIDENT_MAX:
        RESIDENT.popitem(last=False)
    return job, budget


def _answer(job, events) -> bytes:
    """The trained state as one pickle inside the answer: the web process may keep it as bytes
    until someone reads the weights (travel.py)."""
    state = pickle.dumps(pack_tensors(job.trained_state()))
    return pickle.dumps((True, (state, job.counters(), events, job.last_batches)))


def _failure(exc: Exception) -> bytes:
    return pickle.dumps((False, f"{type(exc).__name__}: {exc}"))


def run_chunk(payload: bytes, halt=lambda: False, report=None) -> bytes:
    """In a worker (process or actor): train one chunk of a job and answer with its state and
    events, or a gang of jobs together ("gang": a list of chunk orders, answered by a list of
    answers, MISSING for a job this worker does not hold; `report(bytes)`, if given, at each of
    its epoch boundaries). Any error comes back as a message, never as a dead worker."""
    try:
        order = pickle.loads(payload)
        if order[0] == "gang":
            return _run_gang(order[1], order[2], halt, report)
        job, budget = _resident(order)
        return MISSING if job is None else _answer(job, job.advance(budget, order[3], halt))
    except Exception as exc:  # noqa: BLE001 - reaches the learner as a message
        return _failure(exc)


def _run_gang(orders: list[bytes], max_s: float, halt, report) -> bytes:
    held = [_resident(pickle.loads(o)) for o in orders]
    jobs = [(job, budget) for job, budget in held if job is not None]
    sent = {}  # uid -> epochs reported so far this turn

    def tick() -> None:  # each job's counters and the epochs it measured since the last report
        rows = []
        for job, _ in jobs:
            epochs = [e.data for e in job.turn_events if e.kind == "epoch"]
            rows.append((job.uid, job.epoch, job.step, epochs[sent.get(job.uid, 0):]))
            sent[job.uid] = len(epochs)
        report(pickle.dumps(rows))

    try:
        events = dict(zip((j for j, _ in jobs), train_many([j for j, _ in jobs], [b for _, b in jobs], max_s, halt,
                                                           tick if report else lambda: None) if jobs else []))
        answers = [MISSING if job is None else _answer(job, events[job]) for job, _ in held]
    except Exception as exc:  # noqa: BLE001 - every job of the gang hears of it
        answers = [MISSING if job is None else _failure(exc) for job, _ in held]
    return pickle.dumps(answers)


def preload() -> None:
    """Import, before a worker says "ready", what its first turn would import: the job's modules
    (a lab's own, such as its probe's, come with its first pickle), and torch._dynamo, which
    torch.optim's state_dict() imports on its first call (docs/PERFORMANCE.md: a first turn's
    imports)."""
    import torch._dynamo  # noqa: F401

    from .job import TrainingJob  # noqa: F401


def _serve() -> None:
    """A worker process's loop (`python -m dl_core.engine.worker_main`): one chunk per message on stdin,
    the reply on stdout, until stdin closes. SIGUSR1 interrupts the chunk in progress (pause)."""
    import signal
    import struct

    import torch

    preload()
    torch.set_num_threads(1)  # one process per core: more threads would only fight each other
    if hasattr(os, "nice"):  # training fills the idle cores; the web process's redraws and first paints come first
        os.nice(int(os.environ.get("DLLAB_WORKER_NICE", "5")))
    out, sys.stdout = os.fdopen(os.dup(1), "wb"), sys.stderr  # nothing but replies on the pipe
    out.write(READY)  # imports done: the lane may send chunks now
    out.flush()
    halted = [False]
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda *_: halted.__setitem__(0, True))

    def report(data: bytes) -> None:
        out.write(struct.pack("<Q", len(data) | PROGRESS) + data)
        out.flush()

    while True:
        head = sys.stdin.buffer.read(8)
        if len(head) < 8:
            return
        size = struct.unpack("<Q", head)[0]
        if not size:  # REST
            RESIDENT.clear()
            gc.collect()
            trim_heap()
            continue
        payload = sys.stdin.buffer.read(size)
        halted[0] = False
        reply = run_chunk(payload, lambda: halted[0], report)
        out.write(struct.pack("<Q", len(reply)) + reply)
        out.flush()


if __name__ == "__main__":
    _serve()
