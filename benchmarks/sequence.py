"""The Sequence Lab: speed against a bare loop, memory against lag, the cost of looking inside.

    python benchmarks/run.py sequence --json

- job_vs_bare on the default task (remember the first symbol, lag 100, an LSTM of 32 units);
- seconds for an LSTM to reach 95 % test accuracy on the default task (median of 3 seeds);
- the memory horizon: test accuracy after the same training time, per cell type and lag;
- milliseconds for the probe (states, gates, gradients through time of one sequence).
"""
from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import replace

from benchmarks.common import job_vs_bare
from dl_core.executors import Executor
from dl_core.seqlab import CELLS, SeqSetup, make_job

SETUP = SeqSetup()
POOL = Executor("thread", 1, unwatched_s=None)


def _train(setup: SeqSetup, seconds: float, goal: float | None = None) -> tuple[float, float]:
    """(test accuracy at the end, seconds until `goal` was first reached or inf)."""
    job = make_job(setup)[0]
    job.executor, job._want_run = POOL, True
    t0, reached = time.perf_counter(), float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while time.perf_counter() - t0 < seconds:
            job.advance(None, 0.5)
            acc = job.view()["epochs"][-1]["test_acc"]
            if goal is not None and acc >= goal:
                reached = time.perf_counter() - t0
                break
    return job.view()["epochs"][-1]["test_acc"], reached


def _probe_ms() -> float:
    job = make_job(SETUP)[0]
    probe = job.probe
    probe(job.model)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        probe(job.model)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(*_ignored, lags=(10, 50, 100), seconds: float = 10.0) -> dict:
    speed = job_vs_bare(lambda e: make_job(replace(SETUP, train=replace(SETUP.train, max_epochs=e)))[0], 2, 5)
    solve = [_train(replace(SETUP, seed=s), 60, 0.95)[1] for s in (1, 2, 3)]
    horizon = {f"{cell}_lag{lag}": round(_train(replace(SETUP, cell=cell, lag=lag), seconds)[0], 3)
               for cell in CELLS for lag in lags}
    return {**speed, "seconds_lstm_to_95pct_default": round(statistics.median(solve), 2),
            "solved_within_60s": sum(s < float("inf") for s in solve),
            "memory_horizon_test_acc": horizon, "memory_horizon_seconds_each": seconds,
            "probe_ms": round(_probe_ms(), 2),
            "setup": f"{SETUP.task}, lag {SETUP.lag}, {SETUP.cell} {SETUP.hidden} units, "
                     f"{SETUP.train.optimizer} lr {SETUP.train.lr}, batch {SETUP.train.batch_size}, clip {SETUP.train.clip}"}
