"""Backpropagation and optimization lab figures: one full hand-written forward + backward trace
of the step-through network, and a 41×41 loss-landscape slice of the default Playground model."""
from __future__ import annotations

import statistics
import time

import numpy as np

from dl_core import backprop, landscape, playground, surfaces, tuning
from dl_core.engine import Executor, ThreadBackend
from dl_core.spec import build, mlp_spec

RUNS = 7


def _median_ms(fn, runs: int = RUNS) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 2)


def run(device: str = "cpu") -> dict:
    model = build(mlp_spec(2, [3], "tanh", 2), seed=0)
    x = np.array([1.0, -0.5])
    figures = {"ms_step_trace": _median_ms(lambda: backprop.trace(model, x, 0)),
               "ms_autograd_check": _median_ms(lambda: backprop.autograd_grads(model, x, 0, "classification")),
               "ms_finite_difference_check": _median_ms(
                   lambda: backprop.finite_difference_grads(model, x, 0, "classification"))}
    job, _, _ = playground.make_job(playground.Setup())
    job.executor = Executor(ThreadBackend(1), capacity=2)
    tuning.epoch_path(job, 20)
    d1, d2 = landscape.random_direction(job.model, 0), landscape.random_direction(job.model, 1)
    figures["ms_landscape_2d"] = _median_ms(lambda: landscape.loss_surface(
        job.model, job.data.x_train, job.data.y_train, job.trainer.loss_fn, d1, d2, 1.0, 41), runs=3)
    figures["ms_optimizer_path_500_steps"] = _median_ms(lambda: surfaces.trajectory("rosenbrock", "adam", steps=500))
    figures["setup"] = ("trace: 2-3-2 tanh network, one example; landscape: the Playground's default network "
                        f"({sum(p.numel() for p in job.model.parameters())} weights) on its "
                        f"{len(job.data.x_train)} training points, trained 20 epochs, 41×41 grid")
    return figures
