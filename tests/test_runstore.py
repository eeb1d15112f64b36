"""Runs that last the lesson: saved when they rest, found again after a restart, capped, expiring;
the store is the server's alone, signed, never unpickled blindly, indexed by owner, and keeps an
uploaded dataset once."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_parsers import FUZZ, JSONISH

from conftest import wait_for
from dl_core.engine import RunRegistry, RunStore
from dl_core.engine.storefiles import HEADER
from dl_core.playground import Setup, make_job


def trained_run(registry, executor, session="learner", steps=30):
    job, spec, ds = make_job(Setup(hidden=(4, 4), resolution=8))
    job.executor = executor
    run = registry.create(session, "playground", job, settings={"lr": 0.03}, extra={"spec": spec, "data": ds},
                          browser=f"browser-of-{session}")
    job.step_batch(steps)
    wait_for(lambda: job.status()["state"] == "paused" and job.step == steps)
    return run


def test_a_paused_run_is_saved_and_a_restarted_server_gives_it_back_whole(tmp_path, executor):
    run = trained_run(RunRegistry(store=RunStore(tmp_path)), executor)
    wait_for(lambda: RunStore(tmp_path).load(run.id))
    weights = {k: v.clone() for k, v in run.job.model.state_dict().items()}
    view = run.job.view()

    restarted = RunRegistry(store=RunStore(tmp_path))  # a new process: nothing in memory
    back, how = restarted.open(run.id, "the-same-learner-after-reload", "browser-of-learner")
    assert how == "reattached" and back.lab == "playground" and back.settings == {"lr": 0.03}
    assert back.job.step == 30 and back.job.status()["state"] == "paused"
    assert all(torch.equal(weights[k], v) for k, v in back.job.model.state_dict().items())
    assert back.job.view()["steps"] == view["steps"] and back.job.view()["epochs"] == view["epochs"]
    assert back.extra["spec"] == run.extra["spec"]
    back.job.executor = executor
    back.job.step_batch(5)  # and it trains on from there
    wait_for(lambda: back.job.step == 35 and back.job.status()["state"] == "paused")


def test_a_reload_after_a_restart_brings_back_the_learners_other_runs(tmp_path, executor):
    registry = RunRegistry(store=RunStore(tmp_path))
    first, second = trained_run(registry, executor), trained_run(registry, executor)
    wait_for(lambda: len(RunStore(tmp_path).ids_of("learner")) == 2)
    restarted = RunRegistry(store=RunStore(tmp_path))
    restarted.open(first.id, "new-tab", "browser-of-learner")
    assert {r.id for r in restarted.runs_of("new-tab")} == {first.id, second.id}


def test_each_session_has_a_size_cap_and_runs_expire(tmp_path, executor):
    store = RunStore(tmp_path)
    registry = RunRegistry(store=store)
    old = trained_run(registry, executor)
    wait_for(lambda: store.ids_of("learner") == [old.id])
    store.cap_bytes = store.meta(old.id)["bytes"] * 3 // 2  # room for one run of this size, not two
    new = trained_run(registry, executor)
    wait_for(lambda: store.ids_of("learner") == [new.id])
    assert store.load(old.id) is None and store.load(new.id) is not None
    other = trained_run(registry, executor, session="someone-else")  # another session's cap is its own
    wait_for(lambda: store.ids_of("someone-else") == [other.id])
    assert store.ids_of("learner") == [new.id]
    expired = RunStore(tmp_path, keep_s=-1)
    assert expired.load(new.id) is None
    expired.prune()
    assert not list(tmp_path.glob("*.run"))


def test_ids_that_are_not_run_ids_never_reach_the_disk(tmp_path):
    store = RunStore(tmp_path)
    for bad in ("", "../etc/passwd", "a/b", "..", "x" * 5 + "\x00"):
        assert store.load(bad) is None
    assert RunRegistry(store=store).open("../../secret", "s") == (None, "missing")


OLD_RUNS = Path(__file__).parent / "data" / "runstore_v1"  # saved by main at 04ec76e, before dl_core.engine/data


def sign(store, name, data):
    """Write `data` as the store's file `name`, signed with its key: a run saved before runs were
    signed, adopted by an operator who trusts it, or a damaged file the key cannot tell apart."""
    store.files.write(name, data)


@pytest.mark.parametrize("run_id, lab, epoch", [("playground-v1", "playground", 3), ("cnn-v1", "cnn", 2),
                                                ("sequence-v1", "sequence", 1)])
def test_a_run_saved_before_the_engine_moved_still_loads_and_trains_on(tmp_path, executor, run_id, lab, epoch):
    """Its pickle names the old modules (dl_core.training, dl_core.jobparts.TensorData, dl_core.images, ...)."""
    store = RunStore(tmp_path, keep_s=1e12)
    for f in OLD_RUNS.glob(f"{run_id}.*"):
        sign(store, f.name, f.read_bytes())
    back, how = RunRegistry(store=store).open(run_id, "owner-v1")
    assert how == "own" and back.lab == lab and back.job.epoch == epoch and back.job.state == "finished"
    assert len(back.job.view()["epochs"]) == epoch + 1 and type(back.job.data).__module__ == "dl_core.data.tensors"
    before = {k: v.clone() for k, v in back.job.model.state_dict().items()}
    back.job.executor, start = executor, back.job.step
    back.job.step_batch(2)  # (a one-epoch run may finish again at its epoch's end)
    wait_for(lambda: back.job.step > start and not back.job.active, timeout=60, seen=back.job.status)
    assert any(not torch.equal(before[k], v) for k, v in back.job.model.state_dict().items())


def test_a_damaged_saved_run_is_not_there_rather_than_a_traceback(tmp_path):
    store = RunStore(tmp_path, keep_s=1e12)
    sign(store, "playground-v1.json", (OLD_RUNS / "playground-v1.json").read_bytes())
    sign(store, "playground-v1.run", (OLD_RUNS / "playground-v1.run").read_bytes()[:500])
    assert RunRegistry(store=store).open("playground-v1", "owner-v1") == (None, "missing")
    (tmp_path / "playground-v1.run").write_bytes((OLD_RUNS / "playground-v1.run").read_bytes())  # whole, unsigned
    assert RunRegistry(store=store).open("playground-v1", "owner-v1") == (None, "missing")


@dataclass
class Upload:
    """An uploaded dataset as the labs mark it: `blob_key`, a digest of its content."""
    blob_key: str
    payload: bytes


class Job:
    """What the store asks of a job: its state, which may hold the uploaded data too."""
    epoch, step = 1, 5

    def __init__(self, data=None):
        self.data = data

    def to_state(self, dumps) -> bytes:
        return dumps(("weights", self.data))


class Evil:
    """A pickle that runs code when it is loaded: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


