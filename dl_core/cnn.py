"""CNN Lab engine: data choice to training job, and a look inside the network.

The job is the Playground's TrainingJob (same thread, controls, divergence
handling, session ownership and queue); only the data, the spec and the probe
differ. Feature maps come from forward hooks on every layer of an eval-mode
pass, so what the learner sees is exactly what the network computes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .data import images
from .data.tensors import TensorData
from .engine import SupervisedTrainer, TrainConfig, TrainingJob
from .inference import evaluating, predict
from .layerlist import layers_of
from .presets import preset_spec
from .spec import ModelSpec, build, summarize


@dataclass(frozen=True)
class CNNData:
    """A choice of images: an images.IMAGE_DATASETS key and the settings it offers."""

    dataset: str = "digits"
    size: int = images.IMAGE_DATASETS["digits"].default_size  # digits are 8×8, upsampled; shapes drawn at this size
    spurious: float = 0.0
    seed: int = 0


def load(choice: CNNData, download: bool = True) -> images.ImageDataset:
    return images.IMAGE_DATASETS[choice.dataset].load(choice.size, choice.spurious, choice.seed, download)


def tensors(ds: images.ImageDataset, device="cpu") -> TensorData:
    """Train on the training split, watch the validation split (the test split stays for the end)."""
    (xtr, ytr), (xva, yva) = ds.part("train"), ds.part("val")
    return TensorData.from_arrays(xtr, ytr, xva, yva, "classification", device)


def probe(model: nn.Module) -> dict:
    """The cheap live view: the first layer's filters. The validation confusion matrix comes
    with each epoch's evaluation instead (it changes per epoch; a probe would predict again)."""
    return {"filters": first_filters(model)}


# Snapshots as often as the page polls (0.5 s), no more: each one measures every layer.
DEFAULT_CONFIG = TrainConfig(batch_size=64, lr=0.003, max_epochs=20, full_train_eval=False, snapshot_interval_s=0.5)


def make_job(ds: images.ImageDataset, spec: ModelSpec, config: TrainConfig = DEFAULT_CONFIG,
             device="cpu", model: nn.Module | None = None) -> TrainingJob:
    """Training loss/accuracy are running means over each epoch (see TrainConfig.full_train_eval).
    The data go to the device once. On CUDA a network with convolutions trains in mixed
    precision with channels-last memory, the layout tensor cores want."""
    summarize(spec)
    cuda_conv = torch.device(device).type == "cuda" and any(l.kind in ("conv2d", "residual") for l in spec.layers)
    config = replace(config, full_train_eval=False, mixed_precision=config.mixed_precision or cuda_conv)
    data = tensors(ds, device)
    model = (build(spec, config.seed) if model is None else model).to(device)
    if cuda_conv:
        model = model.to(memory_format=torch.channels_last)
        data.x_train = data.x_train.contiguous(memory_format=torch.channels_last)
    return TrainingJob(SupervisedTrainer(model, data, probe, confusion_classes=len(ds.classes)), config)


def preset(key: str, ds: images.ImageDataset) -> ModelSpec:
    return preset_spec(key, ds.shape, len(ds.classes))


