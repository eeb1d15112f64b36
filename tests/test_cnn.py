import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import wait_for
from dl_core import cnn
from dl_core.data import images
from dl_core.engine import TrainConfig
from dl_core.presets import PRESETS, preset_spec
from dl_core.spec import LayerSpec, ModelSpec, SpecError, build, summarize
from modelfiles import zip_bytes

SHAPES = {"digits 8": (1, 8, 8), "digits 16": (1, 16, 16), "mnist": (1, 28, 28), "shapes": (3, 28, 28),
          "cifar": (3, 32, 32)}
L = LayerSpec.of


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_every_preset_builds_and_runs_on_every_dataset_shape(preset, shape):
    spec = preset_spec(preset, shape, 10)
    model = build(spec, seed=0)
    out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_shape_table_matches_pytorch(preset):
    spec = preset_spec(preset, (3, 28, 28), 4)
    rows, model = summarize(spec), build(spec).eval()
    x = torch.rand(1, 3, 28, 28)
    for row, layer in zip(rows, model.layers):
        macs = 0
        if isinstance(layer, torch.nn.Conv2d):
            macs = x.shape[1] * layer.kernel_size[0] ** 2
        x = layer(x)
        assert tuple(x.shape[1:]) == row.out_shape
        assert row.params == sum(p.numel() for p in layer.parameters())
        if isinstance(layer, torch.nn.Conv2d):
            assert row.macs == macs * x[0].numel()


@pytest.mark.parametrize("layers, message, where", [
    ((L("conv2d", out_channels=4, kernel=3, stride=1, padding=0), L("maxpool", kernel=2, stride=2),
      L("maxpool", kernel=2, stride=2), L("conv2d", out_channels=4, kernel=5, stride=1, padding=0)),
     r"Layer 4 .* 5×5 kernel but its input is only 1×1", 4),
    ((L("flatten"), L("conv2d", out_channels=4, kernel=3, stride=1, padding=1)),
     "expects images .* must come before Flatten", 2),
    ((L("linear", out_features=10),), "expects a flat vector, but gets a 1×8×8", 1),
    ((L("conv2d", out_channels=0, kernel=3, stride=1, padding=1),), "0 output channels", 1),
    ((L("conv2d", out_channels=4, kernel=3, stride=1, padding=3),), "pads by 3", 1),
    ((L("flatten"), L("flatten")), "already flat", 2),
])
def test_impossible_stacks_are_explained_at_the_offending_layer(layers, message, where):
    with pytest.raises(SpecError, match=message) as info:
        summarize(ModelSpec((1, 8, 8), layers + (L("flatten"), L("linear", out_features=3))))
    assert info.value.layer == where


def test_digits_and_shapes_are_well_formed_and_deterministic():
    d = images.digits(16)
    assert d.x.shape == (1797, 1, 16, 16) and d.x.min() >= 0 and d.x.max() <= 1
    assert set(np.unique(d.split)) == {0, 1, 2}
    a, b = images.shapes(200, 20, spurious=1.0, seed=3), images.shapes(200, 20, spurious=1.0, seed=3)
    assert np.array_equal(a.x, b.x) and a.x.shape == (200, 3, 20, 20)
    assert np.bincount(a.y).tolist() == [50] * 4
    corner = a.x[:, :, 0, 0]  # the cue: training corners are coloured by class, test corners are not
    train = a.split == 0
    for k in range(4):
        np.testing.assert_allclose(corner[train & (a.y == k)].mean(0), images.CUE_COLOURS[k], atol=0.15)
    test_spread = np.abs(corner[(a.split == 2) & (a.y == 0)] - images.CUE_COLOURS[0]).mean()
    assert test_spread > 0.15


def _write_idx(path, array, magic):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape))
        f.write(array.astype(np.uint8).tobytes())


OFFLINE = [k for k, s in images.IMAGE_DATASETS.items() if s.offline]
FROM_FILES = [k for k, s in images.IMAGE_DATASETS.items() if not s.offline]


@pytest.mark.parametrize("key", OFFLINE)
def test_every_offline_image_set_loads_at_every_size_it_offers(key):
    source = images.IMAGE_DATASETS[key]
    assert source.default_size in source.sizes
    for size in source.sizes:
        ds = source.load(size, 0.5 if source.spurious_cue else 0.0, 0, False)
        assert ds.shape == (source.channels, size, size) and ds.classes == source.classes
        assert set(np.unique(ds.y)) == set(range(len(source.classes))) and 0 <= ds.x.min() <= ds.x.max() <= 1


@pytest.mark.parametrize("key", [k for k in FROM_FILES if images.IMAGE_DATASETS[k].channels == 1])
def test_torchvision_loader_reads_tiny_idx_files(tmp_path, key):
    folder = tmp_path / images.IMAGE_DATASETS[key].torchvision / "raw"
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x803)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 0x801)
    ds = images.torchvision_dataset(key, tmp_path, download=False)
    assert ds.x.shape == (50, 1, 28, 28) and ds.x.max() <= 1
    assert (ds.split == 2).sum() == 10 and (ds.split == 1).sum() == 6
    assert ds.classes == images.IMAGE_DATASETS[key].classes