class Raises:
    """A pickle that raises when it is loaded."""

    def __reduce__(self):
        return int, ("not a number",)


def fake_run(run_id, owner="learner", data=None):
    return SimpleNamespace(id=run_id, owner=owner, browser=f"browser-of-{owner}", lab="playground",
                           settings={"lr": 0.1}, extra={"data": data, "again": data}, job=Job(data))


def modes(root):
    return {p.relative_to(root.parent).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in (root, *root.rglob("*"))}


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_the_store_is_the_servers_alone_whatever_the_umask(tmp_path, umask):
    (tmp_path / "runs").mkdir(mode=0o755)  # as an older version left it
    old = os.umask(umask)
    try:
        store = RunStore(tmp_path / "runs")
        assert store.save(fake_run("r1", data=Upload("k", b"data")))
    finally:
        os.umask(old)
    seen = modes(store.root)
    assert {"runs/r1.run", "runs/r1.json", "runs/blobs"} <= set(seen) and any("owners/" in p for p in seen)
    assert seen == {p: 0o700 if (tmp_path / p).is_dir() else 0o600 for p in seen}
    key = tmp_path / ".runs.key"  # beside the store: whoever may write the store's folder cannot plant it
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_one_key_per_server_beside_its_store_and_the_environments_key_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("DLLAB_RUN_STORE_KEY", raising=False)
    keys = []
    starting = [threading.Thread(target=lambda: keys.append(RunStore(tmp_path / "runs").files._key)) for _ in range(8)]
    for t in starting:  # web processes starting together
        t.start()
    for t in starting:
        t.join()
    assert len(set(keys)) == 1 and keys[0] == (tmp_path / ".runs.key").read_bytes()
    first, second = RunStore(tmp_path / "runs"), RunStore(tmp_path / "runs")
    assert first.save(fake_run("r1", data=Upload("k", b"data"))) and second.load("r1")[4]["owner"] == "learner"
    monkeypatch.setenv("DLLAB_RUN_STORE_KEY", "another server's secret")
    other = RunStore(tmp_path / "runs")
    assert other.load("r1") is None and other.ids_of("learner") == []
    assert other.save(fake_run("r2", data=Upload("k", b"data"))) and first.load("r2") is None
    assert RunStore(tmp_path / "runs").load("r2")[2]["data"] == Upload("k", b"data")
    assert len(list((tmp_path / "runs" / "blobs").iterdir())) == 2  # (the first server's would not read)
    monkeypatch.delenv("DLLAB_RUN_STORE_KEY")
    (tmp_path / ".runs.key").chmod(0o644)  # a key others can read is no secret
    assert RunStore(tmp_path / "runs").load("r1") is None
    with pytest.raises(PermissionError):
        RunStore(tmp_path / "runs").save(fake_run("r3"))


