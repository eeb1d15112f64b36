"""The job engine's seams: live settings as changes, chunks reported as events, no host
reads per step, copies that are independent, and a second trainer kind on the same job."""
import sys

import pytest
import torch
from toy_trainers import ToyAdversarialTrainer

from conftest import wait_for
from dl_core.engine import Event, History, TrainConfig, TrainingJob
from dl_core.optim import SCHEDULES
from dl_core.playground import Setup, make_job

MID = 3  # epochs trained before a setting changes


def scheduled_job(executor, schedule: str, **config) -> TrainingJob:
    train = TrainConfig(optimizer="momentum", lr=0.1, max_epochs=9, schedule=schedule, **config)
    job, _, _ = make_job(Setup(dataset="circle", n_samples=100, train=train))
    job.executor = executor
    for _ in range(MID):
        job.step_epoch()
        wait_for(lambda: job.status()["state"] == "paused" and not job.active)
    return job


def lr(job) -> float:
    return job._optimizers["model"].param_groups[0]["lr"]


def factor(schedule: str, epoch: int, epochs: int = 9) -> float:
    return SCHEDULES[schedule].factor(epoch, epochs)


# setting -> (new value, the rate the next epoch must train at, given schedule s)
LIVE = {
    "batch_size": (7, lambda s: 0.1 * factor(s, MID)),
    "early_stop_patience": (4, lambda s: 0.1 * factor(s, MID)),
    "l1": (0.001, lambda s: 0.1 * factor(s, MID)),
    "l2": (0.001, lambda s: 0.1 * factor(s, MID)),
    "augment": (("noise",), lambda s: 0.1 * factor(s, MID)),
    "mixed_precision": (True, lambda s: 0.1 * factor(s, MID)),
    "momentum": (0.5, lambda s: 0.1 * factor(s, MID)),
    "shuffle": (False, lambda s: 0.1 * factor(s, MID)),
    "snapshot_interval_s": (1.0, lambda s: 0.1 * factor(s, MID)),
    "lr": (0.05, lambda s: 0.05 * factor(s, MID)),  # a new rate rescales the schedule
    "max_epochs": (30, lambda s: 0.1 * factor(s, MID, 30)),  # the schedule stretches over the new length
    "schedule": ("constant", lambda s: 0.1),
    "optimizer": ("adam", lambda s: 0.1 * factor(s, MID)),
}


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle"])
@pytest.mark.parametrize("setting", list(LIVE))
def test_every_live_setting_changed_mid_schedule_keeps_or_rescales_the_rate_deliberately(executor, schedule, setting):
    job = scheduled_job(executor, schedule)
    assert lr(job) == pytest.approx(0.1 * factor(schedule, MID))
    value, expected = LIVE[setting]
    job.set_config(**{setting: value})
    assert lr(job) == pytest.approx(expected(schedule)), "changed at once"
    job.step_epoch()  # and it trains on, the schedule stepping from there
    wait_for(lambda: job.epoch == MID + 1 and job.status()["state"] == "paused")
    c = job.config  # from here on the rate is the new settings' own: rate × factor(epoch)
    assert lr(job) == pytest.approx(c.lr * SCHEDULES[c.schedule].factor(MID + 1, c.max_epochs))
    if setting == "momentum":
        assert job._optimizers["model"].param_groups[0]["momentum"] == 0.5
    job.stop()


def test_a_job_driven_by_chunks_reports_everything_as_events(executor):
    """The seam for an executor in another process: advance() in the caller's thread, events out;
    replaying the events rebuilds exactly the history the job keeps for its page."""
    job, _, _ = make_job(Setup(dataset="spiral", n_samples=200,
                               train=TrainConfig(batch_size=10, snapshot_interval_s=0)))
    events = []
    for n in (3, 7, 25):
        events += job.advance(max_batches=n, max_seconds=60)
    assert job.step == 35 and job.epoch == 3  # 100 training points, batches of 10
    replay = History()
    replay.apply(job.view()["events"][0])  # epoch 0 was measured when the job was made
    for e in events:
        replay.apply(e)
    view = job.view(10**6)
    assert replay.steps == view["steps"] and [s for s, _ in replay.steps] == list(range(1, 36))
    assert replay.epochs == view["epochs"] and [e["epoch"] for e in replay.epochs] == [0, 1, 2, 3]
    assert replay.grad_norms == view["grad_norms"] and len(replay.grad_norms) == 35
    assert replay.snapshot is job.snapshot()
    assert {"step", "stats", "epoch", "snapshot"} <= {e.kind for e in events}


