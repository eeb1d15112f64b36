"""A gang (dl_core/gang.py) trains each job exactly as it would train alone.

The oracle is the job itself: a copy of the same job trained alone, by torch.optim, gives
the weights, counters and history that the gang's row-wise update must reproduce."""
from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import replace

import pytest
import torch

from dl_core.engine import Executor, ThreadBackend, TrainConfig
from dl_core.engine.gang import ROW_OPTIMIZERS, gang_key, stacked_forward, train_gang
from dl_core.playground import Setup, make_data, make_job, model_spec
from dl_core.spec import LayerSpec

POOL = Executor(ThreadBackend(1), unwatched_s=None)


def room(n: int, dataset: str = "circle", residual: bool = False, **train) -> list:
    """`residual`: with a residual dense layer, which the gang's batched matrix products leave
    to vmap over functional_call (gang.stacked_forward)."""
    setups = [Setup(dataset, seed=s + 1, hidden=(6, 5), train=TrainConfig(**train), resolution=8) for s in range(n)]
    specs = [model_spec(setup, make_data(setup)) for setup in setups]
    if residual:
        specs = [replace(sp, layers=(*sp.layers[:2], LayerSpec.of("dense_residual", fn="tanh"), *sp.layers[2:]))
                 for sp in specs]
    jobs = [make_job(setup, spec=spec)[0] for setup, spec in zip(setups, specs)]
    for job in jobs:
        job.executor, job._want_run = POOL, True
    return jobs


def twins(jobs: list) -> list:
    out = [pickle.loads(pickle.dumps(j)) for j in jobs]
    for job in out:
        job.executor = POOL
    return out


def weights(job) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in job.model.parameters()])


@pytest.mark.parametrize("optimizer, dataset, residual", [(o, "circle", False) for o in ROW_OPTIMIZERS]
                         + [("adam", "plane", False), ("adam", "circle", True)])
def test_a_gang_trains_each_network_as_torch_optim_trains_it_alone(optimizer, dataset, residual):
    """12 steps in a gang then 9 alone (the state handed back to torch.optim) equal 21 alone; the
    gang's own measurement at the first epoch's end equals each job's evaluation alone."""
    together = room(3, dataset, residual, optimizer=optimizer, lr=0.05, l2=0.001 if optimizer == "momentum" else 0.0)
    alone = twins(together)
    assert len({gang_key(j) for j in together}) == 1 and gang_key(together[0]) is not None
    assert (stacked_forward(together[0].model) is None) == residual
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a schedule that thinks its optimizer never stepped
        train_gang(together, [12] * 3, max_s=30)
        for job in together:
            job.advance(9, 30)
    for job in alone:
        job.advance(21, 30)
    for g, a in zip(together, alone):
        assert (g.step, g.epoch, g._pos) == (a.step, a.epoch, a._pos) == (21, 2, 5 * 32)
        torch.testing.assert_close(weights(g), weights(a), rtol=1e-5, atol=1e-6)
        gl, al = g.view()["steps"], a.view()["steps"]
        assert [s for s, _ in gl] == [s for s, _ in al] == list(range(1, 22))
        assert [v for _, v in gl] == pytest.approx([v for _, v in al], rel=1e-4)
        for metric in ("train_loss", "test_loss", "train_acc", "test_acc"):
            gm, am = ([e[metric] for e in j.view()["epochs"]] for j in (g, a))
            if metric.endswith("acc") and dataset == "plane":  # accuracy: for classes only
                assert gm == am == [None] * 3
            else:
                assert len(gm) == 3 and gm == pytest.approx(am, rel=1e-4), metric


def test_a_diverging_member_alone_is_put_back_and_the_others_train_on():
    """Each row has its own rate: one far too high blows up, is restored and explained; the
    others' weights are what they would be alone."""
    jobs = room(3, optimizer="sgd", lr=0.05)
    jobs[1].set_config(lr=1e6)
    alone = twins([jobs[0], jobs[2]])
    before = weights(jobs[1]).clone()
    train_gang(jobs, [16] * 3, max_s=30)
    for job in alone:
        job.advance(16, 30)
    assert jobs[1].status()["state"] == "failed" and "Learning rate too high" in jobs[1].status()["message"]
    torch.testing.assert_close(weights(jobs[1]), before)  # its last good weights: the start
    for g, a in zip([jobs[0], jobs[2]], alone):
        assert g.step == a.step == 16
        torch.testing.assert_close(weights(g), weights(a), rtol=1e-5, atol=1e-6)


