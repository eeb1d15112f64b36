"""Explanations as work on the executor's lanes, beside the room's training.

Integrated Gradients at 300 steps in a 50-copy noise tunnel took 35 s a map in the web process,
and a grid holds up to 24 maps. Here each piece of work (a map, a randomised model's maps, a
faithfulness curve, a robustness score) is a `Task`, and an `ExplainTrainer` takes one task a
step through an ordinary TrainingJob (one epoch, nothing to optimise). So the executor gives
it turns like any job, on any backend: the trainer travels (its networks, tasks and results
pickle, and each task's function is a module-level one, which pickles by name), so the process
backend computes it in a worker. A page reads what is done so far from the job's snapshots
(`done`), and asks the cost first: the passes through the model (each method's own count,
a noise tunnel cut to MAX_MAP_PASSES a map) times this model's measured pace (`seconds`).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import explain, trust
from .engine import TrainConfig, TrainingJob
from .engine.trainers import Network

# The most inputs one map may run through the model inside a noise tunnel: its noisy copies are cut
# to fit. Integrated Gradients at 300 steps in 50 copies took 35 s a map on a 64-pixel LeNet-5;
# a map is one step of its explanation job (below), and a lane's turn should stay short.
MAX_MAP_PASSES = 1000


def tunnel_settings(key: str, params: dict | None, shape: tuple, tunnel: str,
                    tunnel_params: dict | None) -> dict:
    """The noise tunnel's settings `key` really gets: at most MAX_MAP_PASSES inputs in all (never
    fewer than 2 copies), or {} when it is not wrapped."""
    if tunnel == "none" or not explain.METHODS[key].tunnel:
        return {}
    tp = {q.name: q.default for q in explain.TUNNEL_PARAMS} | (tunnel_params or {})
    fits = max(2, int(MAX_MAP_PASSES // passes(key, params, shape)))
    return tp | {"nt_samples": min(tp["nt_samples"], fits)}


def passes(key: str, params: dict | None, shape: tuple, tunnel: str = "none",
           tunnel_params: dict | None = None) -> float:
    """How many inputs one map of `key` runs through the model and back (Method.passes), for the
    page's cost estimate; a noise tunnel multiplies it by its copies."""
    method = explain.METHODS[key]
    n = method.passes(method.defaults() | (params or {}), shape)
    return n * tunnel_settings(key, params, shape, tunnel, tunnel_params).get("nt_samples", 1)


def pass_seconds(model: nn.Module, shape: tuple, batch: int = 32) -> float:
    """Seconds one input takes through `model` and back (its input gradient), measured here in a
    batch, as the path and sampling methods run them."""
    x = torch.rand(batch, *shape, device=next(model.parameters()).device, requires_grad=True)
    best = float("inf")
    for _ in range(3):  # the first run sets things up; the fastest of the rest is the machine's pace
        start = time.perf_counter()
        torch.autograd.grad(model(x).sum(), x)
        best = min(best, time.perf_counter() - start)
    return best / batch


# One task a step, one epoch in all; snapshots (what is done so far) at a live view's pace.
CONFIG = TrainConfig(optimizer="sgd", lr=0.0, batch_size=1, max_epochs=1, shuffle=False, snapshot_interval_s=0.25)


@dataclass(frozen=True)
class Task:
    """`fn(nets[net], *args)`, cached under `key` (beside the model's version)."""

    key: tuple
    fn: Callable  # module-level, so the task pickles by name (a worker imports it)
    args: tuple = ()
    net: str = "model"
    passes: float = 1  # inputs it runs through the model, forward and back (the estimate)


def map_task(image: np.ndarray, target: int | None, key: str, params: dict | None = None, layer: int | None = None,
             tunnel: str = "none", tunnel_params: dict | None = None, background: torch.Tensor | None = None) -> Task:
    """One attribution map (explain.explain_image); a noise tunnel's copies cut to fit
    MAX_MAP_PASSES, and the map cached under what it really was."""
    tunnel_params = tunnel_settings(key, params, image.shape, tunnel, tunnel_params)
    tunnel = tunnel if tunnel_params else "none"
    background = background if explain.METHODS[key].background else None
    return Task(explain.map_key(image, target, key, params, layer, tunnel, tunnel_params), explain.explain_image,
                (image, target, key, params, layer, tunnel, tunnel_params, background),
                passes=passes(key, params, image.shape, tunnel, tunnel_params))


