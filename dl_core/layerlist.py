"""`layers_of`: a network's layers in forward order, for every tool that looks inside one layer at a time
(feature maps, GradCAM, cascading randomisation, activation statistics, the backprop walk).

Its own module, needing only torch, so that any of them can use it without importing another lab.
"""
from __future__ import annotations

from torch import nn


def layers_of(model: nn.Module) -> list[nn.Module]:
    """A SpecNet's `layers`; an nn.Sequential's children, a Sequential child opened one level (so
    `Sequential(backbone, head)` gives the backbone's layers, then the head); any other module's
    children in registration order (a torchvision ResNet's: conv1, bn1, …, layer4, avgpool, fc)."""
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.Sequential):
        return list(layers)
    if isinstance(model, nn.Sequential):
        # a backbone is a Sequential of its own: its layers are what a learner looks at, not one opaque block
        return [m for child in model for m in (child if isinstance(child, nn.Sequential) else (child,))]
    return list(model.children())
