import pytest
import torch

from conftest import wait_for
from dl_core import cnn
from dl_core.augment import AUGMENTATIONS, augment_batch
from dl_core.data import images
from dl_core.engine import TrainConfig


@pytest.mark.parametrize("kind", list(AUGMENTATIONS))
def test_each_augmentation_keeps_shape_and_range_changes_pixels_and_is_seeded(kind):
    x = torch.rand(16, 3, 12, 12)
    a = augment_batch(x, (kind,), torch.Generator().manual_seed(0))
    b = augment_batch(x, (kind,), torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_flip_mirrors_each_image_or_leaves_it():
    x = torch.rand(32, 1, 5, 5)
    out = augment_batch(x, ("flip",), torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="Unknown augmentation"):
        augment_batch(torch.rand(1, 1, 4, 4), ("melt",), torch.Generator())


def test_the_job_trains_on_augmented_batches(executor):
    ds = images.digits(8)
    job = cnn.make_job(ds, cnn.preset("tiny_vgg", ds), TrainConfig(max_epochs=2, augment=("shift", "rotate")))
    job.executor = executor
    job.start()
    wait_for(lambda: job.status()["state"] == "finished", timeout=60)
    assert job.view()["epochs"][-1]["test_acc"] > 0.3  # it still learns from varied images
