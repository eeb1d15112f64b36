import json
import threading

import numpy as np
import pytest
import torch

from conftest import ROOT, wait_for
from dl_core.data.tensors import TensorData
from dl_core.engine import Executor, ThreadBackend, TrainConfig, TrainingJob
from dl_core.playground import Setup, make_job
from dl_core.spec import LayerSpec, ModelSpec, build

TRAIN_KEYS = {"optimizer", "lr", "batch_size", "max_epochs"}


def job_for(executor, **kw):
    train = TrainConfig(**{k: v for k, v in kw.items() if k in TRAIN_KEYS})
    job, spec, ds = make_job(Setup(train=train, **{k: v for k, v in kw.items() if k not in TRAIN_KEYS}))
    job.executor = executor
    return job


@pytest.mark.parametrize("dataset", ["circle", "spiral"])
def test_888_network_fits_circle_and_spiral(dataset, executor):
    """TF Playground's criterion (test loss < 0.1) for the page defaults, in at least two of three
    seeds: one seed's run can stall just above the line (the spiral's seed 1 ends at 0.105)."""
    bests = []
    for seed in (1, 2, 3):
        job = job_for(executor, dataset=dataset, seed=seed, max_epochs=300)
        job.start()
        wait_for(lambda: job.view(10**6)["epochs"][-1]["test_loss"] < 0.1 or job.status()["state"] == "finished",
                 timeout=120)
        job.stop()
        job.join(5)
        epochs = job.view(10**6)["epochs"]
        bests.append(min(e["test_loss"] for e in epochs))
        if bests[-1] < 0.1:
            assert epochs[-1]["test_acc"] > 0.95 and epochs[-1]["epoch"] < 300
    assert sum(b < 0.1 for b in bests) >= 2, bests


def test_a_step_advances_exactly_one_batch_and_epochs_are_whole(executor):
    job = job_for(executor, n_samples=200, train_ratio=0.5, batch_size=32)  # 100 points: 4 batches/epoch
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    job.step_batch()
    wait_for(lambda: job.status()["state"] == "paused")
    assert job.step == 1 and job.epoch == 0
    assert any(not torch.equal(before[k], v) for k, v in job.model.state_dict().items())
    job.step_batch(2)
    wait_for(lambda: job.step == 3 and job.status()["state"] == "paused")
    job.step_epoch()  # one batch left in this epoch
    wait_for(lambda: job.epoch == 1 and job.status()["state"] == "paused")
    assert job.step == 4
    job.step_epoch()  # a whole epoch from the boundary
    wait_for(lambda: job.epoch == 2 and job.status()["state"] == "paused")
    assert job.step == 8
    assert [e["epoch"] for e in job.view()["epochs"]] == [0, 1, 2]
    job.start()
    wait_for(lambda: job.epoch >= 5)
    job.pause()
    wait_for(lambda: job.status()["state"] == "paused")
    frozen = job.step
    threading.Event().wait(0.1)
    assert job.step == frozen  # paused really means paused
    job.stop()
    job.join(5)
    assert job.status()["state"] == "stopped"
    kinds = {e.kind for e in job.view()["events"]}
    assert {"step", "epoch", "snapshot", "paused", "stopped", "started"} <= kinds


def test_hyperparameters_change_while_paused_and_apply_to_the_next_batch(executor):
    job = job_for(executor, optimizer="sgd", lr=0.1)
    job.step_batch()
    wait_for(lambda: job.status()["state"] == "paused")
    job.set_config(lr=0.0, batch_size=7)
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    pos = job._pos
    job.step_batch()
    wait_for(lambda: job.step == 2 and job.status()["state"] == "paused")
    assert all(torch.equal(before[k], v) for k, v in job.model.state_dict().items())  # lr 0: no change
    assert job._pos == pos + 7
    job.set_config(optimizer="adam", lr=0.01)
    assert type(job._optimizers["model"]).__name__ == "Adam"
    with pytest.raises(ValueError, match="Unknown optimizer"):
        job.set_config(optimizer="lbfgs-ish")
    job.stop()