@pytest.mark.parametrize("key", FROM_FILES)
def test_missing_torchvision_data_offline_says_what_to_do(tmp_path, monkeypatch, key):
    monkeypatch.setattr(images, "DATA_DIR", tmp_path)  # an empty folder, and no download
    source = images.IMAGE_DATASETS[key]
    assert source.sizes == (source.default_size,)
    with pytest.raises(images.DataError, match=f"{source.torchvision} is not in .*offline sets: digits or shapes"):
        source.load(source.default_size, 0.0, 0, False)


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 12), colour).save(buf, "PNG")
    return buf.getvalue()


def test_zip_of_class_folders_loads_and_skips_corrupt_files():
    files = {f"pets/{c}/{i}.png": _png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(3)}
    files["pets/dog/broken.png"] = b"not an image"
    ds = images.zip_folders(zip_bytes(files), size=16)
    assert ds.classes == ("cat", "dog") and ds.x.shape == (6, 3, 16, 16)
    assert "1 file skipped" in ds.note
    assert ds.x[ds.y == 0][:, 0].mean() > 0.9  # red cats


@pytest.mark.parametrize("data, message", [
    (b"garbage", "not a zip"),
    (zip_bytes({"cat/1.png": _png("red"), "cat/2.png": _png("red")}), "at least two classes"),
    (zip_bytes({"a/1.png": _png("red"), "b/1.png": _png("blue"), "b/2.png": _png("blue")}), "at least two readable"),
])
def test_bad_zips_are_refused_with_a_message(data, message):
    with pytest.raises(images.DataError, match=message):
        images.zip_folders(data)


def test_oversized_zip_is_refused():
    with pytest.raises(images.DataError, match="the limit is"):
        images.zip_folders(b"x" * 2000, max_bytes=1000)


def test_feature_maps_one_per_layer_with_the_right_shapes():
    spec = preset_spec("tiny_vgg", (1, 16, 16), 10)
    model = build(spec, seed=0)
    maps = cnn.feature_maps(model, torch.rand(1, 16, 16))
    assert [m.shape for m in maps] == [row.out_shape for row in summarize(spec)]
    assert cnn.first_filters(model).shape == (10, 1, 3, 3)


def test_small_cnn_reaches_95_percent_on_digits(executor):
    ds = images.digits(16, seed=0)
    job = cnn.make_job(ds, cnn.preset("tiny_vgg", ds), TrainConfig(batch_size=64, lr=0.003, max_epochs=40))
    job.executor = executor
    job.start()
    wait_for(lambda: (job.view(1)["epochs"][-1]["test_acc"] or 0) >= 0.975 or job.status()["state"] == "finished",
             timeout=240)  # the job's "test" set is the validation split
    job.stop()
    job.join(5)
    xte, yte = ds.part("test")
    accuracy = (cnn.predict(job.model, xte).argmax(1) == yte).mean()
    assert accuracy >= 0.95, (accuracy, job.epoch)


@pytest.mark.parametrize("layer, channel, row, col", [(0, 3, 0, 0), (0, 9, 7, 5), (2, 1, 4, 15), (5, 0, 3, 3)])
def test_conv_cell_computation_matches_the_network(layer, channel, row, col):
    """Oracle: patch · kernel + bias, computed by hand, equals PyTorch's own feature-map value."""
    spec = preset_spec("tiny_vgg", (1, 16, 16), 10)
    model = build(spec, seed=1)
    image = torch.rand(1, 16, 16)
    cell = cnn.conv_cell(model, image, layer, channel, row, col)
    assert cell["value"] == pytest.approx(cell["network_value"], abs=1e-5)
    assert cell["patch"].shape == cell["kernel"].shape
    name, after = cell["activation"]
    assert name == "ReLU" and after == pytest.approx(max(cell["value"], 0.0), abs=1e-5)
    with pytest.raises(ValueError, match="not a convolution"):
        cnn.conv_cell(model, image, 1, 0, 0, 0)


def test_test_report_finds_per_class_accuracy_and_the_surest_mistakes():
    ds = images.digits(8, seed=0)
    model = build(preset_spec("linear", ds.shape, 10), seed=0)  # untrained: many mistakes
    report = cnn.test_report(model, ds, worst=5)
    x, y = ds.part("test")
    pred = cnn.predict(model, x).argmax(1)
    assert report["accuracy"] == pytest.approx((pred == y).mean())
    assert len(report["per_class"]) == 10 and len(report["mistakes"]) == 5
    confidences = [m[3] for m in report["mistakes"]]
    assert confidences == sorted(confidences, reverse=True)
    assert all(true != guess for _, true, guess, _ in report["mistakes"])