def test_a_file_this_server_did_not_sign_is_missing_and_never_unpickled(tmp_path, monkeypatch):
    pickle.loads(pickle.dumps(Evil(tmp_path / "loaded")))  # the oracle: unpickled, it runs
    assert (tmp_path / "loaded").exists()
    marker = tmp_path / "ran"
    evil = pickle.dumps({"lab": "playground", "settings": {}, "extra": {"x": Evil(marker)}, "job": b""})
    store = RunStore(tmp_path / "runs", keep_s=1e9)
    assert store.save(fake_run("r1", data=Upload("k", b"data"))) and store.save(fake_run("r2"))
    good, blob = (store.root / "r1.run").read_bytes(), next((store.root / "blobs").iterdir())
    monkeypatch.setenv("DLLAB_RUN_STORE_KEY", "another server's secret")
    RunStore(tmp_path / "elsewhere").files.write("r1.run", evil)
    forged = {"unsigned": evil, "signed by another server": (tmp_path / "elsewhere" / "r1.run").read_bytes(),
              "another file's header": good[:HEADER] + evil, "another run's file": (store.root / "r2.run").read_bytes()}
    for how, data in forged.items():
        (store.root / "r1.run").write_bytes(data)
        assert store.load("r1") is None, how
    (store.root / "r1.run").write_bytes(good)
    assert store.load("r1")[2]["data"] == Upload("k", b"data")
    blob.write_bytes(pickle.dumps(Evil(marker)))  # the uploaded data it refers to
    assert store.load("r1") is None
    (store.root / "r2.json").write_text(json.dumps({"id": "r2", "owner": "learner", "lab": "playground",
                                                    "bytes": 1, "saved": time.time()}))
    assert store.meta("r2") is None and store.ids_of("learner") == ["r1"]
    assert not marker.exists()


def pickled_ref(key) -> bytes:
    """A pickle that refers to stored data by `key` (protocol 0's PERSID, or BINPERSID for any key)."""
    return f"P{key}\n.".encode() if isinstance(key, str) else b"\x80\x04" + pickle.dumps(key)[2:-1] + b"Q."


def record(**fields):
    """A record as the store writes one, with `fields` changed (None: left out)."""
    full = {"id": "r1", "owner": "learner", "lab": "playground", "bytes": 10, "saved": time.time()} | fields
    return json.dumps({k: v for k, v in full.items() if v is not None}).encode()


DAMAGED = {  # file -> contents, each signed: what the key cannot tell from a good file
    "not JSON": ("r1.json", b'{"id": "r1", "own'), "JSON not a dict": ("r1.json", b"[]"),
    "no save time": ("r1.json", record(saved=None)),
    "a save time that is text": ("r1.json", record(saved="yesterday")),
    "a save time that is NaN": ("r1.json", record(saved=math.nan)),
    "a save time that never expires": ("r1.json", record(saved=math.inf)),
    "bytes that are text": ("r1.json", record(bytes="10")), "an owner that is a number": ("r1.json", record(owner=5)),
    "blobs that are a list": ("r1.json", record(blobs=[])), "another run's record": ("r1.json", record(id="r2")),
    "a truncated pickle": ("r1.run", pickle.dumps({"lab": "x" * 100})[:50]), "an empty run": ("r1.run", b""),
    "a pickle that raises": ("r1.run", pickle.dumps({"lab": Raises()})),
    "a pickle not a dict": ("r1.run", pickle.dumps([1, 2])),
    "a pickle of a class not there": ("r1.run", b"cdl_core.nowhere\nThing\n."),
    "a reference to data not stored": ("r1.run", pickled_ref("missing")),
    "a reference that is no key": ("r1.run", pickled_ref(5)),
}


