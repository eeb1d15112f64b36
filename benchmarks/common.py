"""Timing shared by the suites: a training job as the page runs it vs. a bare PyTorch loop."""
from __future__ import annotations

import statistics
import time

import torch

from dl_core.engine import Executor, ThreadBackend, TrainingJob
from dl_core.losses import LOSSES
from dl_core.optim import OPTIMIZERS


def job_steps_per_s(job: TrainingJob, poll_s: float = 0.3) -> float:
    """Run `job` to its max_epochs, reading it as a page does; rate from its own event stamps."""
    job.executor = Executor(ThreadBackend(1), capacity=1)
    job.start()
    while job.status()["state"] != "finished":
        job.view()
        job.snapshot()
        time.sleep(poll_s)
    events = {e.kind: e.time for e in reversed(job.view()["events"]) if e.kind in ("started", "finished")}
    return job.step / (events["finished"] - events["started"])


def bare_steps_per_s(job: TrainingJob, epochs: int) -> float:
    """The same model, data, batch size and optimizer in a plain PyTorch loop (the job is not started)."""
    model, data, cfg = job.model, job.data, job.config
    opt = OPTIMIZERS[cfg.optimizer].make(model.parameters(), cfg.optimizer_settings())
    loss_fn = LOSSES[data.task].make()
    n, steps = len(data.x_train), 0
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            if cfg.clip:  # the same work as the job's step
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            steps += 1
    return steps / (time.perf_counter() - t0)


def job_vs_bare(make, epochs: int, rounds: int) -> dict:
    """Job against bare loop in interleaved rounds after a warm-up (`make(max_epochs)` returns a
    fresh job). This shared VM's speed drifts within seconds (the same loop's rate varied
    0.45-1.17x between neighbouring rounds, in CPU time as much as in wall time), so rounds
    are short and many, and the median ratio of neighbours is the figure, with its range."""
    job_steps_per_s(make(1)), bare_steps_per_s(make(1), 1)  # warm-up, not counted
    pairs = [(job_steps_per_s(make(epochs)), bare_steps_per_s(make(epochs), epochs)) for _ in range(rounds)]
    ratios = [j / b for j, b in pairs]
    return {"steps_per_s_job": round(statistics.median(j for j, _ in pairs), 1),
            "steps_per_s_bare": round(statistics.median(b for _, b in pairs), 1),
            "job_vs_bare": round(statistics.median(ratios), 3),
            "job_vs_bare_range": f"{min(ratios):.2f}-{max(ratios):.2f} over {rounds} rounds"}
