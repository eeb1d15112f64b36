"""Runs that last the lesson: paused and finished runs on disk.

Whenever a run stops taking turns (paused, finished, stopped, failed) the registry saves
it here: the job with its weights, optimizer state and whole history, the lab's settings
and what the lab needs besides. A server restart, a crashed web process or a reload that
reaches another web process behind the classroom proxy finds it again by its id.

Each run is two files named by its unguessable id: `<id>.run` (a pickle) and `<id>.json`
(owner, lab, size, time; read without unpickling). The directory is the server's own,
never written by learners; uploads go through checkpoint.load_bytes, which never unpickles.
Each browser session has a size cap (its oldest runs go first) and files expire. A run saved
before the engine and the data moved into their packages names its classes by their old
modules; `loads` maps them (MOVED), so those runs load as they are.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import time
from pathlib import Path

# Where classes lived before dl_core.engine and dl_core.data: a run saved then names these modules.
MOVED = {f"dl_core.{old}": f"dl_core.{new}" for old, new in {
    "training": "engine.job", "worker": "engine.controls", "jobparts": "engine.parts", "trainers": "engine.trainers",
    "stopping": "engine.stopping", "travel": "engine.travel", "executors": "engine.executors",
    "gang": "engine.gang", "runs": "engine.runs", "runstore": "engine.runstore", "data2d": "data.data2d",
    "images": "data.images", "seqdata": "data.seqdata", "seqsources": "data.seqsources",
    "sequences": "data.sequences"}.items()}
MOVED_CLASSES = {("dl_core.jobparts", "TensorData"): ("dl_core.data.tensors", "TensorData"),
                 ("dl_core.jobparts", "Event"): ("dl_core.engine.records", "Event"),
                 ("dl_core.jobparts", "History"): ("dl_core.engine.records", "History")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        module, name = MOVED_CLASSES.get((module, name), (MOVED.get(module, module), name))
        return super().find_class(module, name)


def loads(data: bytes):
    """pickle.loads for what this server saved, in this version or before the move (MOVED)."""
    return _Unpickler(io.BytesIO(data)).load()


class RunStore:
    """Runs by id in one directory; see the module docstring."""

    def __init__(self, root: str | Path, cap_bytes: int = 50 << 20, keep_s: float = 4 * 3600):
        self.root, self.cap_bytes, self.keep_s = Path(root), cap_bytes, keep_s

    def save(self, run) -> None:
        """Write `run` (atomically: a reader never sees half a file), then keep its owner under the cap."""
        self.root.mkdir(parents=True, exist_ok=True)
        body = pickle.dumps({"lab": run.lab, "settings": run.settings, "extra": run.extra,
                             "job": run.job.to_state()})
        meta = {"id": run.id, "owner": run.owner, "lab": run.lab, "bytes": len(body), "saved": time.time(),
                "epoch": run.job.epoch, "step": run.job.step}
        for suffix, data in ((".run", body), (".json", json.dumps(meta).encode())):
            tmp = self.root / f"{run.id}{suffix}.tmp{os.getpid()}"
            tmp.write_bytes(data)
            tmp.replace(self.root / f"{run.id}{suffix}")
        self._cap(run.owner)

    def load(self, run_id: str):
        """(lab, settings, extra, job state, meta) of a saved run, or None (missing, expired, damaged)."""
        meta = self.meta(run_id)
        if meta is None:
            return None
        try:
            body = loads((self.root / f"{run_id}.run").read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        return body["lab"], body["settings"], body["extra"], body["job"], meta

    def meta(self, run_id: str) -> dict | None:
        if not run_id or not run_id.replace("-", "").replace("_", "").isalnum():  # ids are urlsafe tokens
            return None
        try:
            meta = json.loads((self.root / f"{run_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return meta if time.time() - meta["saved"] <= self.keep_s else None

    def ids_of(self, owner: str) -> list[str]:
        """The ids of `owner`'s saved runs, newest first."""
        metas = [m for m in self._metas() if m["owner"] == owner]
        return [m["id"] for m in sorted(metas, key=lambda m: -m["saved"])]

    def forget(self, run_id: str) -> None:
        for suffix in (".run", ".json"):
            (self.root / f"{run_id}{suffix}").unlink(missing_ok=True)

    def prune(self) -> None:
        """Delete expired runs."""
        for m in self._metas(expired=True):
            self.forget(m["id"])

    def _metas(self, expired: bool = False) -> list[dict]:
        out = []
        for path in self.root.glob("*.json") if self.root.exists() else ():
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if (time.time() - meta["saved"] > self.keep_s) == expired:
                out.append(meta)
        return out

    def _cap(self, owner: str) -> None:
        metas = sorted((m for m in self._metas() if m["owner"] == owner), key=lambda m: -m["saved"])
        total = 0
        for m in metas:
            total += m["bytes"]
            if total > self.cap_bytes and m is not metas[0]:  # the newest always stays
                self.forget(m["id"])
