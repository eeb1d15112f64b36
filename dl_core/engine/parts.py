"""What a training job is made of: its settings, its precision, and its tensors packed to travel."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

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
    # only the held-out set — for image data, where a full pass costs a large share extra.
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


class _Slot(tuple):
    """Where a tensor was in a packed structure: (dtype key, index)."""


def pack_tensors(obj):
    """`obj` (dicts, lists, tuples of tensors and plain values) with every tensor moved into one
    flat buffer per dtype: pickling many small tensors one by one costs far more than one buffer."""
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
