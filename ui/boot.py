"""Import every module a page uses, once per server process, before any page runs, and make the
server's executor.

Streamlit runs each session's script in its own thread. Concurrent first sessions that
import the same heavy module at once can see it half-initialised (measured: `AttributeError:
partially initialized module 'pandas' has no attribute 'Series'`, 1-8 times per class of
30). So the router takes this lock first: the first session imports everything, the
others wait a few seconds and then find every module ready. This module imports nothing
heavy itself, so importing *it* cannot race.

Once imported, those modules' objects are frozen out of the garbage collector (gc.freeze):
with 30 learners, a full collection stopped a web process for 0.3-0.6 s about every 30 s,
and every page it served missed a redraw.
"""
from __future__ import annotations

import gc
import importlib
import pkgutil
import threading
from pathlib import Path

LOCK = threading.Lock()
THIRD_PARTY = ("numpy", "pandas", "torch", "torchvision", "sklearn.datasets", "PIL.Image", "plotly.graph_objects",
               "altair", "captum.attr", "captum.metrics", "streamlit")
_done = False


def warm() -> None:
    """Import the libraries and every module of dl_core and ui (idempotent, thread-safe)."""
    global _done
    with LOCK:
        if _done:
            return
        for name in THIRD_PARTY:
            importlib.import_module(name)
        root = Path(__file__).resolve().parents[1]
        for package in ("dl_core", "ui"):
            for info in pkgutil.walk_packages([str(root / package)], f"{package}."):
                if not info.name.endswith((".ray_backend", ".worker_main")):  # Ray only when asked for; a worker's own
                    importlib.import_module(info.name)
        from dl_core.engine import executor

        executor()  # the server's executor (its backend from the environment), every new job's default
        gc.collect()  # what the imports made lives as long as the server: out of the collector's way,
        gc.freeze()  # or each full collection walked ~600,000 objects, 0.3-0.6 s with every thread stopped
        _done = True
