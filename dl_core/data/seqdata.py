"""What every sequence set is, generated or real: tokens or values, split, with the names of
its tokens and answers (the data type the Sequence Lab's tasks, sources and uploads share)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .tensors import TensorData


class SeqDataError(ValueError):
    """Data that cannot make a sequence task, said in one plain sentence for the page."""


PAD = "·"  # token 0 in every vocabulary: padding before a short sequence (names)


@dataclass(frozen=True)
class SeqData:
    """One sequence set, split, with what its tokens and answers mean."""

    name: str
    task: str  # "classification" or "regression"
    x_train: torch.Tensor  # (N, T) int64 tokens, or (N, T, F) float32 values
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    vocab: tuple[str, ...]  # token i's text ((): values, not tokens)
    classes: tuple[str, ...]  # the answers' names (classification)
    scale: tuple[float, float] = (0.0, 1.0)  # a series' (mean, spread): values were (v - mean) / spread
    source: str = ""  # where the data come from, for the page
    changes: bool = False  # a series read and forecast as its steps' changes

    @property
    def tokens(self) -> bool:
        return bool(self.vocab)

    @property
    def length(self) -> int:
        return self.x_train.shape[1]

    @property
    def per_step(self) -> bool:
        """One answer at every step (sequence labelling), not one per sequence."""
        return self.task == "classification" and self.y_train.dim() == 2

    def tensors(self) -> TensorData:
        return TensorData(self.x_train, self.y_train, self.x_test, self.y_test, self.task)

    def text(self, x: torch.Tensor) -> list[str]:
        """One sequence, a string per step (the tokens' text, or its values rounded)."""
        if self.tokens:
            return [self.vocab[int(t)] for t in x]
        return [" ".join(f"{v:.2f}" for v in step.tolist()) for step in x]


def split(name, task, x, y, vocab=(), classes=(), test_share: float = 0.25, **info) -> SeqData:
    """The first quarter of the examples is held out for testing: callers put first what should
    be held out (shuffled examples; for a series, its latest windows: the future to forecast)."""
    n_test = max(1, int(len(x) * test_share))
    y = torch.as_tensor(y)
    y = y.long() if task == "classification" else y.float().reshape(-1, 1)  # classes: one per example or step
    x = torch.as_tensor(x)
    return SeqData(name, task, x[n_test:], y[n_test:], x[:n_test], y[:n_test], tuple(vocab), tuple(classes), **info)
