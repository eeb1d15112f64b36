"""A model is a frozen, serialisable list of layer specs, built into a real nn.Module.

Shapes are inferred layer by layer, so a learner never wires sizes by hand;
what can still be wrong (zero neurons, an absurd size, a model over the
parameter budget) is refused with a sentence naming the layer and the reason.
The layer registry (dl_core.layers) feeds the builder, the shape table, the
code exporter and the tests; a new layer type is one entry there.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .layers import LAYERS

PARAM_BUDGET = 2_000_000  # parameters; keeps one classroom server responsive
MAX_LAYERS = 256  # more than any lab builds (30 deep layers with batch norm is ~90): refused before building
MAX_SPEC_CHARS = 256 * 1024  # a description this long is not one a lab wrote: refused before parsing


class SpecError(ValueError):
    """A model spec that cannot be built; `layer` is 1-based (None: the whole model)."""

    def __init__(self, message: str, layer: int | None = None):
        super().__init__(message)
        self.layer = layer


class SpecTooLarge(SpecError):
    """A description past this app's limits, refused before it is parsed or built."""


@dataclass(frozen=True)
class LayerSpec:
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, **params) -> "LayerSpec":
        return cls(kind, tuple(sorted(params.items())))

    @property
    def p(self) -> dict:
        return dict(self.params)


@dataclass(frozen=True)
class InputCode:
    """How a lab turns raw data into a network's inputs, as PyTorch source for exported scripts.

    Supplied by whoever builds the spec (the Playground: its feature transform, from
    data2d), so the exporter writes any lab's inputs without knowing them."""

    source: str  # defines features(raw) -> the network's (N, *input_shape) float32 inputs
    example: str  # an expression for a batch of raw data, for the script's demo
    reader: str = ""  # defines read_csv(path) -> (raw, targets) for the lab's own data download, if any


@dataclass(frozen=True)
class ModelSpec:
    """Input shape, layers, and what the inputs and outputs mean."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    task: str = "classification"  # or "regression"
    input_names: tuple[str, ...] = field(default=())
    # None: raw data are the inputs. How the app feeds the network, not part of it: neither
    # saved in checkpoints nor compared; the lab that builds a job attaches it.
    input_code: InputCode | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "layers": [{"kind": l.kind, **l.p} for l in self.layers],
            "task": self.task,
            "input_names": list(self.input_names),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        if isinstance(d, dict) and isinstance(d.get("layers"), list) and len(d["layers"]) > MAX_LAYERS:
            raise SpecTooLarge(f"The model has {len(d['layers']):,} layers; this app builds at most {MAX_LAYERS}.")
        try:
            layers = tuple(
                LayerSpec.of(l["kind"], **{k: v for k, v in l.items() if k != "kind"}) for l in d["layers"]
            )
            return cls(tuple(int(s) for s in d["input_shape"]), layers, str(d.get("task", "classification")),
                       tuple(str(n) for n in d.get("input_names", ())))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # OverflowError: int(inf)
            raise SpecError(f"The model description is incomplete or malformed ({exc}).") from None

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        if len(text) > MAX_SPEC_CHARS:
            raise SpecTooLarge(f"The model's description is too long for this app ({len(text) / 1024:,.0f} KB; the "
                               f"limit is {MAX_SPEC_CHARS // 1024} KB).")
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, RecursionError):  # RecursionError: brackets nested thousands deep
            raise SpecError("The model description is not valid JSON.") from None


@dataclass(frozen=True)
class LayerRow:
    index: int  # 1-based
    kind: str
    label: str
    out_shape: tuple
    params: int
    macs: int  # multiply-adds per example


def summarize(spec: ModelSpec, budget: int = PARAM_BUDGET) -> list[LayerRow]:
    """Validate the spec and return each layer's output shape and parameter count."""
    if not spec.layers:
        raise SpecError("The model has no layers.")
    if not spec.input_shape or any(s < 1 for s in spec.input_shape):
        raise SpecError(f"The input shape {spec.input_shape} is empty; pick at least one input feature.")
    shape, rows = tuple(spec.input_shape), []
    for i, layer in enumerate(spec.layers, 1):
        lt = LAYERS.get(layer.kind) if isinstance(layer.kind, str) else None  # a file's kind may be a list
        if lt is None:
            raise SpecError(f"Layer {i} has unknown type {str(layer.kind)[:40]!r}.", i)
        problem = lt.check(shape, layer.p)
        if problem:
            raise SpecError(f"Layer {i} ({lt.label}) {problem}.", i)
        count, macs = lt.params(shape, layer.p), lt.macs(shape, layer.p)
        shape = lt.out_shape(shape, layer.p)
        if min(shape) < 1:
            raise SpecError(f"Layer {i} ({lt.label}) shrinks its input to nothing ({shape}).", i)
        rows.append(LayerRow(i, layer.kind, lt.label, shape, count, macs))
    total = sum(r.params for r in rows)
    if total > budget:
        raise SpecError(f"This model has {total:,} parameters, over this app's budget of {budget:,}: "
                        "use fewer or narrower layers.")
    if spec.task == "classification" and math.prod(shape) < 2:
        raise SpecError("A classifier needs at least 2 outputs, one score per class.", len(rows))
    return rows


class SpecNet(nn.Module):
    """The built model. `layers` mirrors the spec one-to-one, so state_dict keys
    ("layers.0.weight") are the same in the app and in exported code."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def build(spec: ModelSpec, seed: int | None = None) -> SpecNet:
    """Validate, then build fresh modules (one activation module per use, as
    Captum's DeepLift needs) with weights drawn from `seed` when given."""
    summarize(spec)
    if seed is not None:
        torch.manual_seed(seed)
    shape, modules = tuple(spec.input_shape), []
    for layer in spec.layers:
        lt = LAYERS[layer.kind]
        modules.append(lt.build(shape, layer.p))
        shape = lt.out_shape(shape, layer.p)
    return SpecNet(modules)


def mlp_spec(n_inputs: int, hidden: list[int], activation: str, n_outputs: int, task: str = "classification",
             dropout: float = 0.0, batchnorm: bool = False, input_names: tuple[str, ...] = ()) -> ModelSpec:
    """The Playground's network: each hidden layer is Linear → [BatchNorm] → activation → [Dropout]."""
    layers = []
    for width in hidden:
        layers.append(LayerSpec.of("linear", out_features=width))
        if batchnorm:
            layers.append(LayerSpec.of("batchnorm"))
        layers.append(LayerSpec.of("activation", fn=activation))
        if dropout > 0:
            layers.append(LayerSpec.of("dropout", p=dropout))
    layers.append(LayerSpec.of("linear", out_features=n_outputs))
    return ModelSpec((n_inputs,), tuple(layers), task, tuple(input_names))


def neuron_layers(spec: ModelSpec) -> list[int]:
    """0-based indices of the modules whose outputs are the hidden neurons' values
    (each hidden layer's activation), in depth order."""
    return [i for i, l in enumerate(spec.layers) if l.kind == "activation"]


def linear_layers(spec: ModelSpec) -> list[int]:
    return [i for i, l in enumerate(spec.layers) if l.kind == "linear"]
