"""The Sequence Lab: speed against a bare loop, memory against lag, the cost of looking inside.

    python benchmarks/run.py sequence --json

- job_vs_bare on the default task (remember the first symbol, lag 100, an LSTM of 32 units);
- seconds for an LSTM to reach 95 % test accuracy on the default task (median of 3 seeds);
- the memory horizon: the best test accuracy in the lab's race budget (30 epochs), per cell
  type and lag;
- milliseconds for the probe (states, gates, gradients through time of one sequence) and for
  the token attributions of one sequence (with the points its completeness needed), untrained
  and trained.
"""
from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import replace

from benchmarks.common import job_vs_bare
from dl_core import seqexplain
from dl_core.engine import Executor, ThreadBackend
from dl_core.seqlab import CELLS, RACE_EPOCHS, SeqSetup, make_job

SETUP = SeqSetup()
POOL = Executor(ThreadBackend(1), unwatched_s=None)


def _train(setup: SeqSetup, seconds: float, goal: float | None = None, epochs: int | None = None):
    """(best test accuracy, seconds until `goal` was first reached or inf, the job), training for
    `seconds` or `epochs` epochs."""
    job = make_job(setup)[0]
    job.executor, job._want_run = POOL, True
    per_epoch = -(-job.trainer.n_train // job.config.batch_size)
    t0, reached = time.perf_counter(), float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while time.perf_counter() - t0 < seconds and (epochs is None or job.epoch < epochs):
            job.advance(per_epoch if epochs else None, 0.5 if epochs is None else 60)
            acc = job.view()["epochs"][-1]["test_acc"]
            if goal is not None and acc >= goal:
                reached = time.perf_counter() - t0
                break
    return max(e["test_acc"] for e in job.view()["epochs"]), reached, job


def _attribution_ms(job) -> dict:
    data = job.trainer.data
    times, points = [], []
    for i in range(5):
        r = seqexplain.token_attributions(job.model, data.x_test[i], int(data.y_test[i]))
        t0 = time.perf_counter()
        r = seqexplain.token_attributions(job.model, data.x_test[i], int(data.y_test[i]))
        times.append((time.perf_counter() - t0) * 1000)
        points.append(r.points)
    return {"ms_median": round(statistics.median(times), 1), "points": points}


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


def run(*_ignored, lags=(10, 50, 100)) -> dict:
    speed = job_vs_bare(lambda e: make_job(replace(SETUP, train=replace(SETUP.train, max_epochs=e)))[0], 3, 7)
    solved = [_train(replace(SETUP, seed=s), 60, 0.95) for s in (1, 2, 3)]
    horizon = {f"{cell}_lag{lag}": round(_train(replace(SETUP, cell=cell, lag=lag), 600, epochs=RACE_EPOCHS)[0], 3)
               for cell in CELLS for lag in lags}
    return {**speed, "seconds_lstm_to_95pct_default": round(statistics.median(s[1] for s in solved), 2),
            "solved_within_60s": sum(s[1] < float("inf") for s in solved),
            "memory_horizon_best_test_acc": horizon, "memory_horizon_epochs_each": RACE_EPOCHS,
            "probe_ms": round(_probe_ms(), 2),
            "attribution_untrained": _attribution_ms(make_job(SETUP)[0]),
            "attribution_trained": _attribution_ms(solved[0][2]),
            "setup": f"{SETUP.task}, lag {SETUP.lag}, {SETUP.cell} {SETUP.hidden} units, "
                     f"{SETUP.train.optimizer} lr {SETUP.train.lr}, batch {SETUP.train.batch_size}, "
                     f"clip {SETUP.train.clip}"}
