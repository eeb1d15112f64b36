"""What one training chunk in a worker process costs the web process: `python benchmarks/run.py chunks --json`

The Playground's default job, driven as the process executor drives it (`payload` → the
worker's `run_chunk` → `absorb`), all in this process so only the shipping is timed: the
whole job (a worker's first turn), a turn for a worker that keeps a copy of the job, and a
turn for a worker whose copy is the state it sent back last (only the counters go).
"""
from __future__ import annotations

import time

from dl_core.workerproc import run_chunk
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
        out |= {f"{label}_out_ms": round(t_out / rounds * 1000, 2), f"{label}_back_ms": round(t_back / rounds * 1000, 2),
                f"{label}_out_kb": round(len(payload) / 1024, 1), f"{label}_back_kb": round(len(reply) / 1024, 1)}
    return out
