"""What one training chunk in a worker process costs the web process: `python benchmarks/run.py chunks --json`

The Playground's default job, driven as the process executor drives it (`payload` → the
worker's `run_chunk` → `absorb`), all in this process so only the shipping is timed: the
whole job (a worker's first turn), a turn for a worker that keeps a copy of the job, and a
turn for a worker whose copy is the state it sent back last (only the counters go). Then
what taking back one classroom gang turn (15 jobs) costs beside a busy Python thread, as in a
class's web process: the answers loaded at once (the jobs rest) or kept packed (they train
on): every torch call gives up the interpreter lock, and under contention each waits for it.
Last, a network too big to travel (a ResNet-18, 45 MB): what a turn would cost to ship, and
that it now trains where it is (travel.TRAVEL_MAX_BYTES).
"""
from __future__ import annotations

import pickle
import threading
import time
from unittest import mock

import torch
import torchvision

from dl_core.data import TensorData
from dl_core.engine import SupervisedTrainer, TrainConfig, TrainingJob, travel
from dl_core.engine.backends import gang_trip, order_for
from dl_core.engine.worker_main import run_chunk
from dl_core.playground import Setup, make_job


def run(rounds: int = 30) -> dict:
    job = make_job(Setup())[0]
    job.snapshot_floor_s = 0.25
    out = {}
    for label, resident, current in (("whole_job", False, False), ("turn", True, False), ("same", True, True)):
        job.absorb(run_chunk(job.payload(None, 0.05)))  # the worker's copy exists from here on
        t_out = t_back = 0.0
        for _ in range(rounds):
            t = time.perf_counter()
            payload = job.payload(None, 0.05, resident=resident, current=current)
            t_out += time.perf_counter() - t
            reply = run_chunk(payload)
            t = time.perf_counter()
            job.absorb(reply)
            t_back += time.perf_counter() - t
            time.sleep(0.3)  # others' turns: a snapshot is due again at the next one
        out |= {f"{label}_out_ms": round(t_out / rounds * 1000, 2),
                f"{label}_back_ms": round(t_back / rounds * 1000, 2),
                f"{label}_out_kb": round(len(payload) / 1024, 1), f"{label}_back_kb": round(len(reply) / 1024, 1)}
    return out | _gang_absorb() | _too_big()


def _gang_absorb(students: int = 15, rounds: int = 3) -> dict:
    """Milliseconds to absorb one gang turn's answers: idle, then beside a busy thread; the
    median of `rounds`, for jobs that rest (loaded at once) and jobs that train on (packed)."""
    jobs = [make_job(Setup())[0] for _ in range(students)]
    lane: dict = {}
    for job in jobs:
        job._want_run = True
    gang_trip(jobs, lane, [None] * students, 0.3, lambda payload, report: run_chunk(payload))
    answers = pickle.loads(run_chunk(pickle.dumps(("gang", [order_for(j, lane, None, 0.3) for j in jobs], 0.3))))

    def absorb_ms(training: bool) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            for job, answer in zip(jobs, answers):
                job._want_run = training
                job.absorb(answer)
            times.append((time.perf_counter() - t) * 1000)
        return round(sorted(times)[rounds // 2], 1)

    out = {f"gang{students}_{how}_idle_ms": absorb_ms(how == "packed") for how in ("loaded", "packed")}
    busy = threading.Event()

    def spin():
        while not busy.is_set():
            pass

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        out |= {f"gang{students}_{how}_busy_ms": absorb_ms(how == "packed") for how in ("loaded", "packed")}
    finally:
        busy.set()
        spinner.join()
    return out


def _too_big(rounds: int = 3) -> dict:
    """A ResNet-18 (weights=None: nothing downloads) on 64 small images, Adam: a turn's shipping, out
    and back, were it allowed to travel (the median of `rounds` turns to a worker that holds the job),
    against one batch of its training; and whether it travels now."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    trainer = SupervisedTrainer(torchvision.models.resnet18(num_classes=10), TensorData(x, y, x[:16], y[:16],
                                                                                        "classification"))
    job = TrainingJob(trainer, TrainConfig(batch_size=16, full_train_eval=False, snapshot_interval_s=1e9))
    t = time.perf_counter()
    job.advance(max_batches=1, max_seconds=60)
    out = {"big_state_mb": round(job.state_bytes() / 2**20, 1), "big_batch_ms": round((time.perf_counter() - t) * 1e3),
           "big_travels_now": job.payload(1, 60) is not None}
    with mock.patch.object(travel, "TRAVEL_MAX_BYTES", 1 << 40):  # as before the limit
        job.absorb(run_chunk(job.payload(1, 60)))
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            payload = job.payload(1, 60, resident=True)
            t_out = time.perf_counter() - t
            reply = run_chunk(payload)
            t = time.perf_counter()
            job.absorb(reply)
            with job.lock:  # a page reads its weights (or the next turn sends them): the answer is loaded
                pass
            times.append((t_out, time.perf_counter() - t, len(payload) + len(reply)))
    t_out, t_back, size = sorted(times)[rounds // 2]
    return out | {"big_turn_out_ms": round(t_out * 1e3), "big_turn_back_ms": round(t_back * 1e3),
                  "big_turn_mb": round(size / 2**20, 1)}
