"""Does training a room's networks as one stacked model pay? (`torch.func` ensembling with vmap)

    python benchmarks/run.py stacked --json [--students 30]

Tiny networks are bound by PyTorch's per-operation overhead, not arithmetic: a step of the
Playground's default network costs about the same whatever its layer sizes. When N
learners train the same architecture, one worker could stack their N networks' weights
(`torch.func.stack_module_state`) and take all N steps at once with `vmap` over
`functional_call`, each on its own batch, with one Adam over the stacked weights (Adam is
element-wise, so the N networks stay independent). This measures N separate steps against
one stacked step on the same work, in one process on one thread.
"""
from __future__ import annotations

import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

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
    return {"students": students, "separate_steps_per_s_per_student": round(sep, 1),
            "stacked_steps_per_s_per_student": round(stk, 1), "stacked_vs_separate": round(stk / sep, 2),
            "room_steps_per_s_separate": round(sep * students), "room_steps_per_s_stacked": round(stk * students)}
