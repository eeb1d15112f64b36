"""Does training a room's networks as one stacked model pay? (`torch.func` ensembling with vmap)

    python benchmarks/run.py stacked --json [--students 30]

Tiny networks are bound by PyTorch's per-operation overhead, not arithmetic: a step of the
Playground's default network costs about the same whatever its layer sizes. When N
learners train the same architecture, one worker could stack their N networks' weights
(`torch.func.stack_module_state`) and take all N steps at once with `vmap` over
`functional_call`, each on its own batch, with one Adam over the stacked weights (Adam is
element-wise, so the N networks stay independent). This measures N separate steps against
one stacked step on the same work, in one process on one thread; then the same through the
engine (`dl_core.engine.gang.train_gang` against each job's own `advance`), with everything a job does
besides its steps: an evaluation every epoch (8 steps), snapshots every 3 s as in a full room.
"""
from __future__ import annotations

import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from dl_core.engine import Executor, ThreadBackend
from dl_core.engine.gang import train_gang
from dl_core.playground import Setup, make_job


def _rounds(step, seconds: float = 3.0) -> float:
    step()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def run(students: int = 30, *_ignored) -> dict:
    job = make_job(Setup())[0]
    data, bs = job.data, job.config.batch_size
    models = [copy.deepcopy(job.model) for _ in range(students)]
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    n = len(data.x_train)

    opts = [torch.optim.Adam(m.parameters(), lr=0.03) for m in models]

    def separate():
        for m, opt in zip(models, opts):
            idx = torch.randint(0, n, (bs,), generator=gen)
            opt.zero_grad(set_to_none=True)
            loss_fn(m(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()

    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    stacked_opt = torch.optim.Adam(params.values(), lr=0.03)

    def one(p, b, x, y):
        return torch.nn.functional.cross_entropy(functional_call(base, (p, b), (x,)), y)

    batched = vmap(one)

    def stacked():
        idx = torch.randint(0, n, (students, bs), generator=gen)
        stacked_opt.zero_grad(set_to_none=True)
        batched(params, buffers, data.x_train[idx], data.y_train[idx]).sum().backward()
        stacked_opt.step()

    sep, stk = _rounds(separate), _rounds(stacked)
    return _engine(students) | {"students": students, "separate_steps_per_s_per_student": round(sep, 1),
            "stacked_steps_per_s_per_student": round(stk, 1), "stacked_vs_separate": round(stk / sep, 2),
            "room_steps_per_s_separate": round(sep * students), "room_steps_per_s_stacked": round(stk * students)}


def _engine(students: int, seconds: float = 3.0) -> dict:
    """Steps/s per job, the room's jobs trained one after the other (their own advance) and
    as one gang (train_gang), for the same wall time."""
    pool = Executor(ThreadBackend(1))

    def room():
        jobs = [make_job(Setup(seed=s + 1))[0] for s in range(students)]
        for job in jobs:
            job.executor, job._want_run, job.snapshot_floor_s = pool, True, 3.0
        return jobs

    alone, t0 = room(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for job in alone:
            job.advance(None, 0.1 / students)
    alone_rate = sum(j.step for j in alone) / (time.perf_counter() - t0) / students
    gang, t0 = room(), time.perf_counter()
    train_gang(gang, [None] * students, seconds)
    gang_rate = sum(j.step for j in gang) / (time.perf_counter() - t0) / students
    return {"engine_alone_steps_per_s_per_student": round(alone_rate, 1),
            "engine_gang_steps_per_s_per_student": round(gang_rate, 1),
            "engine_gang_vs_alone": round(gang_rate / alone_rate, 2)}