def test_uploaded_pictures_become_inputs_of_the_right_shape():
    dark_on_light = Image.new("L", (40, 30), 255)
    arr = cnn.as_input(dark_on_light, (1, 16, 16))
    assert arr.shape == (1, 16, 16) and arr.max() == 0  # inverted: white on black like the digits
    assert cnn.as_input(Image.new("RGB", (5, 5), "red"), (3, 28, 28)).shape == (3, 28, 28)


def test_conv_cell_follows_the_value_through_pooling():
    spec = preset_spec("tiny_vgg", (1, 16, 16), 10)  # layer 3: conv → ReLU → MaxPool 2×2
    model = build(spec, seed=2)
    cell = cnn.conv_cell(model, torch.rand(1, 16, 16), 2, 4, 5, 9)
    name, (r, c), window, pooled = cell["pool"]
    assert name == "MaxPool2d" and (r, c) == (2, 4) and window.shape == (2, 2)
    assert pooled == pytest.approx(float(window.max())) and pooled >= cell["activation"][1]


def test_a_drawing_in_a_corner_is_framed_like_a_training_image():
    canvas = np.zeros((200, 200, 4), np.uint8)
    canvas[10:50, 140:150] = (255, 255, 255, 255)  # a thin vertical stroke, top right
    framed = cnn.frame_drawing(canvas, margin=0.2)
    assert framed.shape[0] == framed.shape[1] and framed.shape[0] >= 40 / 0.6
    rows, cols = np.nonzero(framed.max(-1))
    assert abs((rows.min() + rows.max()) / 2 - framed.shape[0] / 2) <= 1.5  # centred
    assert abs((cols.min() + cols.max()) / 2 - framed.shape[1] / 2) <= 1.5
    assert rows.max() - rows.min() + 1 == 40  # not distorted
    assert cnn.frame_drawing(np.zeros((50, 50, 4), np.uint8)) is None
    image = cnn.as_input(Image.fromarray(framed), (1, 16, 16))
    assert image.shape == (1, 16, 16) and image.max() > 0.5 and image[0, :, :3].max() == 0


def test_each_epoch_counts_the_validation_confusion_matrix_as_scikit_learn_does(executor):
    from sklearn.metrics import confusion_matrix

    ds = images.digits(16, seed=0)
    job = cnn.make_job(ds, cnn.preset("tiny_vgg", ds))
    job.executor = executor
    job.advance(max_batches=-(-len(job.data.x_train) // job.config.batch_size), max_seconds=60)  # one epoch
    counts = job.view()["epochs"][-1]["confusion"]
    with job.lock:
        pred = cnn.predict(job.model.eval(), job.data.x_test.numpy()).argmax(1)
    expected = confusion_matrix(job.data.y_test.numpy(), pred, labels=range(len(ds.classes)))
    assert job.epoch == 1 and (counts == expected).all() and counts.sum() == len(job.data.x_test)


def _blank_png(width: int, height: int) -> bytes:
    """A black bilevel PNG: a few KB however many pixels it says it has."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def test_a_decompression_bomb_is_refused_on_its_header_in_one_sentence():
    """Twenty 8000×8000 PNGs in a 15 KB zip cost a server 16 s of CPU; at 14000² Pillow's own
    DecompressionBombError reached the page as a traceback. Both are refused before decoding."""
    import time

    from dl_core.data.images import MAX_PIXELS, PictureTooLarge, open_picture, zip_folders

    big, huge = _blank_png(8000, 8000), _blank_png(14000, 14000)
    start = time.perf_counter()
    with pytest.raises(PictureTooLarge, match="That picture is 8,000×8,000 pixels; the limit is 16,777,216"):
        open_picture(big)
    with pytest.raises(PictureTooLarge, match="too many pixels"):
        open_picture(huge)
    bomb = zip_bytes({f"{c}/{k}.png": big for c in ("a", "b") for k in range(10)})
    with pytest.raises(PictureTooLarge, match="8,000×8,000"):
        zip_folders(bomb)
    assert time.perf_counter() - start < 2.0 and len(bomb) < 200_000
    assert open_picture(_blank_png(40, 30)).size == (40, 30) and MAX_PIXELS == 4096 * 4096


def test_a_zips_pictures_share_one_pixel_budget(monkeypatch):
    from dl_core.data import images

    monkeypatch.setattr(images, "MAX_ZIP_PIXELS", 5 * 64 * 64)
    small = zip_bytes({f"{c}/{k}.png": _blank_png(64, 64) for c in ("a", "b") for k in range(2)})
    assert len(images.zip_folders(small, size=8).x) == 4
    more = zip_bytes({f"{c}/{k}.png": _blank_png(64, 64) for c in ("a", "b") for k in range(3)})
    with pytest.raises(images.PictureTooLarge, match="add up to more than 20,480 pixels"):
        images.zip_folders(more, size=8)
