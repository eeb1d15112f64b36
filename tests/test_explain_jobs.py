"""Explanations as jobs on the executor's lanes (dl_core/explain_jobs.py). Oracles: the same
task computed directly in this thread (same seed), the Trainer contract's checks, the registry's
own counts of passes, and the twin's dataset against the one it came from."""
import time

import numpy as np
import pytest
import torch

from conftest import wait_for
from dl_core import explain, explain_jobs, reference
from dl_core.engine import Executor, TrainingJob, make_backend
from dl_core.engine.trainers import Trainer
from dl_core.spec import build

KEYS = ("saliency", "integrated_gradients", "gradient_shap", "occlusion", "gradcam")


@pytest.fixture(scope="module")
def model_and_images():
    model = explain.eval_copy(build(reference.SPEC, seed=0))
    xte, yte = reference.data().part("test")
    return model, xte[0], int(yte[0])


def tasks_for(image, target) -> list:
    attribution = np.random.default_rng(0).normal(size=image.shape).astype(np.float32)
    return ([explain_jobs.map_task(image, target, k) for k in KEYS]
            + [explain_jobs.map_task(image, target, "saliency", tunnel="smoothgrad", tunnel_params={"nt_samples": 4}),
               explain_jobs.randomised_task(image, target, ("saliency", "guided_backprop"), 2),
               explain_jobs.faithfulness_task(image, target, attribution),
               explain_jobs.sensitivity_task(image, target, "saliency")])


def same(a, b) -> bool:
    """Results equal to the bit: maps, curves, scores, dicts of them."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, explain.Result):
        return np.array_equal(a.attribution, b.attribution) and a.delta == b.delta
    if hasattr(a, "scores"):
        return np.array_equal(a.scores, b.scores) and a.area == b.area
    return np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["thread", "process"])  # Ray's actors run the process workers' code
def test_results_through_the_executor_equal_results_computed_directly(model_and_images, backend):
    """In a lane's thread or in a worker process (the trainer travels): the same maps, curves and
    scores, to the bit, as the same tasks computed here."""
    model, image, target = model_and_images
    tasks = tasks_for(image, target)
    ex = Executor(make_backend(backend, 1), capacity=4, unwatched_s=None)
    try:
        assert ex.backend.wait_ready(90)
        job = explain_jobs.explanation_job({"model": model}, tasks, ex)
        job.start()
        wait_for(lambda: not job.active, timeout=60, seen=job.status)
        assert job.status()["state"] == "finished"
        got = explain_jobs.done(job)
    finally:
        ex.shutdown()
    assert set(got) == {t.key for t in tasks}
    for task in tasks:
        assert same(task.fn(model, *task.args), got[task.key]), task.key


def slow_square(net, x):
    time.sleep(0.3)
    return x * x


def test_a_job_takes_one_task_a_step_and_reports_results_as_they_come(executor, model_and_images):
    """It steps like any job (two steps: two results) and, running on, its snapshots show the results
    so far before it ends; its network is never changed."""
    model = model_and_images[0]
    tasks = [explain_jobs.Task(("sq", i), slow_square, (i,)) for i in range(5)]
    job = explain_jobs.explanation_job({"model": model}, tasks, executor)
    assert isinstance(job.trainer, Trainer)
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    job.step_batch(2)
    wait_for(lambda: job.step == 2 and not job.active, seen=job.status)
    assert explain_jobs.done(job) == {("sq", 0): 0, ("sq", 1): 1}
    seen = set()
    job.start()
    while job.active:
        seen.add(len(explain_jobs.done(job)))
        time.sleep(0.02)
    assert explain_jobs.done(job) == {("sq", i): i * i for i in range(5)}
    assert seen & {3, 4}, seen  # results arrived while it computed, not only at its end
    assert all(torch.equal(v, job.model.state_dict()[k]) for k, v in before.items())
    assert job.model is not model  # a copy: the page's own model never carries Captum's hooks


def test_a_stopped_job_gives_up_its_lane_at_its_next_task(executor, model_and_images):
    tasks = [explain_jobs.Task(("sq", i), slow_square, (i,)) for i in range(20)]
    job = explain_jobs.explanation_job({"model": model_and_images[0]}, tasks, executor)
    job.start()
    wait_for(lambda: explain_jobs.done(job), seen=job.status)
    job.stop()
    job.join(5)
    assert not executor.holds(job) and job.status()["state"] == "stopped"
    assert 0 < len(explain_jobs.done(job)) < len(tasks)


def test_passes_follow_the_settings_and_a_noise_tunnel_is_cut_to_fit():
    shape = (1, 28, 28)
    assert explain_jobs.passes("integrated_gradients", {"n_steps": 300}, shape) == 301
    assert explain_jobs.passes("saliency", None, shape, "smoothgrad", {"nt_samples": 50}) == 50
    cut = explain_jobs.tunnel_settings("integrated_gradients", {"n_steps": 300}, shape, "smoothgrad",
                                       {"nt_samples": 50})
    assert cut["nt_samples"] == explain_jobs.MAX_MAP_PASSES // 301
    assert explain_jobs.tunnel_settings("occlusion", None, shape, "smoothgrad", {"nt_samples": 50}) == {}
    assert explain_jobs.passes("occlusion", {"window": 4, "stride": 2}, shape) == (13 * 13 + 1) / 3
    task = explain_jobs.map_task(np.zeros(shape, np.float32), 1, "integrated_gradients", {"n_steps": 300},
                                 tunnel="smoothgrad", tunnel_params={"nt_samples": 50})
    assert task.passes == 301 * cut["nt_samples"] and task.args[6] == cut  # computed as it is cached
    assert explain_jobs.seconds([task, task], 0.01) == pytest.approx(2 * task.passes * 0.01)


def test_the_shuffled_label_twin_is_a_capped_job_on_shuffled_training_labels():
    ds = reference.data()
    job = reference.shuffled_label_job(reference.SPEC, ds)
    assert isinstance(job, TrainingJob) and job.status()["state"] == "idle"  # the caller starts it
    assert job.config.max_epochs == reference.TWIN_EPOCHS < reference.CONFIG.max_epochs
    data = job.trainer.data
    assert len(data.x_train) == reference.TWIN_IMAGES < (ds.split == 0).sum()
    assert len(data.x_test) == (ds.split == 2).sum()
    x, y = ds.part("train")
    where = {explain.digest(img): label for img, label in zip(x, y)}
    labels = np.array([where[explain.digest(img)] for img in data.x_train.numpy()])  # each image's own label
    shuffled = data.y_train.numpy()
    assert sorted(labels) == sorted(shuffled) and np.mean(labels == shuffled) < 0.3


def test_a_failing_task_fails_the_job_in_a_sentence_and_a_restart_goes_on_from_it(executor, model_and_images):
    broken = {"yes": True}

    def flaky(net, x):
        if broken["yes"]:
            raise ValueError("window larger than the image")
        return x

    tasks = [explain_jobs.Task(("t", 0), slow_square, (2,)), explain_jobs.Task(("t", 1), flaky, (7,)),
             explain_jobs.Task(("t", 2), slow_square, (3,))]
    job = explain_jobs.explanation_job({"model": model_and_images[0]}, tasks, executor)
    job.start()
    wait_for(lambda: not job.active, seen=job.status)
    assert job.status()["state"] == "failed" and job.status()["message"].endswith("window larger than the image")
    assert explain_jobs.done(job) == {("t", 0): 4}
    broken["yes"] = False
    job.start()
    wait_for(lambda: not job.active, seen=job.status)
    assert explain_jobs.done(job) == {("t", 0): 4, ("t", 1): 7, ("t", 2): 9}