def test_divergence_is_detected_explained_and_the_last_good_weights_kept(executor):
    job = job_for(executor, optimizer="sgd", lr=1e6, activation="linear", dataset="plane")  # cannot die like ReLU
    good = {k: v.clone() for k, v in job.model.state_dict().items()}
    job.start()
    wait_for(lambda: job.status()["state"] == "failed")
    msg = job.status()["message"]
    assert "Learning rate too high" in msg and "at step" in msg and "1e+06" in msg
    assert all(torch.isfinite(v).all() for v in job.model.state_dict().values())
    assert all(torch.equal(good[k], v) for k, v in job.model.state_dict().items())
    job.set_config(lr=0.001)  # the learner lowers the rate and carries on
    job.step_epoch()
    wait_for(lambda: job.epoch >= 1 and job.status()["state"] == "paused")
    job.stop()


def test_an_exception_in_the_worker_reaches_the_page_as_a_message(executor):
    job = job_for(executor)
    job.probe = lambda model: 1 / 0
    job.step_batch()
    wait_for(lambda: job.status()["state"] == "failed")
    assert "division by zero" in job.status()["message"]
    job.probe = None
    job.step_batch()  # still usable afterwards
    wait_for(lambda: job.step == 2)
    job.stop()


def test_the_concurrency_cap_queues_jobs_and_shows_their_place():
    executor = Executor(ThreadBackend(1), capacity=1, slice_s=1e9)
    first, second, third = (job_for(executor) for _ in range(3))
    first.start()
    wait_for(lambda: first.status()["state"] == "running")
    second.start()
    third.start()
    wait_for(lambda: second.status()["queue_position"] == 1 and third.status()["queue_position"] == 2)
    assert second.status()["state"] == third.status()["state"] == "queued" and second.step == 0
    first.pause()  # a paused job gives its slot away
    wait_for(lambda: second.status()["state"] == "running")
    assert third.status()["queue_position"] == 1
    third.pause()  # pausing in the queue leaves it
    wait_for(lambda: third.status()["state"] == "paused" and third.status()["queue_position"] is None)
    third.start()
    wait_for(lambda: third.status()["queue_position"] == 1)
    third.stop()  # so does stopping
    wait_for(lambda: third.status()["state"] == "stopped")
    assert third.step == 0
    assert executor.load()["training"] == 1
    for j in (first, second):
        j.stop()
        j.join(5)
    assert executor.load()["training"] == 0
    executor.shutdown()


def test_snapshots_hold_output_and_every_neuron_map(executor):
    job = job_for(executor, dataset="spiral3", hidden=(5, 3), resolution=16)
    snap = job.snapshot(fresh=True)
    assert snap["output"].shape == (16, 16, 3)
    np.testing.assert_allclose(snap["output"].sum(-1), 1, rtol=1e-5)
    assert [n.shape for n in snap["neurons"]] == [(5, 16, 16), (3, 16, 16)]
    assert [w.shape for w in snap["weights"]] == [(5, 2), (3, 5), (3, 3)]
    assert snap["confusion"].sum() == len(job.data.x_test)
    job.step_epoch()
    wait_for(lambda: job.epoch == 1 and job.status()["state"] == "paused")
    assert len(job.view()["grad_norms"]) >= 1 and len(job.view()["grad_norms"][0][1]) == 3


