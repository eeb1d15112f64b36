"""Classic CNNs as layer-spec lists, sized for any input of at least 8×8.

Padding keeps the early maps large enough that every preset works on 8×8
digits as well as 28×28 MNIST or 32×32 CIFAR; the shape table shows how each
layer shrinks the image.
"""
from __future__ import annotations

from .spec import LayerSpec, ModelSpec

L = LayerSpec.of


def _act():
    return L("activation", fn="relu")


def linear_baseline(n: int) -> list[LayerSpec]:
    return [L("flatten"), L("linear", out_features=n)]


def lenet5(n: int) -> list[LayerSpec]:
    """LeCun et al. (1998), with ReLU and padding so small inputs fit."""
    return [L("conv2d", out_channels=6, kernel=5, stride=1, padding=2), _act(), L("avgpool", kernel=2, stride=2),
            L("conv2d", out_channels=16, kernel=5, stride=1, padding=2), _act(), L("avgpool", kernel=2, stride=2),
            L("flatten"), L("linear", out_features=120), _act(), L("linear", out_features=84), _act(),
            L("linear", out_features=n)]


def tiny_vgg(n: int) -> list[LayerSpec]:
    """CNN Explainer's model: two blocks of conv-conv-pool with 10 channels."""
    block = [L("conv2d", out_channels=10, kernel=3, stride=1, padding=1), _act(),
             L("conv2d", out_channels=10, kernel=3, stride=1, padding=1), _act(), L("maxpool", kernel=2, stride=2)]
    return [*block, *block, L("flatten"), L("linear", out_features=n)]


def small_resnet(n: int) -> list[LayerSpec]:
    """A stem, two residual stages and global average pooling."""
    return [L("conv2d", out_channels=16, kernel=3, stride=1, padding=1), L("batchnorm"), _act(), L("residual"),
            L("maxpool", kernel=2, stride=2), L("conv2d", out_channels=32, kernel=3, stride=1, padding=1),
            L("batchnorm"), _act(), L("residual"), L("gap"), L("linear", out_features=n)]


PRESETS = {
    "linear": ("One linear layer (baseline)", linear_baseline,
               "Every pixel straight to the classes: no features, no depth. The bar to beat."),
    "lenet5": ("LeNet-5", lenet5, "The 1998 digit reader: two convolution + pooling stages, then dense layers."),
    "tiny_vgg": ("Tiny VGG (CNN Explainer)", tiny_vgg, "Two blocks of 3×3 convolutions and max pooling."),
    "resnet": ("Small ResNet", small_resnet, "Residual blocks let signals and gradients skip layers."),
}


def preset_spec(key: str, input_shape: tuple[int, int, int], n_classes: int) -> ModelSpec:
    return ModelSpec(tuple(input_shape), tuple(PRESETS[key][1](n_classes)), "classification")
