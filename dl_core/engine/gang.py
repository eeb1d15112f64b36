"""A room's networks trained as one: a gang of same-architecture jobs takes one stacked step.

Tiny networks are bound by PyTorch's per-operation overhead (a step costs about the same
whatever the layer sizes), so a room of learners training the Playground's networks spends nearly all
its time on overhead. Jobs whose networks have the same layers, whose optimizers are the same
kind with the same settings, and who stand at the same place of equally long epochs form a
gang: their weights become the rows of one flat tensor (each job's parameters are views
into its row, so every job always sees its own current weights); one forward pass computes
every row's loss on that job's own batch (batched matrix products, or `vmap` over
`torch.func.functional_call` for networks beyond Linear layers and activations), one backward
fills every row's gradient, and one optimizer update moves all rows. The update is
torch.optim's, written row-wise, because each job has its own step count (Adam's bias
correction) and rate; a test holds it to torch.optim's own result. At each epoch's end one
forward pass scores every job's training and test sets (`Gang.measure`), as each job's own
evaluation would.

Everything else stays each job's own, through the job's public step loop (job.py): its data
order, epochs, snapshots, schedules, stopping and divergence checks run between steps exactly
as when it trains alone.
Gang turns end at an epoch boundary, so jobs that trained apart can meet at position 0.
"""
from __future__ import annotations

import copy
import time
import weakref
from contextlib import ExitStack
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from .. import layerstats
from ..activations import key_of
from ..optim import OPTIMIZERS
from ..spec import SpecNet
from .trainers import SupervisedTrainer, scores

ROW_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")  # those written row-wise below
MAX_GANG = 32  # jobs in one gang: past this, a step's arithmetic outweighs the overhead it saves
MAX_EPOCH_STEPS = 64  # small epochs only: a turn runs on to the epoch's end
_STATIC: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> its part of the key (None: none)


