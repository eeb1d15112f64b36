"""Playground figures: job vs. bare PyTorch loop, time to fit circle and spiral, snapshot cost."""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

from dl_core.engine import Executor, ThreadBackend, TrainConfig
from dl_core.playground import Setup, make_job

from .common import job_vs_bare

EPOCHS_FOR_SPEED = 100  # about 1.5 s a round: short rounds see the same machine speed
ROUNDS = 15
SEEDS = (1, 2, 3, 4, 5, 6, 7)
MAX_EPOCHS = 2000


def _wait(job, done, poll_s=0.002):
    while not done():
        if job.status()["state"] in ("finished", "failed", "stopped"):
            return
        time.sleep(poll_s)


def seconds_to_fit(dataset: str) -> dict:
    """Wall time from start until test accuracy ≥ 95%, page defaults, per seed."""
    times, reached, epochs = [], 0, []
    for seed in SEEDS:
        job, _, _ = make_job(Setup(dataset=dataset, seed=seed, train=TrainConfig(max_epochs=MAX_EPOCHS)))
        job.executor = Executor(ThreadBackend(1), capacity=1)
        t0 = time.perf_counter()
        job.start()
        hit = lambda: (job.view(1)["epochs"][-1]["test_acc"] or 0) >= 0.95
        _wait(job, hit)
        dt = time.perf_counter() - t0
        job.stop()
        job.join(5)
        ok = (job.view(10**6)["epochs"][-1]["test_acc"] or 0) >= 0.95
        reached += ok
        times.append(dt if ok else float("inf"))
        epochs.append(job.epoch)
    return {"median_s": statistics.median(times), "reached": reached, "seeds": len(SEEDS),
            "median_epochs": statistics.median(epochs)}


def snapshot_ms(setup: Setup, repeats: int = 50) -> float:
    job, _, _ = make_job(setup)
    job.probe(job.model)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        job.probe(job.model)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def run() -> dict:
    spiral = Setup(dataset="spiral")
    speed = job_vs_bare(
        lambda epochs: make_job(replace(spiral, train=replace(spiral.train, max_epochs=epochs)))[0],
        EPOCHS_FOR_SPEED, ROUNDS)
    circle, spiral_fit = seconds_to_fit("circle"), seconds_to_fit("spiral")
    return {
        **speed,
        "seconds_to_fit_circle": round(circle["median_s"], 3),
        "seeds_fit_circle": f"{circle['reached']}/{circle['seeds']}",
        "epochs_to_fit_circle": circle["median_epochs"],
        "seconds_to_fit_spiral": round(spiral_fit["median_s"], 3),
        "seeds_fit_spiral": f"{spiral_fit['reached']}/{spiral_fit['seeds']}",
        "epochs_to_fit_spiral": spiral_fit["median_epochs"],
        "snapshot_ms": round(snapshot_ms(spiral), 3),
        "setup": "spiral/circle, 500 points, noise 0, 50% train, [8,8,8], inputs x,y, page defaults "
                 f"({spiral.activation}, {spiral.train.optimizer} lr {spiral.train.lr}, batch "
                 f"{spiral.train.batch_size}), snapshot every {spiral.train.snapshot_interval_s}s at "
                 f"{spiral.resolution}x{spiral.resolution}",
    }
