"""What a training job is made of: its settings and what it records.

Kept apart from the job's thread logic (training.py) so each reads in one sitting.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

CHUNK_S = 0.1  # the longest chunk: a job reads its losses back and checks its controls at least this often

@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 0.03
    batch_size: int = 32
    momentum: float = 0.9  # these four feed dl_core.optim.OPTIMIZERS: each optimizer reads its own
    beta1: float = 0.9
    beta2: float = 0.999  # Adam's second-moment decay, RMSprop's α
    weight_decay: float = 0.01  # AdamW's decoupled decay
    l1: float = 0.0  # penalties on weights (not biases), as TensorFlow Playground applies them
    l2: float = 0.0
    max_epochs: int | None = None  # None: train until paused or stopped
    shuffle: bool = True  # False visits the training set in its stored order every epoch
    # True: after each epoch, re-measure the whole training set (exact; cheap for 2-D data).
    # False: report the running mean over the epoch's batches, as Keras does, and measure
    # only the held-out set — for image data, where a full pass would cost ~40 % extra.
    full_train_eval: bool = True
    schedule: str = "constant"  # a dl_core.optim.SCHEDULES key
    early_stop_patience: int | None = None  # stop when validation loss has not improved for this many epochs
    augment: tuple[str, ...] = ()  # keys of dl_core.augment.AUGMENTATIONS, applied to each training batch
    # float16 autocast + loss scaling on CUDA (bfloat16 autocast elsewhere): tensor cores run
    # convolutions several times faster in half precision; tiny 2-D networks gain nothing.
    mixed_precision: bool = False
    # Rescale the gradient to at most this norm before each update (None: never). Recurrent
    # networks need it: a gradient through many time steps can explode in one step.
    clip: float | None = None
    snapshot_interval_s: float = 0.25
    seed: int = 0
    # Pacing, so there is something to watch: at most this many steps a second (None: full speed;
    # the executor holds a paced job back between its turns, so slow motion holds no lane) ...
    steps_per_s: float | None = None
    # ... and stop conditions besides max_epochs: the held-out accuracy or loss reaching a goal.
    target_acc: float | None = None
    target_loss: float | None = None

    def optimizer_settings(self) -> dict:
        """What dl_core.optim.OPTIMIZERS reads; each optimizer takes the ones it uses."""
        return {"lr": self.lr, "momentum": self.momentum, "beta1": self.beta1, "beta2": self.beta2,
                "weight_decay": self.weight_decay}


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
    # Playground run at full speed measures ~800 steps and ~100 epochs a second, which kept in
    # full cost ~300 MB an hour per learner.
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


class Precision:
    """One code path for full and mixed precision: `autocast()` around the forward pass,
    `backward`, then `step`. The GradScaler (CUDA only) keeps small float16 gradients from
    rounding to zero; disabled, each call is the plain float32 operation."""

    def __init__(self, model: nn.Module, enabled: bool):
        param = next(model.parameters(), None)
        self.device = param.device.type if param is not None else "cpu"
        self.enabled = enabled and self.device in ("cuda", "cpu")
        self.dtype = torch.float16 if self.device == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(self.device, enabled=self.enabled and self.device == "cuda")

    def autocast(self):
        return torch.autocast(self.device, dtype=self.dtype) if self.enabled else nullcontext()

    def backward(self, loss: torch.Tensor, optimizer, unscale: bool) -> None:
        """`unscale`: leave true gradient values in .grad (to measure them) before `step`."""
        self.scaler.scale(loss).backward()
        if unscale:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        self.scaler.step(optimizer)
        self.scaler.update()


def clone_state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def downsample(seq: list, n: int) -> list:
    if len(seq) <= n:
        return list(seq)
    stride = len(seq) / n
    return [seq[int(i * stride)] for i in range(n - 1)] + [seq[-1]]




class _Slot(tuple):
    """Where a tensor was in a packed structure: (dtype key, index)."""


def pack_tensors(obj):
    """`obj` (dicts, lists, tuples of tensors and plain values) with every tensor moved into one
    flat buffer per dtype: pickling ~50 small tensors one by one cost ~4 ms, one buffer ~0.1 ms."""
    groups: dict = {}

    def walk(x):
        if isinstance(x, torch.Tensor) and x.device.type == "cpu":
            group = groups.setdefault(str(x.dtype), [])
            group.append(x.detach().reshape(-1))
            return _Slot((str(x.dtype), len(group) - 1, tuple(x.shape)))
        if isinstance(x, dict):
            return type(x)((k, walk(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)) and not isinstance(x, _Slot):
            return type(x)(walk(v) for v in x)
        return x

    skeleton = walk(obj)
    flat = {k: (torch.cat(v) if v else None, [t.numel() for t in v]) for k, v in groups.items()}
    return skeleton, flat


def unpack_tensors(packed):
    skeleton, flat = packed
    parts = {k: torch.split(buf, sizes) if buf is not None else () for k, (buf, sizes) in flat.items()}

    def walk(x):
        if isinstance(x, _Slot):
            dtype, i, shape = x
            return parts[dtype][i].reshape(shape)
        if isinstance(x, dict):
            return type(x)((k, walk(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return type(x)(walk(v) for v in x)
        return x

    return walk(skeleton)
