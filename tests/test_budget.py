"""Each learner's share of memory: what a session's runs hold is counted once per tensor, an
upload over the budget is refused in a sentence, and a run whose owner left for good leaves memory
for the run store (two tabs of a 5,000-picture zip took a web process from 1.1 to 3.2 GB, and
2.8 GB stayed after both tabs closed)."""
import io

import numpy as np
import torch
from PIL import Image
from test_pages import open_page

from conftest import wait_for
from dl_core.engine import RunRegistry, RunStore
from dl_core.engine.footprint import nbytes
from dl_core.playground import Setup, make_job
from modelfiles import zip_bytes
from ui import state
from ui.shell import run_key


def test_shared_storage_counts_once():
    t = torch.zeros(1000)
    a = np.zeros(500, np.float32)
    assert nbytes(t, t[10:], {"again": [t]}) == 4000
    assert nbytes(a, a[::2], (a,)) == 2000
    assert nbytes(t, a) == 6000


def test_a_sessions_runs_count_their_networks_data_and_optimizer_state(executor):
    runs = RunRegistry()
    job, spec, ds = make_job(Setup(dataset="spiral", hidden=(8, 8)))
    job.executor = executor
    data = job.data
    weights = sum(p.numel() * 4 for p in job.model.parameters())
    tensors = sum(t.untyped_storage().nbytes() for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    runs.create("s", "playground", job, extra={"data": ds})
    one = runs.footprint("s")
    assert one >= weights + tensors + ds.points.nbytes and runs.footprint("someone else") == 0
    job.step_batch(3)
    wait_for(lambda: job.step == 3 and not job.active)
    assert runs.footprint("s") >= one + weights  # Adam's moments now exist too


def _zip(n: int) -> bytes:
    def png(colour):
        buf = io.BytesIO()
        Image.new("RGB", (10, 12), colour).save(buf, "PNG")
        return buf.getvalue()
    return zip_bytes({f"{c}/{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(n)})


def test_an_upload_over_the_learners_budget_is_refused_in_one_sentence(monkeypatch):
    from dl_core.engine import RUNS

    at = open_page("cnn")
    assert not at.exception, at.exception
    at.selectbox(key="cnn_dataset").set_value("upload").run()
    held = RUNS.footprint(at.session_state[state.SESSION_ID])
    monkeypatch.setattr(RUNS, "budget_bytes", held + 200_000)  # 40 pictures of 3×32×32 floats, twice: ~1 MB
    at.file_uploader(key="cnn_zip").set_value(("pets.zip", _zip(20), "application/zip")).run()
    assert not at.exception
    refused = [e.value for e in at.error if "Could not use pets.zip" in e.value]
    assert refused and "each learner may keep" in refused[0] and "\n" not in refused[0]
    assert at.session_state[run_key("cnn")].extra["data"].name != "pets.zip"  # still the digits
    monkeypatch.setattr(RUNS, "budget_bytes", held + 50_000_000)
    at.file_uploader(key="cnn_zip").set_value(("pets.zip", _zip(20), "application/zip")).run()
    assert not at.exception and any("Loaded 40 images" in s.value for s in at.success)


def test_a_run_whose_owner_left_for_good_leaves_memory_and_comes_back_from_the_store(tmp_path, executor):
    runs = RunRegistry(grace_s=0.1, store=RunStore(tmp_path))
    job, _, _ = make_job(Setup())
    job.executor = executor
    run = runs.create("owner", "playground", job, browser="b1")
    job.step_batch(4)
    wait_for(lambda: job.step == 4 and not job.active and run.saved_step == 4)
    runs.session_ended("owner")
    wait_for(lambda: runs.get(run.id) is None)  # out of memory once the grace period is over
    back, how = runs.open(run.id, "owner-reloaded", "b1")
    assert how == "reattached" and back.job.step == 4 and back is not run


def test_an_uploaded_dataset_is_saved_once_not_into_every_run(tmp_path, executor):
    """Each session wrote its zip's pictures into every saved run (638 MB a run)."""
    from dl_core.data import images
    from dl_core.data.tensors import TensorData
    from dl_core.engine import TrainingJob

    ds = images.zip_folders(_zip(100), size=32)  # 200 pictures: 2.4 MB of floats
    data = TensorData.from_arrays(*ds.part("train"), *ds.part("test"), "classification")
    store = RunStore(tmp_path)
    runs = RunRegistry(store=store)
    saved = []
    for _ in range(3):  # the run, a reset, another network on the same pictures
        job = TrainingJob.supervised(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2)), data)
        job.executor = executor
        saved.append(runs.create("s", "cnn", job, extra={"data": ds, "private": True}, browser="b"))
        job.step_batch(1)
        wait_for(lambda: job.step == 1 and saved[-1].saved_step == 1)
    sizes = [(tmp_path / f"{r.id}.run").stat().st_size for r in saved]
    assert max(sizes) < ds.x.nbytes / 10, sizes  # the weights and history, not the pictures
    assert sum(p.stat().st_size for p in (tmp_path / "blobs").iterdir()) < 2.5 * ds.x.nbytes
    runs.session_ended("s", grace_s=0)
    back, how = RunRegistry(store=RunStore(tmp_path)).open(saved[1].id, "s2", "b")
    assert how == "reattached" and np.array_equal(back.extra["data"].x, ds.x)
    assert torch.equal(back.job.data.x_train, data.x_train)
