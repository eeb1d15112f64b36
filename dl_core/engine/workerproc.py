"""The process backend: one worker process per lane, on this machine (see backends.py for the
protocol both ends speak, worker_main.py for the worker's side). Training then no longer shares
the web process's interpreter lock with the page redraws (see docs/CLASSROOM.md).
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from .backends import PROGRESS, READY, REST, RemoteBackend


class ProcessBackend(RemoteBackend):
    """One worker process per lane; jobs travel as pickles (see the module docstring)."""

    name = "process"
    cuts_short = True  # SIGUSR1 ends the worker's turn at its next step
    lost_message = "The training worker process stopped unexpectedly"

    def __init__(self, lanes: int):
        super().__init__(lanes)
        self._procs: list[subprocess.Popen | None] = [None] * lanes
        self._booted: list[threading.Event] = [threading.Event() for _ in range(lanes)]
        self._spawning = threading.Lock()  # a lane and a page warming the pool: one worker per lane

    def warm(self) -> None:
        for lane in range(self.lanes):
            self._proc(lane)

    def _proc(self, lane: int) -> subprocess.Popen:
        with self._spawning:
            return self._spawn(lane)

    def _spawn(self, lane: int) -> subprocess.Popen:
        proc = self._procs[lane]
        if proc is None or proc.poll() is not None:
            root = str(Path(__file__).resolve().parents[1])
            env = os.environ | {"PYTHONPATH": os.pathsep.join([root, *sys.path])}
            self._jobs[lane].clear()
            ready = self._booted[lane] = threading.Event()
            proc = self._procs[lane] = subprocess.Popen(
                [sys.executable, "-m", "dl_core.engine.worker_main"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=env, cwd=root)
            threading.Thread(target=lambda: proc.stdout.read(len(READY)) == READY and ready.set(), daemon=True,
                             name=f"worker-{lane}-boot").start()
        return proc

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Start every lane's worker and wait until all have done their imports (tests that need
        chunks to run in a worker, not in the lane's thread while the worker boots). A worker
        released meanwhile (its lane idle) or ended is started again: waiting on the old one
        would wait for a worker that never comes."""
        end = time.monotonic() + timeout
        while True:
            for lane in range(self.lanes):
                self._proc(lane)
            if all(event.is_set() for event in self._booted):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    def kill(self, lane: int) -> None:
        """End one worker process the hard way (tests: a worker lost mid-chunk), and wait until it
        has ended: a killed worker not yet reaped still looks alive to the next chunk, which then
        fails on its pipe, which can keep a job started again at once after its workers were
        killed from training."""
        proc = self._procs[lane]
        if proc:
            proc.kill()
            proc.wait(5)

    def _ready(self, lane: int) -> bool:
        self._proc(lane)
        return self._booted[lane].is_set()

    def _send(self, lane: int, payload: bytes, report=None) -> bytes:
        proc = self._proc(lane)
        proc.stdin.write(struct.pack("<Q", len(payload)) + payload)
        proc.stdin.flush()
        while True:
            head = proc.stdout.read(8)
            if len(head) < 8:
                raise EOFError
            size = struct.unpack("<Q", head)[0]
            if not size & PROGRESS:
                return proc.stdout.read(size)
            frame = proc.stdout.read(size & ~PROGRESS)
            if report is not None:
                report(frame)

    def interrupt(self, lane: int) -> None:
        """SIGUSR1 to a ready worker only: a booting one has no handler yet, and the signal's
        default ended it (a pause while the lane trained here meanwhile cost a worker)."""
        proc = self._procs[lane]
        if proc is not None and self._booted[lane].is_set() and proc.poll() is None and hasattr(signal, "SIGUSR1"):
            proc.send_signal(signal.SIGUSR1)

    def _lost(self, lane: int) -> None:
        with self._spawning:
            proc, self._procs[lane] = self._procs[lane], None
        if proc:
            proc.kill()
            proc.wait(5)

    def rest(self, lane: int) -> None:
        """The worker drops the jobs it holds and hands their memory back, but stays up with its
        imports done, so the next ▶ Train (a class pressing it at once) finds it ready."""
        self._jobs[lane].clear()  # the next turn of any job sends it whole
        proc = self._procs[lane]
        if proc is not None and self._booted[lane].is_set() and proc.poll() is None:
            try:
                proc.stdin.write(REST)
                proc.stdin.flush()
            except OSError:  # it has just ended: the next chunk starts another
                pass

    def release(self, lane: int) -> subprocess.Popen | None:
        """Close the worker's pipe (its loop ends at EOF) and let it exit in its own time, reaped in
        the background: the lane calls this holding the executor's lock, which a page's status()
        needs too, and a niced worker on busy cores can be slow to exit."""
        with self._spawning:
            proc, self._procs[lane] = self._procs[lane], None
        if proc:
            proc.stdin.close()
            threading.Thread(target=_reap, args=(proc,), daemon=True, name=f"worker-{lane}-exit").start()
        return proc

    def close(self) -> None:
        """Server exit: every worker told to end, then waited for (killed after 10 s)."""
        for proc in [self.release(lane) for lane in range(self.lanes)]:
            if proc:
                _reap(proc)


def _reap(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