def test_steps_never_read_numbers_back_from_the_device(monkeypatch):
    """Losses and metrics stay on the device between chunks: the number of host reads in one
    chunk does not grow with its number of batches (on a GPU each read stalls the pipeline)."""
    job, _, _ = make_job(Setup(dataset="circle", n_samples=1000,
                               train=TrainConfig(batch_size=5, snapshot_interval_s=1e9)))
    job.advance(max_batches=1, max_seconds=60)
    reads = []

    def counted(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args):  # count reads made by our code (torch.optim keeps its step counts on the CPU)
            if "dl_core" in sys._getframe(1).f_code.co_filename:
                reads.append(name)
            return original(self, *args)
        return read

    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    counts = []
    for n in (5, 40):  # 200 batches to an epoch: no epoch ends here
        job._last_snapshot_t = float("inf")
        reads.clear()
        job.advance(max_batches=n, max_seconds=60)
        counts.append(len(reads))
    assert counts[0] == counts[1] <= 2, counts


def test_a_copy_starts_with_the_weights_settings_and_history_and_then_goes_its_own_way(executor):
    job, _, _ = make_job(Setup(train=TrainConfig(lr=0.01, schedule="cosine", max_epochs=20)))
    job.executor = executor
    job.advance(max_batches=30, max_seconds=60)
    twin = job.clone()
    assert twin.step == job.step and twin.epoch == job.epoch and twin.config == job.config
    assert twin.view()["epochs"] == job.view()["epochs"] and lr(twin) == pytest.approx(lr(job))
    for (k, a), b in zip(job.model.state_dict().items(), twin.model.state_dict().values()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), k
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    twin.advance(max_batches=10, max_seconds=60)
    assert all(torch.equal(before[k], v) for k, v in job.model.state_dict().items())
    assert twin.step == job.step + 10


def test_a_two_network_trainer_gets_each_network_its_own_optimizer_rate_and_loss_series(executor):
    """The GAN's seam: D on Adam at the job's rate, G on RMSprop at half of it (the trainer's
    param_groups), both following the schedule; both losses recorded; epochs without a test loss
    or accuracy (stopping and collapse detection stay quiet)."""
    job = TrainingJob(ToyAdversarialTrainer(), TrainConfig(optimizer="adam", lr=0.02, batch_size=64, max_epochs=40,
                                                           schedule="cosine", early_stop_patience=3), executor)
    kinds = {n: type(o).__name__ for n, o in job.optimizers.items()}
    assert kinds == {"D": "Adam", "G": "RMSprop"}
    start = job.view()["epochs"][0]["fake_mean"]
    job.start()
    wait_for(lambda: job.status()["state"] == "finished", timeout=120)
    view = job.view()
    epochs = view["epochs"]
    assert job.epoch == 40 and job.step == 40 * 8 and job.message == "Finished 40 epochs."
    assert abs(start - 3) > 1.5 and abs(epochs[-1]["fake_mean"] - 3) < 1.0, (start, epochs[-1])  # G learnt the mean
    end = SCHEDULES["cosine"].factor(40, 40)
    assert job.optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.02 * end)
    assert job.optimizers["G"].param_groups[0]["lr"] == pytest.approx(0.01 * end)
    assert epochs[1]["lr_D"] == pytest.approx(2 * epochs[1]["lr_G"])
    assert set(view["named_steps"]) == {"D", "G"} and len(view["named_steps"]["G"]) == len(view["steps"])
    job.set_config(lr=0.004)  # a new rate reaches each network at its own ratio
    assert job.optimizers["G"].param_groups[0]["initial_lr"] == pytest.approx(0.002)


def test_a_long_run_keeps_its_history_bounded_and_its_recent_past_whole():
    """Hours at full speed must not grow memory without end: older entries thin out (every other
    one, again and again), the latest KEEP stay whole, and the very first and last are kept."""
    h, keep = History(), History.KEEP["steps"]
    for first in range(1, 10 * keep, 1000):
        h.apply(Event("step", first, 0, 0.0, data={"first": first, "losses": [float(first)] * 1000}))
    steps = [s for s, _ in h.steps]
    assert len(steps) <= 2 * keep + 1 and steps[0] == 1 and steps[-1] == 10 * keep
    assert steps[-keep:] == list(range(10 * keep - keep + 1, 10 * keep + 1))  # recent: every step
    assert steps == sorted(steps)


def test_the_event_log_keeps_no_pictures():
    """Snapshots (~160 KB of neuron pictures each, several a second) live in the history, the latest
    only; the event log keeps that one was taken."""
    job, _, _ = make_job(Setup(train=TrainConfig(snapshot_interval_s=0.0)))
    job.advance(max_batches=20, max_seconds=60)
    logged = [e for e in job.view()["events"] if e.kind == "snapshot"]
    assert len(logged) >= 10 and all(e.data is None for e in logged)
    assert job.snapshot()["neurons"]