def test_a_member_diverging_later_is_put_back_to_the_weights_the_gang_kept_at_its_last_epoch():
    """The gang's copy of each job's weights at an epoch's end is the job's "last good" state,
    its own (not a view into the gang's rows, nor into another job's copy)."""
    jobs = room(3, optimizer="sgd", lr=0.05)
    train_gang(jobs, [8] * 3, max_s=30)  # one epoch
    assert [j.epoch for j in jobs] == [1, 1, 1]
    after_one = weights(jobs[1]).clone()
    for job in jobs:
        for w in job._good_state["model"].values():
            assert w.untyped_storage().nbytes() == after_one.numel() * after_one.element_size()
    jobs[1].set_config(lr=1e6)
    train_gang(jobs, [8] * 3, max_s=30)
    assert jobs[1].status()["state"] == "failed"
    torch.testing.assert_close(weights(jobs[1]), after_one)
    assert [j.epoch for j in jobs] == [2, 1, 2]


def test_after_a_gang_every_job_owns_its_weights_again():
    """No job keeps a view into the gang's rows: pickled alone, it carries its own weights only."""
    jobs = room(4)
    train_gang(jobs, [3] * 4, max_s=30)
    size = sum(p.numel() for p in jobs[0].model.parameters())
    for job in jobs:
        for p in job.model.parameters():
            assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
        assert weights(job).numel() == size


def test_only_jobs_that_can_share_a_step_form_a_gang():
    base = room(1)[0]
    other_place = room(1)[0]
    other_place._pos = 32
    assert gang_key(other_place) != gang_key(base)
    assert gang_key(room(1, optimizer="rmsprop")[0]) is None  # no row-wise update written for it
    assert gang_key(room(1, beta1=0.8)[0]) != gang_key(base)  # settings besides the rate must match
    assert gang_key(room(1, lr=0.5)[0]) == gang_key(base)  # each row has its own rate
    dropout = make_job(Setup(hidden=(6, 5), dropout=0.2, resolution=8))[0]
    assert gang_key(dropout) is None
    wider = make_job(Setup(hidden=(6, 6), resolution=8))[0]
    assert gang_key(wider) != gang_key(base)


def test_a_gang_turn_ends_at_the_epoch_boundary_nearest_its_time(monkeypatch):
    """Every step takes 10 ms on a fake clock and an epoch is 8 steps (80 ms): a 250 ms turn ends
    after 3 epochs (240 ms), not after 4 (320 ms, the first boundary past its end, which made
    busy-core turns run up to twice their time and pages find the same epoch again)."""
    from dl_core.engine import gang as gang_module

    clock = [1000.0]
    monkeypatch.setattr(gang_module.time, "perf_counter", lambda: clock[0])
    step = gang_module.Gang.step

    def timed_step(self):
        clock[0] += 0.01
        return step(self)

    monkeypatch.setattr(gang_module.Gang, "step", timed_step)
    jobs = room(3, batch_size=32, snapshot_interval_s=1e9)
    n_steps = -(-jobs[0].trainer.n_train // 32)
    assert n_steps == 8, "the fake clock's arithmetic below assumes 8 steps an epoch"
    train_gang(jobs, [None] * 3, max_s=0.25)
    assert [j.epoch for j in jobs] == [3, 3, 3]
    train_gang(jobs, [None] * 3, max_s=0.29)  # the 4th boundary (320 ms) is nearer than the 3rd (240 ms)
    assert [j.epoch for j in jobs] == [7, 7, 7]


def test_a_full_rooms_snapshots_are_spread_over_time_by_job():
    """Jobs that started together take their snapshots at 0.8-1.2x the room's floor, by job, so
    that a room's pages do not all draw their pictures in the same second."""
    early, late = room(2)
    early.uid, late.uid = "0000" + early.uid[4:], "ffff" + late.uid[4:]
    for job, (not_yet, due) in ((early, (2.35, 2.45)), (late, (3.5, 3.65))):
        job.snapshot_floor_s = 3.0
        job._last_snapshot_t = time.perf_counter() - not_yet
        assert not job.snapshot_due()
        job._last_snapshot_t = time.perf_counter() - due
        assert job.snapshot_due()