@pytest.mark.parametrize("how", DAMAGED)
def test_a_damaged_file_is_missing_and_the_store_works_on(tmp_path, how):
    store = RunStore(tmp_path / "runs", scan_s=0)
    assert store.save(fake_run("r1"))
    name, data = DAMAGED[how]
    sign(store, name, data)
    assert store.load("r1") is None
    assert store.save(fake_run("r2")) and store.save(fake_run("r3", owner="someone-else"))
    assert store.ids_of("learner")[0] == "r2" and store.load("r2") is not None
    store.prune()
    store.forget("r1")
    assert store.ids_of("learner") == ["r2"] and store.ids_of("someone-else") == ["r3"]


RECORDS = st.fixed_dictionaries({}, optional={  # the fields a record has, often with the values it needs
    "id": st.just("victim") | JSONISH, "owner": st.just("learner") | JSONISH, "browser": JSONISH, "lab": JSONISH,
    "bytes": st.integers() | JSONISH, "saved": st.floats() | st.just(time.time()) | JSONISH, "epoch": JSONISH,
    "blobs": st.dictionaries(st.text(max_size=8), st.integers() | JSONISH, max_size=3) | JSONISH})
# Pickled and signed, only what pickle may meet in a file this server wrote (a damaged one would fail its
# HMAC); arbitrary bytes reach it only unsigned (a hostile pickle's memo alone can ask for gigabytes).
WHOLE = pickle.dumps({"lab": "x", "settings": {}, "extra": {"data": Upload("k", b"d" * 99)}, "job": b""})
BODY = st.dictionaries(st.sampled_from(["lab", "settings", "extra", "job"]), JSONISH)
PICKLES = (st.builds(pickle.dumps, JSONISH | BODY)
           | st.integers(0, len(WHOLE)).map(lambda n: WHOLE[:n]))


