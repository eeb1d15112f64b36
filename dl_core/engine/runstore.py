"""Runs that last the lesson: paused and finished runs on disk.

Whenever a run stops taking turns (paused, finished, stopped, failed) the registry saves
it here: the job with its weights, optimizer state and whole history, the lab's settings
and what the lab needs besides. A server restart, a crashed web process or a reload that
reaches another web process behind the classroom proxy finds it again by its id.

The store is one folder, the server's own (storefiles.py: 0700, every file 0600 whatever the
umask, each file signed and written whole):
- `<id>.run`, the run (a pickle), and `<id>.json`, its record (owner, browser, lab, sizes,
  blobs, time), read without unpickling; ids are unguessable.
- `blobs/<name>`: uploaded data (any object with a non-empty `blob_key`, a digest of its
  content), written once and referenced by key from every run that holds it (pickle's
  persistent ids): a second run or a second session with the same dataset reuses it. The
  name is a digest of the key under the server's secret: another key's blob is never reused.
- `owners/<digest of the owner>/<id>`: an empty marker, so a session's runs and its cap read only
  that session's records. A marker whose record is gone or names another owner is ignored.

Every file carries an HMAC-SHA256 under the server's secret (DLLAB_RUN_STORE_KEY, else a key
file made once beside the folder), checked before anything is parsed: a file this server did
not write, a damaged or truncated one, a record of the wrong shape or a pickle that raises reads
as missing, and an unsigned file is never unpickled. Runs saved before the HMAC read as missing
too (they would have expired within hours). Uploads go through checkpoint.load_bytes, which
never unpickles.

Caps: a session keeps at most `cap_bytes`, counting its runs and each blob they use once; its
oldest runs go first, and a run over the cap on its own is not saved (`save` returns False).
The whole store keeps at most `total_bytes` (DLLAB_RUN_STORE_TOTAL_MB), the oldest runs of any
session going first. `prune`, the one full scan (expired runs, the store's cap, blobs no run
uses, markers of runs gone, temporary files a killed process left), runs at most every `scan_s`
in a process, or at once when this process's estimate of the store's size passes its cap (other
processes' saves count from its next scan). Files are written to a temporary name and renamed,
so a reader never sees half a file and several web processes share one store.

A run saved before the engine and the data moved into their packages names its classes by
their old modules; `loads` maps them (MOVED), so those runs load as they are.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import pickle
import time
from collections import Counter
from pathlib import Path

from .storefiles import HEADER, SignedFolder, age, entries, unlink

log = logging.getLogger(__name__)

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
STALE_S = 300.0  # a temporary file, a marker or an unused blob this old is no write in progress
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set})


class _Unpickler(pickle.Unpickler):
    """Classes by their modules before the move (MOVED); blobs by key through `blob` (each once per load)."""

    def __init__(self, file, blob=None):
        super().__init__(file)
        self.blob, self.blobs = blob, {}

    def find_class(self, module: str, name: str):
        module, name = MOVED_CLASSES.get((module, name), (MOVED.get(module, module), name))
        return super().find_class(module, name)

    def persistent_load(self, key):
        if self.blob is None or not isinstance(key, str):
            raise pickle.UnpicklingError("a reference to stored data outside the run store")
        if key not in self.blobs:
            self.blobs[key] = self.blob(key)
        return self.blobs[key]


class _Pickler(pickle.Pickler):
    """Writes an object with a non-empty `blob_key` as a reference to it; `blob(obj, key)` stores it."""

    def __init__(self, file, blob):
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.blob = blob

    def persistent_id(self, obj):
        if type(obj) in _PLAIN or isinstance(obj, type):  # (called for every object: the common ones quickly)
            return None
        key = getattr(obj, "blob_key", None)
        if not isinstance(key, str) or not key:
            return None
        self.blob(obj, key)
        return key


def loads(data: bytes):
    """pickle.loads for what this server saved, in this version or before the move (MOVED)."""
    return _Unpickler(io.BytesIO(data)).load()


class RunStore:
    """Runs by id in one directory; see the module docstring."""

    def __init__(self, root: str | Path, cap_bytes: int = 50 << 20, keep_s: float = 4 * 3600, *,
                 total_bytes: int | None = None, scan_s: float = 180.0):
        self.root, self.cap_bytes, self.keep_s, self.scan_s = Path(root), cap_bytes, keep_s, scan_s
        self.files = SignedFolder(self.root)
        self.total_bytes = (int(float(os.environ.get("DLLAB_RUN_STORE_TOTAL_MB", "2048")) * (1 << 20))
                            if total_bytes is None else total_bytes)
        self._scanned = -math.inf  # when this process last scanned the whole store (time.monotonic)
        self._total = 0  # the store's bytes at that scan, plus what this process saved since

    def save(self, run) -> bool:
        """Write `run` and keep its owner and the store under their caps. False, and nothing of the
        run kept (not even an earlier save of it), when the run with its blobs alone is over a cap."""
        self.prune()
        new, sizes = {}, {}  # blob key -> its pickle, not on disk yet; -> its file's size

        def blob(obj, key: str) -> None:
            if key in sizes:
                return
            path = self.root / self._blob_name(key)
            try:
                os.utime(path)  # in use again: a scan leaves a recently used blob alone
                sizes[key] = path.stat().st_size
            except FileNotFoundError:
                new[key] = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
                sizes[key] = HEADER + len(new[key])

        def dumps(obj) -> bytes:
            buf = io.BytesIO()
            _Pickler(buf, blob).dump(obj)
            return buf.getvalue()

        body = dumps({"lab": run.lab, "settings": run.settings, "extra": run.extra, "job": run.job.to_state(dumps)})
        meta = {"id": run.id, "owner": run.owner, "browser": getattr(run, "browser", "") or "", "lab": run.lab,
                "bytes": HEADER + len(body), "saved": time.time(), "epoch": run.job.epoch, "step": run.job.step,
                "blobs": sizes}
        if meta["bytes"] + sum(sizes.values()) > min(self.cap_bytes, self.total_bytes):
            self.forget(run.id)  # an earlier save would come back as if it were this run
            return False
        for key, data in new.items():
            self.files.write(self._blob_name(key), data)
        self.files.write(f"{run.id}.json", json.dumps(meta).encode())
        self.files.write(f"{run.id}.run", body)  # last: once it is there, the run loads
        self.files.touch(f"owners/{_digest(run.owner)}/{run.id}")
        self._total += meta["bytes"] + sum(sizes[key] for key in new)
        self._cap(meta)
        if self._total > self.total_bytes:
            self._scanned = -math.inf
            self.prune()
        return True

    def load(self, run_id: str):
        """(lab, settings, extra, job state, meta) of a saved run, or None (missing, expired, damaged)."""
        meta = self.meta(run_id)
        if meta is None:
            return None
        try:
            body = _Unpickler(self.files.read(f"{run_id}.run"), self._blob).load()
            return body["lab"], body["settings"], body["extra"], body["job"], meta
        except Exception:  # damaged, not this server's, or a version that cannot read it: as if missing
            log.warning("saved run %s cannot be read", run_id, exc_info=True)
            return None

    def loads(self, data: bytes):
        """pickle.loads for the job state `load` gave (its uploaded data from the blobs)."""
        return _Unpickler(io.BytesIO(data), self._blob).load()

    def meta(self, run_id: str) -> dict | None:
        """A run's record (id, owner, browser, lab, bytes, saved, epoch, step, blobs), or None
        (missing, expired, damaged)."""
        meta = self._record(run_id)
        return meta if meta is not None and time.time() - meta["saved"] <= self.keep_s else None

    def ids_of(self, owner: str) -> list[str]:
        """The ids of `owner`'s saved runs, newest first."""
        return [m["id"] for m in sorted(self._records_of(owner), key=lambda m: -m["saved"])]

    def forget(self, run_id: str) -> None:
        if not _is_id(run_id):
            return
        meta = self._record(run_id)
        if meta is not None:
            (self.root / "owners" / _digest(meta["owner"]) / run_id).unlink(missing_ok=True)
        for suffix in (".run", ".json"):
            (self.root / f"{run_id}{suffix}").unlink(missing_ok=True)

    def prune(self) -> None:
        """The full scan, at most every `scan_s` in this process: expired and unreadable runs go,
        then the oldest while the store is over `total_bytes`, then blobs no run uses, markers of
        runs gone and temporary files a killed process left."""
        if time.monotonic() - self._scanned < self.scan_s or not self.root.is_dir():
            return
        self._scanned, now = time.monotonic(), time.time()
        # markers before records: a marker is written after its record, so each seen here has its record below
        markers = [(folder.name, e) for folder in entries(self.root / "owners") for e in entries(folder.path)]
        records = {}
        for e in entries(self.root):
            name, seconds = e.name, age(e, now)
            if ".tmp" in name:
                if seconds > STALE_S:
                    unlink(e.path)
            elif name.endswith(".json"):
                meta = self._record(name.removesuffix(".json"))
                if meta is not None and now - meta["saved"] <= self.keep_s:
                    records[meta["id"]] = meta
                elif meta is not None:
                    self.forget(meta["id"])
                elif seconds > self.keep_s:  # unreadable: it expires by its file's age
                    unlink(e.path)
            elif name.endswith(".run") and seconds > STALE_S and not os.path.exists(e.path[:-4] + ".json"):
                unlink(e.path)  # its record expired unreadable, or went while another process saved it again
        used = Counter(key for m in records.values() for key in m["blobs"])
        sizes = {key: size for m in records.values() for key, size in m["blobs"].items()}
        total = sum(m["bytes"] for m in records.values()) + sum(sizes.values())
        for m in sorted(records.values(), key=lambda m: m["saved"]) if total > self.total_bytes else ():
            if total <= 0.9 * self.total_bytes:  # room below the cap, so that the next saves do not each scan
                break
            self.forget(m["id"])
            del records[m["id"]]
            total -= m["bytes"]
            used.subtract(m["blobs"].keys())  # (one use of each)
            total -= sum(sizes[key] for key in m["blobs"] if not used[key])
        self._total = total
        for owner, e in markers:
            m = records.get(e.name)
            if (m is None or _digest(m["owner"]) != owner) and age(e, now) > STALE_S:
                unlink(e.path)
        for folder in entries(self.root / "owners"):
            if age(folder, now) > STALE_S:
                unlink(folder.path, os.rmdir)  # only if empty (a save retries a folder removed under it)
        keep = {self._blob_name(key) for key in +used}
        for e in entries(self.root / "blobs"):
            if f"blobs/{e.name}" not in keep and age(e, now) > STALE_S:  # (temporary files too)
                unlink(e.path)

    def _cap(self, meta: dict) -> None:
        """Keep `meta`'s owner under the cap: its newest runs, `meta`'s first, each blob counted once."""
        older = sorted((m for m in self._records_of(meta["owner"]) if m["id"] != meta["id"]), key=lambda m: -m["saved"])
        total, seen = 0, set()
        for m in (meta, *older):
            total += m["bytes"] + sum(size for key, size in m["blobs"].items() if key not in seen)
            seen.update(m["blobs"])
            if total > self.cap_bytes:
                self.forget(m["id"])

    def _records_of(self, owner: str) -> list[dict]:
        records = (self.meta(e.name) for e in entries(self.root / "owners" / _digest(owner)))
        return [m for m in records if m is not None and m["owner"] == owner]

    def _record(self, run_id: str) -> dict | None:
        """The run's record, whatever its age, or None (missing, not this server's, damaged, of the wrong shape)."""
        if not _is_id(run_id):
            return None
        try:
            meta = json.load(self.files.read(f"{run_id}.json"))
            meta.setdefault("browser", "")  # (records saved before runs had browsers or blobs)
            meta.setdefault("blobs", {})
            ok = (meta["id"] == run_id and all(isinstance(meta[k], str) for k in ("owner", "browser", "lab"))
                  and type(meta["bytes"]) is int and type(meta["saved"]) in (int, float)
                  and math.isfinite(meta["saved"]) and isinstance(meta["blobs"], dict)
                  and all(type(size) is int for size in meta["blobs"].values()))
        except Exception:
            return None
        return meta if ok else None

    def _blob_name(self, key: str) -> str:
        return f"blobs/{self.files.name_for(key)}"

    def _blob(self, key: str):
        return _Unpickler(self.files.read(self._blob_name(key))).load()


def _is_id(run_id) -> bool:
    """Ids are urlsafe tokens: never a path."""
    return (isinstance(run_id, str) and 0 < len(run_id) <= 64 and run_id.isascii()
            and run_id.replace("-", "").replace("_", "").isalnum())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
