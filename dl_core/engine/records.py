"""What a training job records and how a page reads it: events, the history they build, and the
job's observation methods (a mixin of TrainingJob: view, latest, best, snapshot)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Event:
    """What a job reports. `data` carries the measurements (step losses, an epoch's metrics, a
    snapshot), so whoever receives the events, in this process or another, can rebuild the
    job's whole history with History.apply."""

    kind: str  # step | stats | epoch | snapshot | finished | stopped | failed | paused | started | collapse
    step: int
    epoch: int
    time: float
    message: str = ""
    data: dict | None = None


@dataclass
class History:
    """Everything the job has measured; read it through TrainingJob.view()."""

    steps: list = field(default_factory=list)  # (step, batch loss): the trainer's first named loss
    epochs: list = field(default_factory=list)  # dicts: epoch, step, train_loss, test_loss, train_acc, test_acc
    grad_norms: list = field(default_factory=list)  # (step, [norm per parametrised layer])
    activations: list = field(default_factory=list)  # (step, [(mean, std, flat share) per activation layer])
    snapshot: dict | None = None  # the latest probe result
    named_steps: dict = field(default_factory=dict)  # name -> [(step, loss)], for a trainer of several losses

    # Full resolution for the latest KEEP entries of each series, every other one before them
    # (again and again as a run goes on): the charts show at most 500 points anyway, and a
    # Playground run at full speed, kept in full, would cost a lot of memory an hour per learner.
    KEEP = {"steps": 20_000, "epochs": 5_000, "grad_norms": 2_000, "activations": 2_000}

    def apply(self, event: Event) -> None:
        """Record what `event` measured (lifecycle events carry nothing to record)."""
        d = event.data or {}
        if event.kind == "step":
            self._add("steps", enumerate(d["losses"], d["first"]))
            for name, losses in d.get("named", {}).items():
                self._add("steps", enumerate(losses, d["first"]), self.named_steps.setdefault(name, []))
        elif event.kind == "stats":
            if d.get("grad_norms") is not None:
                self._add("grad_norms", [(event.step, d["grad_norms"])])
            if d.get("activations"):
                self._add("activations", [(event.step, d["activations"])])
        elif event.kind == "epoch":
            self._add("epochs", [d])
        elif event.kind == "snapshot":
            self.snapshot = d

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"named_steps": {}} | state)  # (saved before named losses)

    def _add(self, name: str, items, series: list | None = None) -> None:
        series, keep = getattr(self, name) if series is None else series, self.KEEP[name]
        series.extend(items)
        if len(series) > 2 * keep:  # thin the older part: its first and last entries stay
            old = series[:-keep]
            series[:] = old[:-1:2] + old[-1:] + series[-keep:]


def downsample(seq: list, n: int) -> list:
    if len(seq) <= n:
        return list(seq)
    stride = len(seq) / n
    return [seq[int(i * stride)] for i in range(n - 1)] + [seq[-1]]


class Observed:
    """What pages read of a TrainingJob, under its condition lock, and how what it measures is recorded."""

    def view(self, max_points: int = 500) -> dict:
        """A copy of the history, downsampled for charts."""
        with self._cond:
            h = self._history
            epochs = h.epochs + self._live["epochs"] if self._live else h.epochs  # a turn's epochs so far
            return {"steps": downsample(h.steps, max_points), "epochs": downsample(epochs, max_points),
                    "named_steps": {n: downsample(s, max_points) for n, s in h.named_steps.items()},
                    "grad_norms": downsample(h.grad_norms, max_points),
                    "activations": downsample(h.activations, max_points),
                    "events": sorted([*self._events, *self._step_events], key=lambda e: e.time)}

    def latest(self, epochs: int = 1) -> tuple[list[dict], tuple | None]:
        """The newest `epochs` epoch rows and the newest step, without view()'s copies of the
        whole history: a live view's counters read them several times a second per learner."""
        with self._cond:
            h, live = self._history, self._live["epochs"] if self._live else []
            return (h.epochs[-epochs:] + live[-epochs:])[-epochs:], (h.steps[-1] if h.steps else None)

    def best(self, metric: str, pick=min) -> float | None:
        """The best `metric` ("test_loss", "test_acc", …) over every epoch kept: a chart's view
        thins a long run to max_points epochs, and the best one may be among those left out."""
        with self._cond:
            seen = [e[metric] for e in self._history.epochs if e.get(metric) is not None]
        return pick(seen) if seen else None

    def snapshot(self, fresh: bool = False) -> dict | None:
        """The latest probe result; `fresh` takes one now (under the weights lock)."""
        if fresh:
            with self.lock:
                snap = self.trainer.probe()
            with self._cond:
                self._history.snapshot = snap
        with self._cond:
            return self._history.snapshot

    def _emit(self, kind: str, message: str = "", data: dict | None = None) -> None:
        event = Event(kind, self.step, self.epoch, time.time(), message, data)
        self._record(event)
        if self._collect is not None:
            self._collect.append(event)

    def _record(self, event: Event) -> None:
        """Into the history, and into the event log: a snapshot there without its pictures (the
        history keeps the latest; a log of them all grew fast, several pictures a second); a
        new snapshot also goes to `on_snapshot`, in the process that records it (a worker's
        copy has none: its snapshots reach the page's process when the turn comes back)."""
        kept = replace(event, data=None) if event.kind == "snapshot" else event
        (self._step_events if event.kind == "step" else self._events).append(kept)
        self._history.apply(event)
        if event.kind == "snapshot" and self.on_snapshot is not None:
            self.on_snapshot(event.data)  # under the job's locks: the hook only hands the snapshot on
