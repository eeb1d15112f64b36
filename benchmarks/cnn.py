"""CNN Lab figures: the default CNN on the digits, job vs. bare loop, time to 95 %, feature maps."""
from __future__ import annotations

import statistics
import time

import torch

from dl_core import cnn
from dl_core.data import images
from dl_core.engine import TrainConfig

from .common import job_vs_bare

CONFIG = cnn.DEFAULT_CONFIG  # the page's defaults
EPOCHS_FOR_SPEED = 8


def run(device: str = "cpu") -> dict:
    ds = images.digits(16)
    spec = cnn.preset("tiny_vgg", ds)

    def make(epochs: int):
        return cnn.make_job(ds, spec, TrainConfig(**{**CONFIG.__dict__, "max_epochs": epochs}), device)

    speed = job_vs_bare(make, EPOCHS_FOR_SPEED, rounds=9)
    images_per_step = CONFIG.batch_size
    times = []
    for seed in (0, 1, 2):
        job = cnn.make_job(ds, spec, TrainConfig(**{**CONFIG.__dict__, "max_epochs": 60, "seed": seed}), device)
        t0 = time.perf_counter()
        job.start()
        while (job.view(1)["epochs"][-1]["test_acc"] or 0) < 0.95 and job.status()["state"] != "finished":
            time.sleep(0.005)
        times.append(time.perf_counter() - t0)
        job.stop()
        job.join(5)
    model = cnn.make_job(ds, spec, CONFIG, device).model
    image = torch.as_tensor(ds.x[0])
    cnn.feature_maps(model, image)
    samples = []
    for _ in range(50):
        t0 = time.perf_counter()
        cnn.feature_maps(model, image)
        samples.append((time.perf_counter() - t0) * 1000)
    return {
        "images_per_s_job": round(speed.pop("steps_per_s_job") * images_per_step, 1),
        "images_per_s_bare": round(speed.pop("steps_per_s_bare") * images_per_step, 1),
        **speed,
        "seconds_to_95pct_digits": round(statistics.median(times), 2),
        "feature_maps_ms": round(statistics.median(samples), 3),
        "setup": f"digits 16x16, Tiny VGG ({sum(p.numel() for p in model.parameters()):,} parameters), Adam lr "
                 f"{CONFIG.lr}, batch {CONFIG.batch_size}; 95% = validation accuracy, median of 3 seeds",
    }