@settings(FUZZ, suppress_health_check=[*FUZZ.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(run=st.tuples(st.binary(max_size=300), st.just(False)) | st.tuples(PICKLES, st.just(True)),
       meta=st.tuples(st.binary(max_size=300) | RECORDS.map(json.dumps).map(str.encode), st.booleans()))
def test_fuzz_arbitrary_files_never_break_the_store(tmp_path, run, meta):
    store = RunStore(tmp_path / "runs", scan_s=0)
    assert store.save(fake_run("victim"))
    for name, (data, signed) in (("victim.run", run), ("victim.json", meta)):
        if signed:
            sign(store, name, data)
        else:
            (store.root / name).write_bytes(data)
    store.load("victim")
    store.meta("victim")
    assert store.save(fake_run("other", data=Upload("k", b"data")))
    assert "other" in store.ids_of("learner") and store.load("other")[2]["data"] == Upload("k", b"data")
    store.prune()
    store.forget("victim")


@pytest.mark.parametrize("failing", ["fchmod", "replace"])  # while writing the file, or renaming it
def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch, failing):
    store = RunStore(tmp_path / "runs")

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(OSError):
        store.save(fake_run("r1", data=Upload("k", b"data")))
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_prune_removes_what_a_killed_process_left_and_nothing_being_written(tmp_path):
    store = RunStore(tmp_path / "runs", scan_s=0)
    assert store.save(fake_run("r1", data=Upload("k", b"data")))
    left = [store.root / "r2.run.tmp4242-0a0b1c2d", store.root / "blobs" / "0123.tmp4242-0a0b1c2d",
            store.root / "r3.run"]  # (a run without its record)
    writing = [store.root / "r4.json.tmp4243-0a0b1c2d", store.root / "r5.run"]
    for path in left + writing:
        path.write_bytes(b"half a")
    for path in left:
        os.utime(path, (time.time() - 3600,) * 2)
    store.prune()
    assert [p.name for p in left if p.exists()] == [] and all(p.exists() for p in writing)
    assert store.load("r1") is not None


def test_a_new_run_reads_only_its_owners_records(tmp_path, monkeypatch):
    """The store's scan of every record is periodic: a save and a session's list read that session's."""
    store = RunStore(tmp_path / "runs")
    reads, real_open, real_scandir = Counter(), io.open, os.scandir

    def counted_open(*args, **kwargs):
        reads["files opened"] += 1
        return real_open(*args, **kwargs)

    def counted_scandir(path):
        entries = list(real_scandir(path))
        reads["entries listed"] += len(entries)
        return contextlib.nullcontext(iter(entries))

    def cost(owner):
        reads.clear()
        with monkeypatch.context() as m:
            m.setattr(io, "open", counted_open)
            m.setattr(os, "scandir", counted_scandir)
            store.save(fake_run(f"{owner}-1", owner))
            store.save(fake_run(f"{owner}-2", owner))
            assert store.ids_of(owner) == [f"{owner}-2", f"{owner}-1"]
        return dict(reads)

    def other_sessions(start, stop):  # their records and markers, as saves write them (their runs are not read)
        for i in range(start, stop):
            sign(store, f"x{i}.json", json.dumps(store.meta("seed") | {"id": f"x{i}", "owner": f"s{i}"}).encode())
            store.files.touch(f"owners/{i}/x{i}")

    store.save(fake_run("seed", owner="seed"))
    other_sessions(0, 30)
    store.prune()  # this process's periodic scan: done for now
    few = cost("learner")
    other_sessions(30, 3000)
    assert cost("learner-after") == few and few["files opened"] < 20


def test_a_run_that_changes_owner_is_listed_for_its_new_owner_only(tmp_path):
    store = RunStore(tmp_path / "runs", scan_s=0)
    assert store.save(fake_run("r1", owner="before-reload")) and store.save(fake_run("r1", owner="after-reload"))
    assert store.ids_of("before-reload") == [] and store.ids_of("after-reload") == ["r1"]
    store.forget("r1")
    assert store.ids_of("after-reload") == [] and store.load("r1") is None


def test_uploaded_data_is_stored_once_for_every_run_and_session(tmp_path):
    store = RunStore(tmp_path / "runs")
    payload = os.urandom(200_000)
    for run_id, owner in (("r1", "learner"), ("r2", "learner"), ("r3", "someone-else")):
        assert store.save(fake_run(run_id, owner, data=Upload("sha256-of-the-zip", payload)))  # each its own copy
    assert len(list((store.root / "blobs").iterdir())) == 1
    assert all((store.root / f"r{i}.run").stat().st_size < 10_000 for i in (1, 2, 3))
    lab, settings, extra, job, meta = store.load("r3")
    assert extra["data"] == Upload("sha256-of-the-zip", payload) and extra["again"] is extra["data"]
    assert store.loads(job) == ("weights", extra["data"])  # the job's copy: from the same blob
    assert settings == {"lr": 0.1} and meta["browser"] == "browser-of-someone-else"


def test_the_cap_counts_each_blob_once_and_a_run_over_it_alone_is_not_kept(tmp_path):
    store = RunStore(tmp_path / "runs", cap_bytes=250_000, scan_s=0)
    big = Upload("big", bytes(200_000))
    assert store.save(fake_run("r1", data=big)) and store.save(fake_run("r2", data=big))
    assert store.ids_of("learner") == ["r2", "r1"]  # 200 kB once, and two small runs
    assert store.save(fake_run("r3", data=Upload("other", bytes(100_000))))
    assert store.ids_of("learner") == ["r3"]  # 300 kB with r2's data: the older go
    assert not store.save(fake_run("r4", data=Upload("huge", bytes(300_000))))
    assert store.ids_of("learner") == ["r3"] and store.load("r4") is None
    assert not store.save(fake_run("r3", data=Upload("huge", bytes(300_000))))
    assert store.ids_of("learner") == [] and store.load("r3") is None  # not its earlier save either
    for blob in (store.root / "blobs").iterdir():
        os.utime(blob, (time.time() - 3600,) * 2)
    assert store.save(fake_run("r5", data=big))  # (reusing a blob makes it recent again)
    store.prune()
    assert len(list((store.root / "blobs").iterdir())) == 1 and store.load("r5")[2]["data"] == big


def test_the_whole_store_has_a_cap_and_its_oldest_runs_go_first(tmp_path):
    store = RunStore(tmp_path / "runs", total_bytes=500_000, scan_s=0)
    for i, owner in enumerate(("a", "b", "c")):
        assert store.save(fake_run(f"r{i}", owner, data=Upload(f"k{i}", bytes(200_000))))
    assert [store.ids_of(owner) for owner in ("a", "b", "c")] == [[], ["r1"], ["r2"]]  # down to 90%, no lower
    assert store.save(fake_run("r3", "d", data=Upload("k2", bytes(200_000))))  # r2's data: counted once
    store.prune()
    assert [store.ids_of(owner) for owner in ("b", "c", "d")] == [["r1"], ["r2"], ["r3"]]
    assert not store.save(fake_run("r3", "d", data=Upload("k3", bytes(600_000))))
