"""Import every module a page uses, once per server process, before any page runs.

Streamlit runs each session's script in its own thread. Concurrent first sessions that
import the same heavy module at once can see it half-initialised (measured: `AttributeError:
partially initialized module 'pandas' has no attribute 'Series'`, 1-8 times per class of
30). So the router takes this lock first: the first session imports everything, the
others wait a few seconds and then find every module ready. This module imports nothing
heavy itself, so importing *it* cannot race.
"""
from __future__ import annotations

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
            for info in pkgutil.iter_modules([str(root / package)]):
                if info.name != "ray_backend":  # imports Ray only when a Ray executor is asked for
                    importlib.import_module(f"{package}.{info.name}")
        _done = True