def first_filters(model: nn.Module) -> np.ndarray | None:
    """The first convolution's kernels (out, in, k, k), or None for a model without one."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else conv.weight.detach().cpu().numpy().copy()


def feature_maps(model: nn.Module, image: torch.Tensor) -> list[np.ndarray]:
    """Every top-level layer's output for one image (C, H, W) — image maps or flat vectors."""
    outs: list[torch.Tensor] = []
    # a copy: an in-place activation (torchvision's ReLU(inplace=True)) would overwrite the layer before's map
    hooks = [layer.register_forward_hook(lambda m, a, out: outs.append(out[0].detach().to("cpu", copy=True)))
             for layer in layers_of(model)]
    try:
        with evaluating(model), torch.no_grad():
            model(image[None].to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return [o.numpy() for o in outs]


def conv_cell(model: nn.Module, image: torch.Tensor, layer: int, channel: int, row: int, col: int,
              maps: list[np.ndarray] | None = None) -> dict:
    """How one value of a convolution's output came to be, as CNN Explainer shows it:
    the input patch under the kernel, the kernel, the bias, their sum of products, and
    what the next activation and pooling layers (if they follow) make of it.
    `layer` is the 0-based index of a Conv2d in layers_of(model); `maps` are this image's
    feature_maps when the caller already has them."""
    layers = layers_of(model)
    conv = layers[layer]
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"Layer {layer + 1} is not a convolution.")
    maps = feature_maps(model, image) if maps is None else maps
    x = torch.as_tensor(image[None] if layer == 0 else maps[layer - 1][None])
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    x = torch.nn.functional.pad(x, (p, p, p, p))
    patch = x[0, :, row * s:row * s + k, col * s:col * s + k].numpy()
    kernel = conv.weight[channel].detach().cpu().numpy()
    bias = float(conv.bias[channel].detach()) if conv.bias is not None else 0.0
    out = {"patch": patch, "kernel": kernel, "bias": bias, "value": float((patch * kernel).sum() + bias),
           "network_value": float(maps[layer][channel, row, col]), "padding": p, "stride": s}
    following = layers[layer + 1:layer + 3]
    if following and not isinstance(following[0], (nn.Conv2d, nn.Linear, nn.Flatten)):
        out["activation"] = (type(following[0]).__name__, float(maps[layer + 1][channel, row, col]))
        if len(following) == 2 and isinstance(following[1], (nn.MaxPool2d, nn.AvgPool2d)):
            pool = following[1]
            pk, ps = pool.kernel_size, pool.stride
            r, c = row // ps, col // ps  # the (first) window holding this cell
            if r < maps[layer + 2].shape[1] and c < maps[layer + 2].shape[2]:
                window = maps[layer + 1][channel, r * ps:r * ps + pk, c * ps:c * ps + pk]
                out["pool"] = (type(pool).__name__, (r, c), window, float(maps[layer + 2][channel, r, c]))
    return out


def test_report(model: nn.Module, ds: images.ImageDataset, worst: int = 12) -> dict:
    """On the held-out test split: accuracy per class, and the mistakes the network was surest of."""
    x, y = ds.part("test")
    probs = predict(model, x)
    pred = probs.argmax(1)
    per_class = [float((pred[y == k] == k).mean()) if (y == k).any() else float("nan")
                 for k in range(len(ds.classes))]
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]])][:worst]
    return {"accuracy": float((pred == y).mean()), "per_class": per_class,
            "mistakes": [(int(i), int(y[i]), int(pred[i]), float(probs[i, pred[i]])) for i in order]}


def as_input(picture, shape: tuple[int, int, int]) -> np.ndarray:
    """A PIL image (an upload) as one network input of `shape`: grey or colour, resized, in [0, 1].
    Digit-like data are white strokes on black: a mostly light picture is inverted to match."""
    c, h, w = shape
    arr = np.asarray(picture.convert("L" if c == 1 else "RGB").resize((w, h)), np.float32) / 255.0
    arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    if c == 1 and arr.mean() > 0.5:
        arr = 1.0 - arr
    return arr


def frame_drawing(rgba: np.ndarray, margin: float = 0.15) -> np.ndarray | None:
    """A canvas drawing (H, W, 4 uint8, strokes on a transparent or black ground) cropped to
    what was drawn, centred on a black square with `margin` of free space on each side — the
    way MNIST's digits were framed — so a small sketch in a corner reads like a training
    image. Returns (S, S, 3) uint8, or None when nothing was drawn."""
    rgb = rgba[..., :3].astype(np.float32) * (rgba[..., 3:4].astype(np.float32) / 255.0 if rgba.shape[-1] == 4 else 1)
    ink = np.flatnonzero(rgb.max(-1).reshape(-1) > 8)
    if len(ink) == 0:
        return None
    rows, cols = np.unravel_index(ink, rgb.shape[:2])
    crop = rgb[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    side = int(max(crop.shape[:2]) / (1 - 2 * margin)) + 1
    out = np.zeros((side, side, 3), np.float32)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    out[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return out.astype(np.uint8)
