"""The server's executor: its backend and limits from the environment, made on first use (a page
that never trains spawns nothing) and installed as every job's default (executors.default)."""
from __future__ import annotations

import atexit
import os
import threading

from .backends import ThreadBackend
from .executors import Executor, install


def make_backend(kind: str, lanes: int | None = None, **options):
    """A backend by name: "thread", "process" or "ray" (`options`: the Ray actors' runtime_env)."""
    lanes = lanes or os.cpu_count() or 1
    if kind == "ray":
        from .ray_backend import RayBackend

        return RayBackend(lanes, os.environ.get("DLLAB_RAY_ADDRESS", "auto"), **options)
    if kind == "process":
        from .workerproc import ProcessBackend

        return ProcessBackend(lanes)
    return ThreadBackend(lanes)


def _from_env() -> Executor:
    env = os.environ.get
    backend = make_backend(env("DLLAB_EXECUTOR", "process"), int(env("DLLAB_WORKERS", "0")) or None)
    return Executor(backend, int(env("DLLAB_MAX_RUNNING_JOBS", "32")), float(env("DLLAB_SLICE_S", "30")),
                    float(env("DLLAB_UNWATCHED_S", "300")), float(env("DLLAB_WORKER_IDLE_S", "20")),
                    env("DLLAB_WARM_WORKERS", "1") != "0", float(env("DLLAB_WORKER_EXIT_S", "600")))


_lock = threading.Lock()
_executor: Executor | None = None


def executor() -> Executor:
    """The server's executor, made on first use and from then on every new job's default."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = _from_env()
            install(_executor)
            atexit.register(_executor.shutdown)  # a clean exit: no torch thread killed mid-operation
        return _executor


def shutdown() -> None:
    """Shut the server's executor down now, if it was made: its jobs paused (and so saved),
    its workers stopped. The server calls this as it stops (app.py): uvicorn, on SIGTERM,
    shuts down gracefully and then raises the signal again, and a process ended by its
    signal runs no atexit handler."""
    with _lock:
        made = _executor
    if made is not None:
        atexit.unregister(made.shutdown)
        made.shutdown()
