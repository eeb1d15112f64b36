"""Chunks on a Ray cluster: past one machine, the same contract as the process pool.

The cluster is started outside the app (`ray start --head`, or KubeRay; see
docs/CLASSROOM.md) and the app only connects: `ray.init()` that *starts* a local cluster
from a Streamlit script thread takes the cluster down when that thread ends. The
connection is made from a lane thread, which lives as long as the server.

Actors are pooled, one per lane: each holds torch in memory, so one actor per learner
would not fit a room. Jobs travel to an actor as pickles and come back after one chunk,
exactly as with the process pool, so any actor can take any job's next turn, and an
actor that dies loses one chunk, never the learner's weights. There is no shared flag to
interrupt a chunk on another machine; a chunk lasts at most about 0.1 s.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .backends import RemoteBackend
from .worker_main import preload, run_chunk


class _ChunkActor:
    """Runs one chunk per call (wrapped by ray.remote when the backend connects)."""

    def __init__(self):
        import torch

        torch.set_num_threads(1)
        preload()  # its first chunk should not import torch._dynamo (worker_main.preload)

    def run(self, payload: bytes) -> bytes:
        return run_chunk(payload)


class RayBackend(RemoteBackend):
    """A pool of `lanes` Ray actors on the cluster at `address`."""

    name = "ray"
    lost_message = "The Ray worker training this run stopped unexpectedly"

    def __init__(self, lanes: int, address: str, runtime_env: dict | None = None):
        super().__init__(lanes)
        self.address = address
        self.runtime_env = {"py_modules": [str(Path(__file__).resolve().parents[1])], **(runtime_env or {})}
        self._lock = threading.Lock()
        self._actors: list = [None] * lanes
        self._remote = None

    def _actor(self, lane: int):
        import ray

        with self._lock:
            if self._remote is None:
                if not ray.is_initialized():
                    ray.init(address=self.address, log_to_driver=False, configure_logging=False,
                             runtime_env=self.runtime_env)
                self._remote = ray.remote(num_cpus=1, max_restarts=0)(_ChunkActor)
            if self._actors[lane] is None:
                self._actors[lane] = self._remote.remote()
                self._jobs[lane].clear()
            return self._actors[lane]

    def _send(self, lane: int, payload: bytes, report=None) -> bytes:
        import ray

        return ray.get(self._actor(lane).run.remote(payload))  # no progress frames from an actor

    def _lost_errors(self) -> tuple:
        import ray

        return ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError

    def _lost(self, lane: int) -> None:
        with self._lock:
            self._actors[lane] = None

    def kill(self, lane: int) -> None:
        """End one actor (tests: a machine lost mid-chunk)."""
        import ray

        with self._lock:
            actor, self._actors[lane] = self._actors[lane], None
        if actor is not None:
            ray.kill(actor)

    # An idle lane gives its actor back at once (not after exit_s as a worker process does): an actor
    # holds one of the cluster's CPUs and torch's memory, which other users of a shared cluster may want.
    rest = release = kill

    def close(self) -> None:
        import ray

        with self._lock:
            actors, self._actors = self._actors, [None] * self.lanes
        if ray.is_initialized():
            for actor in actors:
                if actor is not None:
                    ray.kill(actor)
            ray.shutdown()