def gang_key(job) -> tuple | None:
    """Jobs with equal keys can train as one gang now; None: this job trains alone (a GPU, a
    random layer such as dropout, batch norm's running statistics, augmentation, images,
    sequences, gradient clipping...)."""
    cfg, trainer = job.config, job.trainer
    if (not isinstance(trainer, SupervisedTrainer) or job.device.type != "cpu" or cfg.augment or cfg.clip
            or cfg.mixed_precision or not cfg.full_train_eval or cfg.optimizer not in ROW_OPTIMIZERS
            or trainer.data.x_train.dim() != 2 or not trainer.data.x_train.is_floating_point()
            or -(-trainer.n_train // cfg.batch_size) > MAX_EPOCH_STEPS or not trainer.gangs):
        return None
    model = job.model
    static = _STATIC.get(model, False)
    if static is False:
        random_or_stateful = any(isinstance(m, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm,
                                                nn.RNNBase, nn.Embedding)) for m in model.modules()) \
            or any(True for _ in model.buffers())
        static = _STATIC[model] = None if random_or_stateful else (
            repr(model), tuple((n, tuple(p.shape)) for n, p in model.named_parameters()),
            trainer.data.task, tuple(trainer.data.x_train.shape[1:]), trainer.data.y_train.dtype)
    if static is None:
        return None
    settings = OPTIMIZERS[cfg.optimizer].kwargs(cfg.optimizer_settings())
    settings.pop("lr")
    return (static, cfg.optimizer, tuple(sorted(settings.items())), cfg.batch_size, trainer.n_train,
            len(trainer.data.x_test), cfg.l1, cfg.l2, job.pos)


def stacked_forward(model: nn.Module) -> Callable | None:
    """The forward pass of k networks like `model` at once, (weights [k, ...] by name, inputs
    [k, n, features]) -> outputs [k, n, ...], by batched matrix products, where every layer is
    a Linear or an element-wise activation (the Playground's networks); None for any other
    network (the gang then vmaps torch.func.functional_call, which computes the same, more
    slowly for the Playground's networks)."""
    layers = list(model.layers) if isinstance(model, SpecNet) else []
    if not layers or not all(isinstance(m, nn.Linear) or key_of(m) for m in layers):
        return None

    def forward(params: dict, x: torch.Tensor) -> torch.Tensor:
        for i, m in enumerate(layers):
            if isinstance(m, nn.Linear):
                w, b = params[f"layers.{i}.weight"].transpose(1, 2), params.get(f"layers.{i}.bias")
                x = torch.bmm(x, w) if b is None else torch.baddbmm(b.unsqueeze(1), x, w)
            else:
                x = m(x)
        return x

    return forward


class RowOptimizer:
    """torch.optim's SGD (with momentum, Nesterov), Adam and AdamW updates on a [jobs, weights]
    tensor, each row with its own rate and step count, its state read from and written back to
    each job's own torch optimizer."""

    def __init__(self, kind: str, settings: dict, optimizers: list, params: list[list[torch.Tensor]]):
        self.kind, self.s = kind, OPTIMIZERS[kind].kwargs(settings)
        self.optimizers, self.params = optimizers, params
        self.adam = kind in ("adam", "adamw")
        states = [[opt.state.get(p, {}) for p in ps] for opt, ps in zip(optimizers, params)]
        self.lr = torch.tensor([[opt.param_groups[0]["lr"]] for opt in optimizers], dtype=torch.float64)
        if self.adam:
            self.steps = torch.tensor([[float(st[0].get("step", 0.0)) if st else 0.0] for st in states],
                                      dtype=torch.float64)
            self.m, self.v = (self._rows(states, name) for name in ("exp_avg", "exp_avg_sq"))
        elif self.s.get("momentum"):
            self.has_buf = torch.tensor([[bool(st) and st[0].get("momentum_buffer") is not None] for st in states])
            self.buf = self._rows(states, "momentum_buffer")

    def _rows(self, states, name) -> torch.Tensor:
        return torch.stack([torch.cat([(st.get(name) if st.get(name) is not None else torch.zeros_like(p)).reshape(-1)
                                       for st, p in zip(sts, ps)]) for sts, ps in zip(states, self.params)])

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        lr = self.lr.to(p.dtype)
        if self.adam:
            b1, b2 = self.s["betas"]
            if self.kind == "adamw":
                p.mul_(1 - lr * self.s["weight_decay"])
            self.steps += 1
            self.m.lerp_(g, 1 - b1)
            self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
            size = (self.lr / (1 - b1 ** self.steps)).to(p.dtype)  # per row, in double as torch.optim's floats
            root = ((1 - b2 ** self.steps) ** 0.5).to(p.dtype)
            p.sub_(size * self.m / (self.v.sqrt() / root + 1e-8))
            return
        if self.s.get("momentum"):
            mom = self.s["momentum"]
            self.buf.copy_(torch.where(self.has_buf, self.buf * mom + g, g))
            self.has_buf.fill_(True)
            g = g + mom * self.buf if self.s.get("nesterov") else self.buf
        p.sub_(lr * g)

    def write_back(self, row: int, offsets: list[tuple[int, int]]) -> None:
        """Row `row`'s state into its job's own optimizer (left alone if the job replaced it)."""
        opt, params = self.optimizers[row], self.params[row]
        for p, (a, b) in zip(params, offsets):
            if self.adam:
                opt.state[p] = {"step": torch.tensor(float(self.steps[row, 0])),
                                "exp_avg": self.m[row, a:b].view_as(p).clone(),
                                "exp_avg_sq": self.v[row, a:b].view_as(p).clone()}
            elif self.s.get("momentum") and bool(self.has_buf[row, 0]):
                opt.state[p] = {"momentum_buffer": self.buf[row, a:b].view_as(p).clone()}


class Gang:
    """The jobs' weights as rows of one tensor for the duration of a turn; see the docstring."""

    def __init__(self, jobs: list):
        self.jobs = list(jobs)
        first = self.jobs[0]
        named = list(first.model.named_parameters())
        self.shapes = [(n, p.shape) for n, p in named]
        ends = torch.tensor([p.numel() for _, p in named]).cumsum(0).tolist()
        self.offsets = list(zip([0, *ends[:-1]], ends))
        self.params = [list(j.model.parameters()) for j in self.jobs]
        with torch.no_grad():
            flat = torch.stack([torch.cat([p.reshape(-1) for p in ps]) for ps in self.params])
        self.flat = flat.requires_grad_()
        self._bind()
        self.optimizers = [j.optimizers["model"] for j in self.jobs]
        for opt in self.optimizers:  # stepped here, row-wise: their schedules must not warn that they were not
            opt._opt_called = True
        self.opt = RowOptimizer(first.config.optimizer, first.config.optimizer_settings(), self.optimizers,
                                self.params)
        self.x = torch.stack([j.data.x_train for j in self.jobs])
        self.y = torch.stack([j.data.y_train for j in self.jobs])
        self.x_all = torch.stack([j.trainer.x_all for j in self.jobs])  # what each epoch's end measures
        self.y_all = torch.stack([j.trainer.y_all for j in self.jobs])
        self.orders = torch.stack([j.order for j in self.jobs])
        self.rows = torch.arange(len(self.jobs))[:, None]
        self.batch, self.losses = first.config.batch_size, []
        self.cfg, self._loss_each = first.config, first.trainer.loss_each
        self._penalised = ([n for n, p in named if n.endswith("weight") and p.dim() > 1]
                           if self.cfg.l1 or self.cfg.l2 else [])
        self._predict = stacked_forward(first.model)
        if self._predict is None:
            base = copy.deepcopy(first.model).to("meta")
            self._predict = vmap(lambda params, x: functional_call(base, params, (x,)))

    def _bind(self) -> None:
        """Each job's parameters become views into its row (they change as the rows do)."""
        rows = self.flat.detach()
        for k, ps in enumerate(self.params):
            for p, (a, b) in zip(ps, self.offsets):
                p.data = rows[k, a:b].view_as(p)

    @property
    def pos(self) -> int:
        return self.jobs[0].pos

    def _params(self, flat: torch.Tensor) -> dict:
        k = len(self.jobs)
        return {n: flat[:, a:b].view(k, *shape) for (n, shape), (a, b) in zip(self.shapes, self.offsets)}

    def _losses(self, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each row's loss on its own batch, as SupervisedTrainer.train_step computes it alone
        (the mean over the batch's losses, plus the penalties on weights)."""
        k, cfg = len(self.jobs), self.cfg
        losses = self._loss_each(self._predict(params, x).flatten(0, 1), y.flatten(0, 1)).reshape(k, -1).mean(1)
        for n in self._penalised:
            w = params[n].flatten(1)
            losses = losses + cfg.l1 * w.abs().sum(1) + cfg.l2 * (w * w).sum(1)
        return losses

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of every row on its job's next batch: (losses [jobs], the inputs)."""
        idx = self.orders[:, self.pos:self.pos + self.batch]
        xb, yb = self.x[self.rows, idx], self.y[self.rows, idx]
        losses = self._losses(self._params(self.flat), xb, yb)
        self.flat.grad = None
        losses.sum().backward()  # rows are independent: the sum's gradient is each row's own
        self.opt.step(self.flat.data, self.flat.grad)
        self.losses.append(losses.detach())
        return losses, xb

    def measure(self) -> list[dict]:
        """At an epoch's end, for every job at once, what TrainingJob.end_epoch measures alone:
        whether its weights are all "finite", a copy of its "weights" (its state_dict: a gang's
        networks hold no buffers) and its "metrics", its trainer's `evaluate()` on the train and
        test sets (eval mode changes nothing in a gang's networks: gang_key sees to that)."""
        with torch.no_grad():
            rows = self.flat.detach()
            finite = rows.isfinite().all(1).tolist()
            metrics = scores([j.trainer for j in self.jobs], self._predict(self._params(rows), self.x_all),
                             self.y_all, train=True)
            copies = [{"model": {n: row[a:b].view(shape) for (n, shape), (a, b) in zip(self.shapes, self.offsets)}}
                      for row in (r.clone() for r in rows)]  # each its own storage (a saved run holds one)
        return [{"finite": f, "weights": w, "metrics": m} for f, w, m in zip(finite, copies, metrics)]

    def hand_losses(self) -> None:
        """The step losses so far, to each job's pending list (it reads them back in bulk)."""
        if not self.losses:
            return
        per_job = torch.stack(self.losses).t()
        for job, row in zip(self.jobs, per_job):
            job.add_losses(list(row.unbind()))
        self.losses = []

    def stats(self, k: int, xb: torch.Tensor) -> dict:
        """What a measuring step records (training.py): gradient sizes and each layer's outputs."""
        job, grad = self.jobs[k], self.flat.grad[k]
        norms = [float(grad[a:b].norm()) for (n, shape), (a, b) in zip(self.shapes, self.offsets)
                 if n.endswith("weight") and len(shape) > 1]
        with torch.no_grad(), layerstats.recording(job.model) as acts:
            job.model(xb[k])
        return {"grad_norms": norms, "activations": acts or None}

    def release(self) -> None:
        """Every job gets its own weights and optimizer state back (no view into the rows)."""
        self.hand_losses()
        for k, (job, ps) in enumerate(zip(self.jobs, self.params)):
            for p in ps:
                p.data = p.data.clone()
            if job.optimizers["model"] is self.optimizers[k]:
                self.opt.write_back(k, self.offsets)


def train_many(jobs: list, budgets: list[int | None], max_s: float,
               halt: Callable[[], bool] = lambda: False, tick: Callable[[], None] = lambda: None) -> list[list]:
    """Each job's events after a turn for all of `jobs`: those that can still form a gang with
    the first train as one (their settings may have changed since the executor grouped them),
    the others alone, each as long as its share of the turn. `tick()` at each of the gang's
    epoch boundaries (a worker reports progress then)."""
    key = gang_key(jobs[0])
    together = [key is not None and gang_key(j) == key for j in jobs]
    events = dict(zip(jobs, train_gang([j for j, t in zip(jobs, together) if t],
                                       [b for b, t in zip(budgets, together) if t], max_s, halt, tick)
                      if any(together) else []))
    for job, budget, t in zip(jobs, budgets, together):
        if not t:
            events[job] = job.advance(budget, max_s / len(jobs), halt=lambda: halt() or job.halted())
    return [events[j] for j in jobs]


def train_gang(jobs: list, budgets: list[int | None], max_s: float,
               halt: Callable[[], bool] = lambda: False, tick: Callable[[], None] = lambda: None) -> list[list]:
    """Train `jobs` as one gang for about `max_s` seconds (to an epoch's end), each for at most
    its budget of steps; return each job's events, as TrainingJob.advance does. The turn ends
    at the epoch boundary nearest `max_s`, not the first one past it: on busy cores an epoch is
    long next to a turn, and turns ran far past the time asked. `tick()` at each boundary."""
    collecting = ExitStack()
    events = [collecting.enter_context(job.collecting()) for job in jobs]
    done = dict.fromkeys(jobs, 0)
    limit = dict(zip(jobs, budgets))
    gang, began = Gang(jobs), time.perf_counter()
    end, epoch_began = began + max_s, began if gang.pos == 0 else None
    try:
        while gang.jobs and not halt():
            measuring = [j.snapshot_due() for j in gang.jobs]
            _, xb = gang.step()
            leaving = set()
            for k, job in enumerate(gang.jobs):
                done[job] += 1
                job.stepped(gang.stats(k, xb) if measuring[k] else None)
            if gang.pos >= gang.jobs[0].trainer.n_train:
                gang.hand_losses()
                for k, (job, measured) in enumerate(zip(gang.jobs, gang.measure())):
                    if not job.end_epoch(measured):
                        leaving.add(job)
                    gang.orders[k] = job.order
                    gang.opt.lr[k, 0] = job.optimizers["model"].param_groups[0]["lr"]
            for k, job in enumerate(gang.jobs):
                if measuring[k] and job not in leaving:
                    gang.hand_losses()
                    if not job.take_snapshot():
                        leaving.add(job)
                if job.halted() or (limit[job] is not None and done[job] >= limit[job]):
                    leaving.add(job)
            now = time.perf_counter()
            if gang.pos == 0:  # a boundary: would the next epoch (as long as this one) end nearer the end?
                tick()
                if now >= end or (epoch_began is not None and now + (now - epoch_began) / 2 >= end):
                    break
                epoch_began = now
            elif now >= end + max_s:
                break
            if leaving:
                gang.release()
                rest = [j for j in gang.jobs if j not in leaving]
                gang = Gang(rest) if rest else None
                if gang is None:
                    break
    finally:
        if gang is not None:
            gang.release()
        with collecting:
            for job in jobs:
                try:
                    job.flush()
                finally:
                    job.last_batches = done[job]
    return events
