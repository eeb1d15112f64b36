"""One call from Playground settings to a ready training job.

The page, the benchmarks and the tests all build their jobs here, so "the
page's default settings" is one definition: `Setup()`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .data.data2d import DATASETS, FEATURES, DataError, Dataset2D, feature_matrix, input_code, make_dataset
from .data.tensors import TensorData
from .engine import TrainConfig, TrainingJob
from .probes import PlaygroundProbe
from .spec import ModelSpec, build, mlp_spec


@dataclass(frozen=True)
class Setup:
    dataset: str = "circle"
    n_samples: int = 500
    noise: float = 0.0
    train_ratio: float = 0.5
    seed: int = 1
    features: tuple[str, ...] = ("x", "y")
    hidden: tuple[int, ...] = (8, 8, 8)
    activation: str = "gelu"
    dropout: float = 0.0
    batchnorm: bool = False
    train: TrainConfig = TrainConfig()  # optimizer, learning rate, batch size, penalties: the job's own defaults
    resolution: int = 40

    def train_config(self) -> TrainConfig:
        return replace(self.train, seed=self.seed)


def make_data(setup: Setup) -> Dataset2D:
    return make_dataset(setup.dataset, setup.n_samples, setup.noise, setup.train_ratio, setup.seed)


def usable_features(ds: Dataset2D, features: tuple[str, ...]) -> tuple[str, ...]:
    """Curve data has only x as input (y is the target), so y-features are dropped."""
    return tuple(f for f in features if not (ds.curve and FEATURES[f].uses_y))


def model_spec(setup: Setup, ds: Dataset2D) -> ModelSpec:
    feats = usable_features(ds, setup.features)
    if not feats:
        raise DataError("Pick at least one input feature" + (" that uses x only: on curve data y is the target."
                                                             if ds.curve else "."))
    n_out = ds.n_classes if ds.task == "classification" else 1
    return mlp_spec(len(feats), list(setup.hidden), setup.activation, n_out, ds.task, setup.dropout,
                    setup.batchnorm, feats)


def make_job(setup: Setup, ds: Dataset2D | None = None, device="cpu", model=None,
             spec: ModelSpec | None = None) -> tuple[TrainingJob, ModelSpec, Dataset2D]:
    """Dataset (generated unless given), spec, model (fresh unless given) and job with its probe."""
    ds = make_data(setup) if ds is None else ds
    if len(ds.train[0]) == 0:
        raise DataError("The training set is empty: add points or lower the test share.")
    spec = model_spec(setup, ds) if spec is None else spec
    feats = spec.input_names
    spec = replace(spec, input_code=input_code(feats))  # a loaded model's spec too: checkpoints hold no code
    model = (build(spec, setup.seed) if model is None else model).to(device)
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    data = TensorData.from_arrays(feature_matrix(xtr, feats), ytr, feature_matrix(xte, feats), yte, ds.task, device)
    probe = PlaygroundProbe(spec, feats, setup.resolution, ds.curve, ds.test, device)
    return TrainingJob.supervised(model, data, setup.train_config(), probe), spec, ds


__all__ = ["Setup", "make_data", "make_job", "model_spec", "usable_features", "DATASETS"]
