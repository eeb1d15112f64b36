"""A training job: a background thread that trains and is observed, never observes.

The worker never touches the UI. It records metrics and events in a
lock-protected history and calls a probe at a fixed wall-clock rate, so the
page can poll at its own pace and live views cost training a bounded share.
Controls (start, pause, step one batch, step one epoch, stop, hyperparameter
changes) are flags the worker reads between batches, so a step is exactly one
optimizer update. A NaN or infinite loss puts the last good weights back and
explains, in plain words, what happened.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from . import layerstats
from .augment import augment_batch
from .jobparts import (LOSSES, OPTIMIZERS, SCHEDULES, Event, History, Precision, TensorData,  # noqa: F401
                       TrainConfig, clone_state, downsample)
from .runner import RUNNER, JobRunner

class TrainingJob:
    """Train `model` on `data` in a background thread; see the module docstring."""

    def __init__(self, model: nn.Module, data: TensorData, config: TrainConfig = TrainConfig(),
                 probe: Callable[[nn.Module], dict] | None = None, runner: JobRunner = RUNNER):
        self.model, self.data, self.config = model, data, config
        self.probe, self.runner = probe, runner
        self.loss_fn = LOSSES[data.task]()
        self.lock = threading.RLock()  # held while weights change; take it to read them
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._want_run = False
        self._budget = 0  # optimizer steps still to take while paused
        self._stop = False
        self.state = "idle"
        self.message = ""
        self.step = 0
        self.epoch = 0
        self._history = History()
        self._events: deque[Event] = deque(maxlen=5000)  # lifecycle, epoch and snapshot events
        self._step_events: deque[Event] = deque(maxlen=100)  # steps are many: keep the latest only
        self._snapshot: dict | None = None
        self._last_snapshot_t = 0.0
        self._has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self._gen = torch.Generator().manual_seed(config.seed)
        self._order = self._new_order()
        self._pos = 0
        self._optimizer = OPTIMIZERS[config.optimizer][1](model.parameters(), config)
        self._scheduler = SCHEDULES[config.schedule][1](self._optimizer, config)
        self._best: tuple[float, int, dict] | None = None  # (validation loss, epoch, weights) for early stopping
        self._good_state = clone_state(model)
        self._x_all = torch.cat([data.x_train, data.x_test])
        self._epoch_loss = self._epoch_correct = self._epoch_seen = 0  # running sums, see full_train_eval
        named = [(n, p) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
        self._weights = [p for _, p in named]
        self.gradient_labels = layerstats.weight_labels(model, [n for n, _ in named])
        self._precision = Precision(model, config.mixed_precision)
        self.activation_labels = layerstats.labels(model)
        self._record_epoch()

    # ---- controls (called from the UI thread) ----
    def start(self) -> None:
        """Train continuously (also resumes after pause, stop, finish or failure)."""
        with self._cond:
            self._want_run = True
            self._ensure_thread()

    resume = start

    def pause(self) -> None:
        with self._cond:
            self._want_run = False
            self._budget = 0
            self._cond.notify_all()

    def step_batch(self, n: int = 1) -> None:
        """Take exactly `n` optimizer steps, then stay paused."""
        with self._cond:
            self._want_run = False
            self._budget += n
            self._ensure_thread()

    def step_epoch(self) -> None:
        """Train to the end of the current epoch (a whole one from an epoch boundary)."""
        n = len(self.data.x_train)
        with self._cond:
            pos = self._pos + self._budget * self.config.batch_size
            left = max(1, math.ceil((n - pos % n) / self.config.batch_size))
        self.step_batch(left)

    def stop(self) -> None:
        """End the worker thread; the model keeps its weights and can train on later."""
        with self._cond:
            self._stop = True
            self._want_run = False
            self._budget = 0
            self._cond.notify_all()
        self.runner.cancel(self)

    def join(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def set_config(self, **changes) -> None:
        """Change hyperparameters; applied before the next batch."""
        with self.lock, self._cond:
            new = replace(self.config, **changes)
            if new.optimizer not in OPTIMIZERS or new.schedule not in SCHEDULES:
                raise ValueError(f"Unknown optimizer or schedule {new.optimizer!r} / {new.schedule!r}.")
            if new.optimizer != self.config.optimizer:
                self._optimizer = OPTIMIZERS[new.optimizer][1](self.model.parameters(), new)
            for g in self._optimizer.param_groups:
                g["lr"] = g["initial_lr"] = new.lr
                if "momentum" in g and new.optimizer == "momentum":
                    g["momentum"] = new.momentum
            if (new.optimizer, new.lr, new.schedule, new.max_epochs) != \
                    (self.config.optimizer, self.config.lr, self.config.schedule, self.config.max_epochs):
                self._scheduler = SCHEDULES[new.schedule][1](self._optimizer, new)
            self.config = new

    # ---- observation ----
    def status(self) -> dict:
        with self._cond:
            return {"state": self.state, "message": self.message, "step": self.step, "epoch": self.epoch,
                    "queue_position": self.runner.position(self), "busy": self._want_run or self._budget > 0}

    @property
    def active(self) -> bool:
        """True while the worker has work to do (the page should keep polling)."""
        with self._cond:
            return self._thread is not None and self._thread.is_alive() and (self._want_run or self._budget > 0)

    def view(self, max_points: int = 500) -> dict:
        """A copy of the history, downsampled for charts."""
        with self._cond:
            h = self._history
            return {"steps": downsample(h.steps, max_points), "epochs": downsample(h.epochs, max_points),
                    "grad_norms": downsample(h.grad_norms, max_points),
                    "activations": downsample(h.activations, max_points),
                    "events": sorted([*self._events, *self._step_events], key=lambda e: e.time)}

    def snapshot(self, fresh: bool = False) -> dict | None:
        """The latest probe result; `fresh` takes one now (under the weights lock)."""
        if fresh and self.probe is not None:
            with self.lock:
                snap = self.probe(self.model)
            with self._cond:
                self._snapshot = snap
        with self._cond:
            return self._snapshot

    def evaluate(self, train: bool = True) -> dict:
        """Loss (and accuracy for classes) on the test set, and on the train set unless
        `train` is False, in eval mode, from one forward pass (it runs every epoch)."""
        d, n = self.data, len(self.data.x_train) if train else 0
        with self.lock:
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                pred = self.model(self._x_all if train else d.x_test)
            self.model.train(was_training)
        out = {}
        splits = (("train", pred[:n], d.y_train), ("test", pred[n:], d.y_test)) if train else \
            (("test", pred, d.y_test),)
        for split, p, y in splits:
            empty = len(y) == 0
            out[f"{split}_loss"] = None if empty else float(self.loss_fn(p, y))
            out[f"{split}_acc"] = (None if empty or d.task != "classification"
                                   else float((p.argmax(1) == y).float().mean()))
        return out

    # ---- worker ----
    def _ensure_thread(self) -> None:
        """Called with self._cond held, from start and step."""
        self.runner.reserve(self)
        if self.runner.position(self) is not None:
            self.state = "queued"
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="training-job", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _emit(self, kind: str, message: str = "") -> None:
        log = self._step_events if kind == "step" else self._events
        log.append(Event(kind, self.step, self.epoch, time.time(), message))

    def _run(self) -> None:
        # Lock order, everywhere: self.lock (weights) before self._cond (state).
        holding = False
        with self.lock:
            self.model.train()
        try:
            while True:
                with self._cond:
                    idle = not self._stop and not self._want_run and self._budget == 0
                    if idle and self.state == "running":
                        self.state = "paused"
                        self._emit("paused")
                if idle:
                    if holding:
                        self.runner.release(self)
                        holding = False
                    self._take_snapshot()
                    with self._cond:
                        while not self._stop and not self._want_run and self._budget == 0:
                            self._cond.wait()
                with self._cond:
                    if self._stop:
                        break
                    if not holding:
                        self.state = "queued"
                if not holding:
                    holding = self.runner.acquire(self, abort=lambda: self._stop or not (self._want_run or
                                                                                         self._budget > 0))
                    if not holding:
                        if self._stop:
                            break
                        with self._cond:  # paused while waiting: leave the queue, wait for the next start
                            self.state = "paused"
                        continue
                    with self._cond:
                        self.state = "running"
                        self._emit("started")
                self._train_one_batch()
        except Exception as exc:  # reaches the page as a message; the app stays usable
            with self._cond:
                self.state, self.message = "failed", f"Training stopped with an error: {exc}"
                self._emit("failed", self.message)
        finally:
            if holding:
                self.runner.release(self)
            with self._cond:
                if self.state not in ("failed", "finished"):
                    self.state = "stopped"
                    self._emit("stopped")
                self._want_run, self._budget = False, 0

    def _train_one_batch(self) -> None:
        cfg, data = self.config, self.data
        idx = self._order[self._pos:self._pos + cfg.batch_size]
        value = norms = acts = None
        snap_due = time.perf_counter() - self._last_snapshot_t >= cfg.snapshot_interval_s
        if not (self._has_bn and len(idx) < 2):  # batch norm cannot normalise one example
            with self.lock:  # the model stays in train mode: evaluate() and probes restore it
                self._optimizer.zero_grad(set_to_none=True)
                xb = data.x_train[idx]
                if cfg.augment:
                    xb = augment_batch(xb, cfg.augment, self._gen)
                with layerstats.recording(self.model) if snap_due else nullcontext() as acts, \
                        self._precision.autocast():
                    out = self.model(xb)
                    loss = self.loss_fn(out, data.y_train[idx])
                if not cfg.full_train_eval:
                    self._epoch_loss += loss.item() * len(idx)
                    self._epoch_seen += len(idx)
                    if data.task == "classification":
                        self._epoch_correct += int((out.argmax(1) == data.y_train[idx]).sum())
                if cfg.l1 or cfg.l2:
                    loss = loss + sum(cfg.l1 * w.abs().sum() + cfg.l2 * (w * w).sum() for w in self._weights)
                value = loss.item()
                if math.isfinite(value):
                    self._precision.backward(loss, self._optimizer, unscale=snap_due)
                    norms = self._grad_norms() if snap_due else None
                    self._precision.step(self._optimizer)
                else:
                    self.model.load_state_dict(self._good_state)
                    self._optimizer = OPTIMIZERS[cfg.optimizer][1](self.model.parameters(), cfg)
                    self._scheduler = SCHEDULES[cfg.schedule][1](self._optimizer, cfg)
            if not math.isfinite(value):
                self._diverged(value)
                return
        with self._cond:
            self.step += 1
            self._pos += cfg.batch_size
            if value is not None:
                self._history.steps.append((self.step, value))
            if norms is not None:
                self._history.grad_norms.append((self.step, norms))
            if acts:
                self._history.activations.append((self.step, acts))
            self._emit("step")
            if self._budget > 0:
                self._budget -= 1
        if self._pos >= len(data.x_train):
            self._end_epoch()
        if snap_due:
            self._take_snapshot()

    def _new_order(self) -> torch.Tensor:
        n = len(self.data.x_train)
        return torch.randperm(n, generator=self._gen) if self.config.shuffle else torch.arange(n)

    def _grad_norms(self) -> list[float]:
        return [float(w.grad.norm()) if w.grad is not None else 0.0 for w in self._weights]

    def _end_epoch(self) -> None:
        with self.lock:
            self._good_state = clone_state(self.model)
            if self._scheduler is not None:
                self._scheduler.step()
        self._order = self._new_order()
        with self._cond:
            self._pos = 0
            self.epoch += 1
        self._record_epoch()
        if self._stopped_early():
            return
        if self.config.max_epochs is not None and self.epoch >= self.config.max_epochs:
            self._finish(f"Finished {self.epoch} epochs.")

    def _finish(self, message: str) -> None:
        with self._cond:
            self._want_run, self._budget = False, 0
            self.state, self.message = "finished", message
            self._emit("finished", message)

    def _stopped_early(self) -> bool:
        """Early stopping: keep the best validation weights; stop after `patience` epochs without progress."""
        patience, loss = self.config.early_stop_patience, self._history.epochs[-1]["test_loss"]
        if not patience or loss is None:
            return False
        if self._best is None or loss < self._best[0]:
            self._best = (loss, self.epoch, clone_state(self.model))
            return False
        if self.epoch - self._best[1] < patience:
            return False
        with self.lock:
            self.model.load_state_dict(self._best[2])
        self._finish(f"Stopped early at epoch {self.epoch}: the validation loss has not improved for {patience} "
                     f"epochs, a sign the network has started to overfit. The weights from epoch {self._best[1]} "
                     "(the best so far) are back in place.")
        return True

    def _record_epoch(self) -> None:
        full = self.config.full_train_eval or self.epoch == 0
        metrics = {"epoch": self.epoch, "step": self.step, "time": time.time(),
                   "lr": self._optimizer.param_groups[0]["lr"], **self.evaluate(train=full)}
        if not full:  # the running means over this epoch's batches
            seen = max(self._epoch_seen, 1)
            metrics["train_loss"] = self._epoch_loss / seen
            metrics["train_acc"] = self._epoch_correct / seen if self.data.task == "classification" else None
        self._epoch_loss = self._epoch_correct = self._epoch_seen = 0
        with self._cond:
            self._history.epochs.append(metrics)
            self._emit("epoch")

    def _take_snapshot(self) -> None:
        self._last_snapshot_t = time.perf_counter()
        if self.probe is None:
            return
        with self.lock:
            snap = self.probe(self.model)
        with self._cond:
            self._snapshot = snap
            self._emit("snapshot")

    def _diverged(self, value: float) -> None:
        """Explain (the last good weights are already back); the learner can lower the rate and go on."""
        kind = "NaN (not a number)" if math.isnan(value) else "infinite"
        with self._cond:
            self._want_run, self._budget = False, 0
            self.state = "failed"
            self.message = (f"Learning rate too high: the loss exploded (became {kind}) at step {self.step + 1}, "
                            f"epoch {self.epoch + 1}. Each update overshot the minimum by more than the last, so "
                            f"the weights blew up. The model was put back to its weights at the end of epoch "
                            f"{self.epoch}; lower the learning rate (now {self.config.lr:g}) and train again.")
            self._emit("failed", self.message)
        self._pos = 0
        self._order = self._new_order()
