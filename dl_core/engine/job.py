"""A training job: a background thread that trains and is observed, never observes.

The job runs a trainer (trainers.py: the `Trainer` contract) and owns what every kind of
training shares: start/pause/step/stop, events, snapshots, divergence, schedules, stopping,
precision and device. It advances in bounded chunks (`advance`: n batches or t seconds)
and reports what happened as events; its own history is built from those same events, so
an executor in another process can drive `advance` and ship the events back to a page
that never notices the difference. Its step loop is public and small (`snapshot_due`,
`train_batch`, `stepped`, `add_losses`, `flush`, `end_epoch`, `take_snapshot`, inside
`collecting`): `advance` is made of it, and so is a gang's turn (gang.py).

Controls are flags the worker reads between batches, so a step is exactly one optimizer
update. Step losses stay on the device and are read back once per chunk: a NaN or
infinite loss found there puts the last good weights back and explains, in plain words,
what happened.
"""
from __future__ import annotations

import math
import secrets
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from ..optim import DEFAULT_RUN_EPOCHS, OPTIMIZERS, SCHEDULES, scheduler
from .controls import Controls
from .parts import CHUNK_S, Precision, TrainConfig, clone_state
from .records import Event, History, Observed
from .stopping import Stopping
from .trainers import SupervisedTrainer, Trainer
from .travel import StateLock, Travelling

if TYPE_CHECKING:  # a job reads its data's tensors only: the engine imports no data module
    from ..data.tensors import TensorData