@pytest.mark.parametrize("name", ["circle_8-8-8_xy_s1", "spiral_4-2_xy_s2"])
def test_job_follows_tensorflow_playgrounds_own_loss_curve(name, executor):
    """Oracle: TF Playground's engine (tanh, 0.5·squared error, SGD 0.03, batch 10, fixed
    order) from the same points and initial weights. MSE is twice its loss, so lr 0.015."""
    ref = json.loads((ROOT / "tests/data/tf-playground" / f"{name}.json").read_text())
    sizes = ref["layer_sizes"]
    layers = []
    for width in sizes[1:]:
        layers += [LayerSpec.of("linear", out_features=width), LayerSpec.of("activation", fn="tanh")]
    model = build(ModelSpec((sizes[0],), tuple(layers), "regression"))
    linears = [m for m in model.layers if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, init in zip(linears, ref["init"]):
            lin.weight.copy_(torch.tensor(init["W"]))
            lin.bias.copy_(torch.tensor(init["b"]))
    xy = lambda split: np.array([[p["x"], p["y"]] for p in ref[split]], np.float32)
    lab = lambda split: np.array([p["label"] for p in ref[split]], np.float32)
    data = TensorData.from_arrays(xy("train"), lab("train"), xy("test"), lab("test"), "regression")
    job = TrainingJob.supervised(model, data, TrainConfig(optimizer="sgd", lr=0.015, batch_size=10, shuffle=False,
                                               max_epochs=30), executor=executor)
    job.start()
    wait_for(lambda: job.status()["state"] == "finished", timeout=60)
    epochs = job.view(10**6)["epochs"]
    assert epochs[0]["train_loss"] / 2 == pytest.approx(ref["init_loss"]["train"], rel=1e-5)
    ours = np.array([[e["train_loss"] / 2, e["test_loss"] / 2] for e in epochs[1:]])
    np.testing.assert_allclose(ours, np.array(ref["trace"][:30]), rtol=2e-3)
    assert ours[-1, 0] < ours[0, 0]  # and it did learn


def test_running_train_metrics_are_the_mean_of_the_epochs_batch_losses(executor):
    """full_train_eval=False (image data): train loss = mean over the epoch's batches, no extra pass."""
    ds_job = job_for(executor, n_samples=256, train_ratio=0.5, batch_size=32)  # 128 points: 4 equal batches
    job = TrainingJob.supervised(ds_job.model, ds_job.data, TrainConfig(batch_size=32, full_train_eval=False),
                                 executor=executor)
    job.step_epoch()
    wait_for(lambda: job.epoch == 1 and job.status()["state"] == "paused")
    epoch = job.view()["epochs"][-1]
    losses = [loss for _, loss in job.view()["steps"]]
    assert len(losses) == 4
    assert epoch["train_loss"] == pytest.approx(sum(losses) / 4, rel=1e-6)
    assert 0 <= epoch["train_acc"] <= 1 and epoch["test_loss"] is not None
    job.stop()


@pytest.mark.parametrize("schedule, make", [
    ("step", lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, gamma=0.3)),
    ("cosine", lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 6)),
])
def test_learning_rate_schedules_follow_torch_step_for_step(executor, schedule, make):
    job = job_for(executor, optimizer="sgd", lr=0.1, max_epochs=6)
    job.set_config(schedule=schedule)
    job.start()
    wait_for(lambda: job.status()["state"] == "finished")
    oracle = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched, expected = make(oracle), []
    for _ in range(6):
        expected.append(oracle.param_groups[0]["lr"])
        oracle.step()
        sched.step()
    recorded = [e["lr"] for e in job.view()["epochs"]][:6]
    assert recorded == pytest.approx(expected)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(executor):
    job = job_for(executor, max_epochs=50)
    job.set_config(early_stop_patience=2)
    val_losses = iter([0.5, 0.6, 0.7, 0.8, 0.9])  # best after epoch 1, then worse and worse
    real = job._record_epoch  # (a gang measures its jobs itself, not through job.evaluate)
    job._record_epoch = lambda measured=None: real({**(measured or job.evaluate()), "test_loss": next(val_losses)})
    job.start()
    wait_for(lambda: job.status()["state"] == "finished")
    message = job.status()["message"]
    assert job.epoch == 3 and "Stopped early at epoch 3" in message and "from epoch 1" in message
    best_loss, best_epoch, best_weights = job._best
    assert best_epoch == 1
    now = job.model.state_dict()
    assert all(torch.equal(best_weights["model"][k], v) for k, v in now.items())  # the best weights are back
    assert any(not torch.equal(job._good_state["model"][k], v) for k, v in now.items())  # not the last trained ones