def faithfulness_task(image: np.ndarray, target: int, attribution: np.ndarray | None) -> Task:
    """Deletion and insertion curves and infidelity for a map (None: the random order)."""
    which = None if attribution is None else explain.digest(attribution)
    return Task(("faithfulness", explain.digest(image), target, which), trust.faithfulness,
                (image, target, attribution), passes=62)  # 2 × 21 perturbed inputs, 20 for infidelity


def sensitivity_task(image: np.ndarray, target: int, key: str) -> Task:
    return Task(("sensitivity", explain.digest(image), target, key), trust.sensitivity, (image, target, key),
                passes=8 * passes(key, None, image.shape))  # sensitivity_max's 8 perturbed maps


def randomised_task(image: np.ndarray, target: int, keys: tuple[str, ...], top: int, net: str = "model") -> Task:
    """Each method's |map| with the `top` topmost layers randomised (the sanity checks' cascade;
    top=0 on net="twin": the shuffled-label twin's maps)."""
    return Task(("randomised", net, explain.digest(image), target, tuple(keys), top), trust.randomised_maps,
                (image, target, list(keys), top), net, sum(passes(k, None, image.shape) for k in keys))


def seconds(tasks: list[Task], pass_s: float) -> float:
    """About how long `tasks` take at `pass_s` seconds an input (pass_seconds)."""
    return sum(t.passes for t in tasks) * pass_s


class ExplainTrainer:
    """The Trainer contract (dl_core/engine/trainers.py) for a list of tasks: step i computes
    task i. Its networks are eval-mode copies that nothing trains (an optimizer at rate 0 holds
    them, as every network in a job has one)."""

    travels, gangs, chance, probe_fn = True, False, None, None
    gradient_labels: list = []
    activation_labels: list = []

    def __init__(self, nets: dict[str, nn.Module], tasks: list[Task]):
        self.models, self.tasks, self.n_train = dict(nets), list(tasks), len(tasks)
        self.results: dict = {}

    def param_groups(self, config: TrainConfig) -> dict[str, Network]:
        return {n: Network([p for p in m.parameters() if p.requires_grad], config.optimizer, config.lr)
                for n, m in self.models.items()}

    def train_step(self, idx: torch.Tensor, ctx) -> None:
        for i in idx.tolist():
            task = self.tasks[i]
            self.results[task.key] = task.fn(self.models[task.net], *task.args)
        return None  # no loss: nothing was trained

    def running_metrics(self) -> dict:
        return {}

    def evaluate(self, train: bool = True) -> dict:
        return {}

    def probe(self) -> dict:
        """What is done so far: the page takes it from the job's snapshots."""
        return {"results": dict(self.results)}

    def grad_norms(self) -> list[float]:
        return []

    def take_activations(self) -> None:
        return None

    def turn_state(self) -> dict:
        return {"results": self.results}

    def load_turn_state(self, state: dict) -> None:
        self.results = state["results"]

    def clone(self) -> "ExplainTrainer":
        return copy.deepcopy(self)


def explanation_job(nets: dict[str, nn.Module], tasks: list[Task], executor=None) -> TrainingJob:
    """A job (not started) computing `tasks` on copies of `nets` (a page's model must not carry
    Captum's hooks while the page predicts with it); start() hands it to the executor."""
    copies = {n: explain.eval_copy(m) for n, m in nets.items()}
    return TrainingJob(ExplainTrainer(copies, tasks), CONFIG, executor)


def done(job: TrainingJob) -> dict[Any, Any]:
    """{task key: result} of what `job` has computed so far: its latest snapshot while it runs
    (no lock: a turn away holds it), all of it from the trainer once it has stopped."""
    snap = job.snapshot(fresh=not job.active)
    return dict(snap["results"]) if snap else {}