class TrainingJob(Observed, Travelling, Stopping, Controls):
    """Train `trainer`'s networks under `config`; see the module docstring."""

    def __init__(self, trainer: Trainer, config: TrainConfig = TrainConfig(), executor=None):
        super().__init__(executor)
        self.trainer, self.config = trainer, config
        self.lock = StateLock(self)  # held while weights change; take it to read them
        self._history = History()
        self._events: deque[Event] = deque(maxlen=5000)  # lifecycle, epoch and snapshot events
        self._step_events: deque[Event] = deque(maxlen=100)  # step reports are many: keep the latest only
        self._collect: list[Event] | None = None  # what advance() will return
        self._pending: list[torch.Tensor] = []  # step losses (one row of named losses each) not yet read back
        self._pending_first = 0  # the step of the first of them
        self._loss_names: tuple[str, ...] = ("loss",)  # what the trainer's steps report, in that order
        self._last_snapshot_t = 0.0
        self.last_batches = 0  # batches the latest chunk trained
        self.snapshot_floor_s = 0.0  # the executor's lower bound on snapshot_interval_s (a full room)
        self.uid, self.version = secrets.token_hex(8), 0  # a worker keeps a copy of this job, at this version
        self.copy = 0  # which copy of this job this is: one restored from a saved run is another (travel.py)
        self.measuring = False  # this step records gradient and activation statistics
        self.generator = torch.Generator().manual_seed(config.seed)
        self._device = next(self.model.parameters()).device
        self._order = self._new_order()
        self._pos = 0
        self._precision = {name: Precision(m, config.mixed_precision) for name, m in trainer.models.items()}
        self._new_optimizers()
        self._best: tuple[float, int, dict] | None = None  # (validation loss, epoch, weights) for early stopping
        self._peak: tuple[float, int, dict] | None = None  # (score, epoch, weights): the best so far (collapse)
        self._low_epochs = 0  # epochs in a row far below the peak
        self.collapse: dict | None = None  # set while the run has collapsed: what happened, in words
        self._good_state = self._weights()
        self._record_epoch()

    @classmethod
    def supervised(cls, model: nn.Module, data: TensorData, config: TrainConfig = TrainConfig(),
                   probe: Callable[[nn.Module], dict] | None = None, executor=None) -> "TrainingJob":
        return cls(SupervisedTrainer(model, data, probe), config, executor)

    # ---- what the pages read of the trainer ----
    models = property(lambda self: self.trainer.models)  # every network, by name (the model panel lists them)
    model = property(lambda self: next(iter(self.trainer.models.values())))  # the first: a lab of one network
    data = property(lambda self: getattr(self.trainer, "data", None))
    gradient_labels = property(lambda self: self.trainer.gradient_labels)
    activation_labels = property(lambda self: self.trainer.activation_labels)
    probe = property(lambda self: self.trainer.probe_fn, lambda self, fn: self._set_probe(fn))

    def _set_probe(self, fn) -> None:
        with self.lock:  # never while a chunk is away (its returning trainer would drop the change)
            self.trainer.probe_fn = fn
            self.version += 1  # a worker's copy of this job is out of date

    # ---- controls beyond the worker's (called from the UI thread) ----
    def step_epoch(self) -> None:
        """Train to the end of the current epoch (a whole one from an epoch boundary)."""
        n = self.trainer.n_train
        with self._cond:
            pos = self._pos + self._budget * self.config.batch_size
            left = max(1, math.ceil((n - pos % n) / self.config.batch_size))
        self.step_batch(left)

    def set_config(self, **changes) -> None:
        """Apply changed settings before the next batch, each as a change: a new batch size or
        patience leaves the schedule alone; a new rate rescales the scheduled rate (epoch e
        trains at new rate × the schedule's factor at e); a new schedule or run length moves
        to its own factor at the current epoch; a new optimizer starts its statistics afresh."""
        with self.lock, self._cond:
            new = replace(self.config, **changes)
            if new.optimizer not in OPTIMIZERS or new.schedule not in SCHEDULES:
                raise ValueError(f"Unknown optimizer or schedule {new.optimizer!r} / {new.schedule!r}.")
            old, self.config = self.config, new
            self._tuned += 1  # the next turn carries the optimizers' new settings (travel.state_mark)
            before, self._networks = self._networks, self.trainer.param_groups(new)
            if any(before[n].optimizer != g.optimizer for n, g in self._networks.items()):
                self._new_optimizers()
                self.version += 1  # another kind of optimizer: a worker needs the whole job again
            else:
                for n, opt in self._optimizers.items():
                    kwargs = OPTIMIZERS[self._networks[n].optimizer].kwargs(new.optimizer_settings())
                    for g in opt.param_groups:
                        g.update({k: v for k, v in kwargs.items() if k != "lr"})
            if (new.schedule, new.max_epochs) != (old.schedule, old.max_epochs) or any(
                    before[n].lr != g.lr for n, g in self._networks.items()):
                for n, sched in self._schedulers.items():
                    lr = self._networks[n].lr
                    sched.base_lrs = [lr] * len(sched.base_lrs)
                    for g in sched.optimizer.param_groups:
                        g["initial_lr"], g["lr"] = lr, lr * self._factor(sched.last_epoch)
            if new.mixed_precision != old.mixed_precision:
                self._precision = {n: Precision(m, new.mixed_precision) for n, m in self.trainer.models.items()}
                self.version += 1

    def clone(self, executor=None) -> "TrainingJob":
        """An independent job with this one's weights, settings and history at this moment
        (another browser opening a live run gets this, never control of the original)."""
        with self.lock, self._cond:
            twin = TrainingJob(self.trainer.clone(), self.config, executor or self.executor)
            h = self._history
            twin._history = History(list(h.steps), list(h.epochs), list(h.grad_norms), list(h.activations), h.snapshot,
                                    {n: list(s) for n, s in h.named_steps.items()})
            twin.step, twin.epoch, twin._pos, twin._good_state = self.step, self.epoch, self._pos, self._weights()
            twin._new_optimizers()  # at this epoch of the schedule
        return twin

    def evaluate(self, train: bool = True) -> dict:
        with self.lock:
            return self.trainer.evaluate(train)

    # ---- one chunk of work: the seam an executor in another process drives ----
    def advance(self, max_batches: int | None = None, max_seconds: float = CHUNK_S,
                halt: Callable[[], bool] = lambda: False) -> list[Event]:
        """Train in the calling thread for at most `max_batches` batches or `max_seconds`,
        stopping early when `halt()` turns true; return the events this produced."""
        end, n = time.perf_counter() + max_seconds, 0
        with self.collecting() as collected:
            try:
                while (max_batches is None or n < max_batches) and not halt():
                    n += 1
                    if not self.train_batch():
                        break
                    if time.perf_counter() >= end:
                        break
                self.flush()
            finally:
                self.last_batches = n
        return collected

    # ---- the step loop (advance, and a gang's turn) ----
    @contextmanager
    def collecting(self):
        """The events recorded inside, as a list (what a turn reports)."""
        self._collect = collected = []
        try:
            yield collected
        finally:
            self._collect = None

    @property
    def turn_events(self) -> list[Event]:
        """The events recorded so far inside `collecting` (a worker reports a gang's epochs from them)."""
        return list(self._collect or ())

    @property
    def order(self) -> torch.Tensor:
        """This epoch's example order."""
        return self._order

    @property
    def pos(self) -> int:
        """Examples of this epoch's order trained so far."""
        return self._pos

    @property
    def optimizers(self) -> dict:
        """Each network's torch optimizer (a gang reads and writes their state)."""
        return dict(self._optimizers)

    @property
    def device(self) -> torch.device:
        return self._device

    def held(self) -> tuple:
        """What this job keeps in memory (footprint.py counts it for a session's budget): its
        trainer's networks and data, the optimizers' state and the weights it kept to go back to."""
        return (*vars(self.trainer).values(), self._optimizers, self._good_state, self._best, self._peak)

    def train_batch(self) -> bool:
        """One optimizer step; False if the chunk must end here (the run diverged, or stops)."""
        cfg = self.config
        idx = self._order[self._pos:self._pos + cfg.batch_size]
        self.measuring = self.snapshot_due()
        with self.lock:  # the networks stay in train mode: evaluate() and probes restore it
            out = self.trainer.train_step(idx, self)
            stats = ({"grad_norms": self.trainer.grad_norms(), "activations": self.trainer.take_activations()}
                     if self.measuring and out is not None else None)
        self.stepped(stats)
        if out is not None:  # one loss as it is (no extra operation a step), several as one row
            if isinstance(out, dict):
                self._loss_names, out = tuple(out), torch.stack([v.float() for v in out.values()])
            self.add_losses([out])
        if self._pos >= self.trainer.n_train and not self.end_epoch():
            return False
        if self.measuring:
            return self.take_snapshot()
        return True

    def snapshot_due(self) -> bool:
        """Whether this step records statistics and is followed by a snapshot. A full room's
        floor is spread over 0.8-1.2x by job (its uid): jobs that started together and train
        as one gang otherwise took their snapshots in the same turn, and every page then drew
        its pictures in the same second (those seconds held most of the slow redraws)."""
        floor = self.snapshot_floor_s * (0.8 + 0.4 * int(self.uid[:4], 16) / 0xFFFF)
        return time.perf_counter() - self._last_snapshot_t >= max(self.config.snapshot_interval_s, floor)

    def stepped(self, stats: dict | None) -> None:
        """Count one optimizer step taken (here or in a gang, gang.py), with its measurements."""
        with self._cond:
            self.step += 1
            self._pos += self.config.batch_size
            if self._budget > 0:
                self._budget -= 1
            if stats is not None:
                self._emit("stats", data=stats)

    # the job's side of the trainer's step: autocast, backward and the optimizer update
    def autocast(self, name: str):
        return self._precision[name].autocast()

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backward and one update of network `name` (the trainer calls this from its step)."""
        opt, precision = self._optimizers[name], self._precision[name]
        opt.zero_grad(set_to_none=True)
        precision.backward(loss, opt, unscale=self.measuring or bool(self.config.clip))
        if self.config.clip:
            torch.nn.utils.clip_grad_norm_(self._networks[name].params, self.config.clip)
        precision.step(opt)

    def add_losses(self, rows: list[torch.Tensor]) -> None:
        """The losses of the latest len(rows) steps, still on the device: one tensor per step (its
        named losses, in the order the trainer reports them), read back in bulk by flush()."""
        if not self._pending:
            self._pending_first = self.step - len(rows) + 1
        self._pending.extend(rows)

    def flush(self) -> bool:
        """Read the pending step losses back from the device in one go and report them;
        False if one of them was not finite (then the run has been put back)."""
        if not self._pending:
            return True
        rows = torch.stack(self._pending).reshape(len(self._pending), -1).float().tolist()  # one row a step
        first, self._pending = self._pending_first, []
        bad = next((i for i, row in enumerate(rows) if not all(map(math.isfinite, row))), None)
        with self._cond:
            if bad != 0:
                kept = rows[:bad]
                data = {"first": first, "losses": [row[0] for row in kept]}
                if len(self._loss_names) > 1:  # each named loss as a series of its own
                    data["named"] = {n: [row[i] for row in kept] for i, n in enumerate(self._loss_names)}
                self._emit("step", data=data)
        if bad is None:
            return True
        self._diverged(first + bad, next(v for v in rows[bad] if not math.isfinite(v)))
        return False

    def _factor(self, epoch: int) -> float:
        return SCHEDULES[self.config.schedule].factor(epoch, self.config.max_epochs or DEFAULT_RUN_EPOCHS)

    def _new_optimizers(self) -> None:
        """Fresh optimizers (and their schedules, at the current epoch) for every network, each of
        the kind and rate its trainer asks for, over its trainable parameters only."""
        self._networks = self.trainer.param_groups(self.config)
        settings = self.config.optimizer_settings()
        self._optimizers = {n: OPTIMIZERS[g.optimizer].make(g.params, settings | {"lr": g.lr})
                            for n, g in self._networks.items()}
        self._schedulers = {}
        for n, opt in self._optimizers.items():
            sched = self._schedulers[n] = scheduler(opt, self._factor)
            sched.last_epoch = self.epoch
            for g in opt.param_groups:
                g["initial_lr"], g["lr"] = self._networks[n].lr, self._networks[n].lr * self._factor(sched.last_epoch)

    def _new_order(self) -> torch.Tensor:
        n = self.trainer.n_train
        order = torch.randperm(n, generator=self.generator) if self.config.shuffle else torch.arange(n)
        return order.to(self._device)

    def _weights(self) -> dict:
        return {n: clone_state(m) for n, m in self.trainer.models.items()}

    def _load(self, weights: dict) -> None:
        with self.lock:
            for n, m in self.trainer.models.items():
                m.load_state_dict(weights[n])

    def end_epoch(self, measured: dict | None = None) -> bool:
        """The epoch's bookkeeping; False if training stops here. A gang (gang.py) measures all its
        members at once and hands each its own `measured`: whether its weights are all "finite",
        a copy of its "weights" and its "metrics" (what evaluate() says)."""
        if not self.flush():  # a diverged epoch must not become the "last good" weights
            return False
        if measured is None:
            with self.lock:  # one read for all weights
                measured = {"finite": bool(parameters_to_vector(p for m in self.trainer.models.values()
                                                                for p in m.parameters()).isfinite().all()),
                            "weights": None, "metrics": None}
        if not measured["finite"]:  # the epoch's last update blew up (its loss was still finite)
            self._diverged(self.step + 1, math.inf)
            return False
        with self.lock:
            self._good_state = measured["weights"] or self._weights()
            for sched in self._schedulers.values():
                sched.step()
        self._order = self._new_order()
        with self._cond:
            self._pos = 0
            self.epoch += 1
        self._record_epoch(measured["metrics"])
        if self._stopped_early():
            return False
        if self.config.max_epochs is not None and self.epoch >= self.config.max_epochs:
            self._finish(f"Finished {self.epoch} epochs.")
            return False
        self._watch_collapse()
        return not self._reached_goal()

    def _record_epoch(self, measured: dict | None = None) -> None:
        full = self.config.full_train_eval or self.epoch == 0
        running = self.trainer.running_metrics()
        rates = {n: o.param_groups[0]["lr"] for n, o in self._optimizers.items()}
        each = {f"lr_{n}": lr for n, lr in rates.items()} if len(rates) > 1 else {}  # networks at their own rates
        metrics = {"epoch": self.epoch, "step": self.step, "time": time.time(), "lr": next(iter(rates.values())),
                   **each, **(measured or self.evaluate(train=full))}
        if not full:  # the running means over this epoch's batches
            metrics.update(running)
        with self._cond:
            self._emit("epoch", data=metrics)

    def take_snapshot(self) -> bool:
        """Report the step losses so far and the probe's picture of the networks now."""
        ok = self.flush()
        self._last_snapshot_t = time.perf_counter()
        with self.lock:
            snap = self.trainer.probe()
        if snap is not None:
            with self._cond:
                self._emit("snapshot", data=snap)
        return ok
