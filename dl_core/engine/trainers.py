"""What a training job trains: the `Trainer` contract, and the supervised trainer every lab uses.

A job (job.py) owns everything that is the same for every kind of training: its turns,
start/pause/step/stop, events, snapshots, divergence, schedules, stopping, precision and
device. A trainer owns what differs: its networks, their optimizers' kinds and rates, its
losses, its metrics and its probes. A GAN (two networks, two optimizers at two rates) or a
network on a frozen backbone plugs into the same job by passing `Trainer`'s conformance test
(tests/test_trainer_contract.py) on every backend.
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

import torch
from torch import nn

from .. import layerstats
from ..augment import augment_batch
from ..inference import confusion_matrix, evaluating
from ..losses import LOSSES
from .parts import TrainConfig

if TYPE_CHECKING:  # a job reads its data's tensors only: the engine imports no data module
    from ..data.tensors import TensorData


@dataclass(frozen=True)
class Network:
    """One network's optimizer, as its trainer asks for it."""

    params: list  # what the optimizer updates: the trainable parameters only (frozen ones stay out)
    optimizer: str  # a dl_core.optim.OPTIMIZERS key
    lr: float  # its base rate (the schedule scales it)


@runtime_checkable
class Trainer(Protocol):
    """What a TrainingJob runs. Capability flags say what the engine may do with it: `travels`
    (its state pickles: a process or Ray backend trains it in a worker; False: in the lane's
    thread) and `gangs` (same-architecture jobs may take one stacked step, gang.py)."""

    models: dict[str, nn.Module]  # named networks; the model panel lists them all
    n_train: int  # examples per epoch: the job shuffles their indices and hands out batches
    travels: bool
    gangs: bool
    chance: float | None  # what guessing scores on the held-out set (collapse detection), if it has one
    gradient_labels: list[str]
    activation_labels: list[str]
    probe_fn: Callable | None

    def param_groups(self, config: TrainConfig) -> dict[str, Network]:
        """Per network (a `models` key): its optimizer's kind, rate and trainable parameters."""

    def train_step(self, idx: torch.Tensor, ctx) -> torch.Tensor | dict[str, torch.Tensor] | None:
        """One step on examples `idx`: calls `ctx.update(name, loss)` once per network it updates
        and returns the step's loss, or several named losses, as tensors on the device (None: no
        step). It must not read numbers back to the host: the job does that in bulk."""

    def running_metrics(self) -> dict:
        """An epoch's running numbers (then start over); {} if it keeps none."""

    def evaluate(self, train: bool = True) -> dict:
        """An epoch's metrics, whichever it reports ("test_loss", "test_acc", "fake_mean", ...)."""

    def probe(self) -> dict | None:
        """What the live views draw of the networks now."""

    def grad_norms(self) -> list[float]: ...

    def take_activations(self) -> list | None: ...

    def turn_state(self) -> dict:
        """What a step changes besides the weights (running sums): it travels with them each turn."""

    def load_turn_state(self, state: dict) -> None: ...

    def clone(self) -> "Trainer":
        """An independent copy with the same weights (another browser's copy of a run)."""


