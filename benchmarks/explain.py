"""Explainability Lab figures: milliseconds per attribution method for one 28×28 digit on the
reference CNN (the lab's default model), and for the page's default method set in total.
Each figure is the median of fresh (uncached) runs after one warm-up call."""
from __future__ import annotations

import statistics
import time

import torch

from dl_core import explain, reference
from dl_core.presets import preset_spec
from dl_core.spec import build

RUNS = 7


def run(device: str = "cpu") -> dict:
    base, meta = reference.model(device=device)
    model = explain.eval_copy(base)
    xte, yte = reference.data().part("test")
    x, target = torch.as_tensor(xte[:1], device=device), int(yte[0])
    background = torch.as_tensor(reference.data().part("train")[0][:20], device=device)
    ctx = explain.Context(background=background)
    figures = {}
    for key in explain.METHODS:
        explain.attribute(model, x, target, key, ctx=ctx)  # warm-up: Captum's first call sets things up
        figures[f"ms_{key}"] = round(statistics.median(
            explain.attribute(model, x, target, key, ctx=ctx).ms for _ in range(RUNS)), 2)
    figures["ms_default_set"] = _default_set_ms(model, x, target, ctx)
    # the CNN Lab's default network (Tiny VGG) at 28×28: bigger maps, the same methods
    tiny = explain.eval_copy(build(preset_spec("tiny_vgg", (1, 28, 28), 10), seed=0).to(device))
    figures["ms_default_set_tiny_vgg"] = _default_set_ms(tiny, x, target, ctx)
    figures["default_set"] = ", ".join(explain.DEFAULT_SET)
    figures["setup"] = (f"reference CNN ({sum(p.numel() for p in model.parameters()):,} parameters, "
                        f"{meta['test_accuracy']:.0%} test accuracy), one 1×28×28 digit, "
                        "Integrated Gradients with 50 Gauss–Legendre steps")
    return figures


def _default_set_ms(model, x, target, ctx) -> float:
    """What the page pays for one input's row of the default methods (median of fresh runs)."""
    for key in explain.DEFAULT_SET:
        explain.attribute(model, x, target, key, ctx=ctx)
    totals = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        for key in explain.DEFAULT_SET:
            explain.attribute(model, x, target, key, ctx=ctx)
        totals.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(totals), 1)
