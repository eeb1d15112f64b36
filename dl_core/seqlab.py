"""The Sequence Lab's jobs: a recurrent network (RNN, LSTM or GRU) on a sequence task.

The network is a spec like any other (embedding → recurrent → last step → linear), so it
saves, loads and exports through the same checkpoint and code paths as the other labs, and
it trains as a TrainingJob with SupervisedTrainer; only the probe (recurrence.py) is its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .data import sequences
from .engine import SupervisedTrainer, TrainConfig, TrainingJob
from .recurrence import SequenceProbe
from .spec import InputCode, LayerSpec, ModelSpec, build

CELLS = ("RNN", "LSTM", "GRU")
# full_train_eval off: re-measuring the whole training set each epoch cost a recurrent net a large
# share on top of training; the running mean over the epoch's batches is reported instead, as Keras does.
# A snapshot a second: the probe (states, gates and gradients of 101 steps, by hand) is not free.
DEFAULT_TRAIN = TrainConfig(optimizer="adam", lr=0.01, batch_size=32, clip=1.0, snapshot_interval_s=1.0,
                            full_train_eval=False)


@dataclass(frozen=True)
class SeqSetup:
    task: str = "recall"
    lag: int = 100
    n_samples: int | None = None  # None: the task's own number of examples
    seed: int = 1
    cell: str = "LSTM"
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0  # between stacked recurrent layers
    embed: int = 8
    train: TrainConfig = field(default_factory=lambda: DEFAULT_TRAIN)

    def config(self) -> TrainConfig:
        return replace(self.train, seed=self.seed)


def make_data(setup: SeqSetup) -> sequences.SeqData:
    return sequences.make(setup.task, examples(setup), setup.lag, setup.seed)


def examples(setup: SeqSetup) -> int:
    return setup.n_samples or sequences.SEQ_TASKS[setup.task].examples


def seq_spec(data: sequences.SeqData, cell: str, hidden: int, layers: int, embed: int,
             dropout: float = 0.0) -> ModelSpec:
    """Embedding (tokens) → recurrent layer(s) → the last step → one output per class (or one value);
    for sequence labelling, a linear guess at every step instead of the last step's."""
    n_out = len(data.classes) if data.task == "classification" else 1
    front = (LayerSpec.of("embedding", vocab=len(data.vocab), dim=embed),) if data.tokens else ()
    between = {"dropout": dropout} if dropout and layers > 1 else {}
    head = ((LayerSpec.of("step_linear", out_features=n_out),) if data.per_step else
            (LayerSpec.of("last_step"), LayerSpec.of("linear", out_features=n_out)))
    layers_ = (*front, LayerSpec.of("recurrent", cell=cell, hidden=hidden, layers=layers, **between), *head)
    shape = (data.length,) if data.tokens else tuple(data.x_train.shape[1:])
    code = (InputCode("def features(raw):\n    \"\"\"Token numbers (0 is padding), as int64.\"\"\"\n"
                      "    return torch.as_tensor(raw, dtype=torch.long)",
                      f"torch.randint(1, {len(data.vocab)}, (64, {data.length}))") if data.tokens else None)
    return replace(ModelSpec(shape, layers_, data.task), input_code=code)


RACE_EPOCHS = 30  # one budget for every cell type in a race: the same task, data, seed and epochs


def race(setup: SeqSetup, data: sequences.SeqData, device="cpu", epochs: int = RACE_EPOCHS) -> dict[str, TrainingJob]:
    """One job per cell type on the same data from the same seed, each stopping after `epochs`
    epochs: the difference the gates make, measured side by side, not asserted."""
    return {cell: make_job(replace(setup, cell=cell, train=replace(setup.train, max_epochs=epochs)), data, device)[0]
            for cell in CELLS}


def best(job: TrainingJob, task: str) -> float | None:
    """A job's best held-out score so far: accuracy (classes) or loss (regression)."""
    return job.best("test_acc", max) if task == "classification" else job.best("test_loss")


def make_job(setup: SeqSetup, data: sequences.SeqData | None = None, device="cpu", model=None,
             spec: ModelSpec | None = None) -> tuple[TrainingJob, ModelSpec, sequences.SeqData]:
    """Data (made unless given), spec, network (fresh unless given) and job, probing the first
    test sequence."""
    data = make_data(setup) if data is None else data
    spec = spec or seq_spec(data, setup.cell, setup.hidden, setup.layers, setup.embed, setup.dropout)
    model = (build(spec, setup.seed) if model is None else model).to(device)
    tensors = data.tensors()
    tensors = type(tensors)(*(t.to(device) for t in (tensors.x_train, tensors.y_train, tensors.x_test,
                                                      tensors.y_test)), tensors.task)
    probe = SequenceProbe(data.x_test[0].to(device), data.y_test[0].to(device), data.task)
    # a confusion matrix every epoch, where it can be read (not for a language model's ~80 characters)
    classes = len(data.classes) if data.task == "classification" and len(data.classes) <= 12 else None
    return TrainingJob(SupervisedTrainer(model, tensors, probe, classes), setup.config()), spec, data