class SupervisedTrainer:
    """Inputs → one network → targets, with cross-entropy (classes) or squared error (values)."""

    def __init__(self, model: nn.Module, data: TensorData, probe: Callable[[nn.Module], dict] | None = None,
                 confusion_classes: int | None = None):
        """`confusion_classes`: also count the held-out confusion matrix at each epoch, from the
        predictions the epoch's evaluation makes anyway (a live probe would run them again)."""
        self.model, self.data, self.probe_fn = model, data, probe
        self.confusion_classes = confusion_classes
        self.models = {"model": model}
        self.loss_fn = LOSSES[data.task].make()
        self.loss_each = LOSSES[data.task].cls(reduction="none")
        self.has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        named = [(n, p) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
        self._weights = [p for _, p in named]
        self.gradient_labels = layerstats.weight_labels(model, [n for n, _ in named])
        self.activation_labels = layerstats.labels(model)
        self.x_all = torch.cat([data.x_train, data.x_test])  # one evaluation pass reads both (a gang's too)
        self.y_all = torch.cat([data.y_train, data.y_test])
        self.n_train = len(data.x_train)
        # what always answering the commonest held-out class scores (a collapse falls back to it)
        self.chance = (float(torch.bincount(data.y_test.long().flatten()).max()) / data.y_test.numel()
                       if data.task == "classification" and len(data.y_test) else None)
        self._acts: list | None = None
        self._reset_running()

    travels = True

    def __getstate__(self) -> dict:
        """All but x_all and y_all, a copy of the data made again on arrival: a saved run or a
        job's trip to a worker carries its data once (the run store keeps an upload apart)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("x_all", "y_all")}

    def __setstate__(self, state: dict) -> None:  # a run saved when these three were private kept them
        self.__dict__.update({k.lstrip("_") if k in ("_x_all", "_y_all", "_loss_each") else k: v
                              for k, v in state.items()})
        if "x_all" not in self.__dict__:
            self.x_all = torch.cat([self.data.x_train, self.data.x_test])
            self.y_all = torch.cat([self.data.y_train, self.data.y_test])

    @property
    def gangs(self) -> bool:
        """A frozen layer takes no part in a gang's stacked update (gang.py updates every weight)."""
        return all(p.requires_grad for p in self.model.parameters())

    def param_groups(self, config: TrainConfig) -> dict[str, Network]:
        return {"model": Network([p for p in self.model.parameters() if p.requires_grad], config.optimizer, config.lr)}

    def _reset_running(self) -> None:
        zero = torch.zeros((), device=self.data.x_train.device)
        self._sum_loss, self._correct, self._seen = zero.clone(), zero.clone(), 0

    def train_step(self, idx: torch.Tensor, ctx) -> torch.Tensor | None:
        """One update on examples `idx`; None when the batch cannot be used (see below)."""
        if self.has_batchnorm and len(idx) < 2:  # batch norm cannot normalise one example
            return None
        cfg, data = ctx.config, self.data
        xb, yb = data.x_train[idx], data.y_train[idx]
        if cfg.augment:
            xb = augment_batch(xb, cfg.augment, ctx.generator)
        with layerstats.recording(self.model) if ctx.measuring else nullcontext() as acts, ctx.autocast("model"):
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
        self._acts = acts or None
        if not cfg.full_train_eval:  # an epoch's running means, kept on the device (else unused)
            with torch.no_grad():
                self._sum_loss += loss.detach().float() * len(idx)
                self._seen += len(idx)
                if data.task == "classification":  # a label per example, or per step (averaged per example)
                    self._correct += (out.argmax(1) == yb).float().reshape(len(yb), -1).mean(1).sum()
        if cfg.l1 or cfg.l2:  # on trainable weights only: a frozen backbone's are not the learner's to shrink
            loss = loss + sum(cfg.l1 * w.abs().sum() + cfg.l2 * (w * w).sum() for w in self._weights if w.requires_grad)
        ctx.update("model", loss)
        return loss.detach()

    def turn_state(self) -> dict:
        """What a training step changes besides the weights (the job ships it to and from workers)."""
        return {"sum_loss": self._sum_loss, "correct": self._correct, "seen": self._seen, "acts": self._acts}

    def load_turn_state(self, state: dict) -> None:
        self._sum_loss, self._correct, self._seen, self._acts = (state[k] for k in ("sum_loss", "correct", "seen",
                                                                                   "acts"))

    def running_metrics(self) -> dict:
        """This epoch's mean batch loss (and accuracy), as Keras reports them; then start over."""
        seen = max(self._seen, 1)
        out = {"train_loss": float(self._sum_loss) / seen,
               "train_acc": float(self._correct) / seen if self.data.task == "classification" else None}
        self._reset_running()
        return out

    def evaluate(self, train: bool = True) -> dict:
        """Loss (and accuracy for classes) on the test set, and on the train set unless `train`
        is False, in eval mode, from one forward pass and one read back to the host (it runs
        every epoch). The caller holds the job's lock."""
        with evaluating(self.model), torch.no_grad():
            pred = self.model(self.x_all if train else self.data.x_test)
        return scores([self], pred[None], (self.y_all if train else self.data.y_test)[None], train)[0]

    def probe(self) -> dict | None:
        return None if self.probe_fn is None else self.probe_fn(self.model)

    def grad_norms(self) -> list[float]:
        return [float(w.grad.norm()) if w.grad is not None else 0.0 for w in self._weights]

    def take_activations(self) -> list | None:
        acts, self._acts = self._acts, None
        return acts

    def clone(self) -> "SupervisedTrainer":
        """Same data (read-only, shared), a deep copy of the network and of the probe's buffers."""
        return SupervisedTrainer(copy.deepcopy(self.model), self.data, copy.deepcopy(self.probe_fn),
                                 self.confusion_classes)


def scores(trainers: list[SupervisedTrainer], pred: torch.Tensor, y: torch.Tensor, train: bool) -> list[dict]:
    """What `evaluate` reports for each of `trainers` (one task, equal data sizes), from their
    networks' predictions `pred` [trainers, examples, ...] against `y` [trainers, examples, ...]
    (train then test examples, or test only): a gang (gang.py) scores all its members with
    the same few operations and one read back as a job alone scores itself."""
    first = trainers[0]
    k, m, n = len(y), y.shape[1], first.n_train if train else 0
    flat_y = y.flatten(0, 1)
    each = first.loss_each(pred.flatten(0, 1), flat_y).reshape(k, m, -1).mean(2)  # per example
    hit = ((pred.flatten(0, 1).argmax(1) == flat_y).float().reshape(k, m, -1).mean(2)
           if first.data.task == "classification" else None)
    splits = {"train": slice(0, n), "test": slice(n, None)} if train else {"test": slice(0, None)}
    splits = {name: sl for name, sl in splits.items() if len(each[0, sl])}
    parts = [each[:, sl].mean(1) for sl in splits.values()] + ([hit[:, sl].mean(1) for sl in splits.values()]
                                                               if hit is not None else [])
    rows = torch.stack(parts, 1).tolist() if parts else [[]] * k
    outs = []
    for trainer, values, p in zip(trainers, rows, pred):
        out = {f"{s}_{q}": None for s in ("train", "test") if train or s == "test" for q in ("loss", "acc")}
        for i, s in enumerate(splits):
            out[f"{s}_loss"] = values[i]
            if hit is not None:
                out[f"{s}_acc"] = values[len(splits) + i]
        if trainer.confusion_classes:
            out["confusion"] = confusion_matrix(p[n:].argmax(1).flatten(), trainer.data.y_test.flatten(),
                                                trainer.confusion_classes)
        outs.append(out)
    return outs
