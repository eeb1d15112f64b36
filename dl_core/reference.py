"""The Explainability Lab's built-in model: a small CNN trained on the offline digits at
28×28, trained on first use (a few seconds on a CPU) and kept on disk, so the lab is
useful before the learner has trained anything. Also the shuffled-label twin that the
sanity checks compare against, as a job for the executor's lanes. Both train through the one
TrainingJob.
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from . import cnn
from .checkpoint import CheckpointError, load_bytes, save_bytes
from .data import images
from .engine import TrainConfig, TrainingJob
from .spec import LayerSpec, ModelSpec
from .tuning import train_blocking

L = LayerSpec.of
SPEC = ModelSpec((1, 28, 28), (
    L("conv2d", out_channels=8, kernel=3, stride=1, padding=1), L("activation", fn="relu"),
    L("maxpool", kernel=2, stride=2),
    L("conv2d", out_channels=16, kernel=3, stride=1, padding=1), L("activation", fn="relu"),
    L("maxpool", kernel=2, stride=2),
    L("flatten"), L("linear", out_features=10)), "classification")
CONFIG = replace(cnn.DEFAULT_CONFIG, lr=0.003, batch_size=64, max_epochs=12)
TWIN_IMAGES, TWIN_EPOCHS = 1000, 8  # the shuffled-label twin's cap (the sanity checks say so)
_lock = threading.Lock()


def data(seed: int = 0) -> images.ImageDataset:
    return images.digits(28, seed)


def path(root: Path | None = None) -> Path:
    return Path(root or images.DATA_DIR) / "reference" / "digits28-cnn.pt"


def model(root: Path | None = None, device="cpu") -> tuple[nn.Module, dict]:
    """(eval-mode model, meta) from the disk cache, training and saving it on first use.
    A corrupt or outdated cache file is replaced."""
    file = path(root)
    with _lock:  # one server, many sessions: train once
        if file.exists():
            try:
                spec, net, meta = load_bytes(file.read_bytes())
                if spec == SPEC:
                    return net.to(device).eval(), meta
            except CheckpointError:
                pass
        ds = data()
        job = train_blocking(cnn.make_job(ds, SPEC, CONFIG, device))
        xte, yte = ds.part("test")
        meta = {"test_accuracy": float((cnn.predict(job.model, xte).argmax(1) == yte).mean()),
                "epochs": job.epoch, "classes": list(ds.classes)}
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(save_bytes(SPEC, job.model, meta))
        os.replace(tmp, file)  # atomic: another process never reads half a file
        return job.model.eval(), meta


def shuffled_label_job(spec: ModelSpec, ds: images.ImageDataset, config: TrainConfig = CONFIG, seed: int = 0,
                       max_images: int = TWIN_IMAGES, max_epochs: int = TWIN_EPOCHS) -> TrainingJob:
    """A job (not started) training the same network on the same images with the training labels
    shuffled: it can only memorise, so nothing it learns is about digits (Adebayo et al.'s data
    randomisation). Capped at `max_images` training images and `max_epochs` epochs: at 5,000
    images it trained for five minutes, and it trains on the executor's lanes like any job."""
    rng = np.random.default_rng(seed)
    train = rng.permutation(np.flatnonzero(ds.split == 0))[:max_images]
    rows = np.sort(np.concatenate([train, np.flatnonzero(ds.split != 0)]))
    y = ds.y[rows].copy()
    mine = ds.split[rows] == 0
    y[mine] = rng.permutation(y[mine])
    shuffled = replace(ds, x=ds.x[rows], y=y, split=ds.split[rows], name=ds.name + " (shuffled labels)")
    return cnn.make_job(shuffled, spec, replace(config, seed=seed, max_epochs=min(max_epochs, config.max_epochs
                                                                                 or max_epochs)))
