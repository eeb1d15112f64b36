"""Attribution through Captum: one registry of methods with their parameters.

The registry drives the page (each Param becomes a widget) and the tests (each key is a
test case), so adding a method is one entry. Nothing here re-implements an attribution:
every map comes from Captum. What this module adds is what a learner needs around it —
an eval-mode copy of the model (a live model in train mode gives different maps on each
call: dropout, batch norm), baselines chosen by name, any method wrapped in a noise
tunnel, and a cache keyed by (model version, input, method, parameters).
"""
from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from captum import attr as ca
from captum.log import log_usage
from torch import nn

from .inference import predict
from .layerlist import layers_of

BASELINES = {"black": "Black (all zeros)", "blurred": "Blurred input", "noise": "Uniform noise"}
TUNNELS = {"none": "None", "smoothgrad": "SmoothGrad", "smoothgrad_sq": "SmoothGrad²", "vargrad": "VarGrad"}


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    default: Any
    options: tuple = ()  # a choice from these, or else a number in [lo, hi]
    lo: float = 0
    hi: float = 0
    step: float = 1
    help: str = ""


@dataclass(frozen=True)
class Method:
    label: str
    run: Callable  # (model, x, target, params, ctx) -> attribution tensor shaped like x, or (attribution, delta)
    params: tuple[Param, ...] = ()
    needs_conv: bool = False  # GradCAM family: a convolution layer to look at
    about: str = ""
    tunnel: bool = True  # may be wrapped in a NoiseTunnel
    background: bool = False  # baselines drawn from Context.background (the SHAP methods)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


@dataclass
class Context:
    """What some methods need beyond the input: a conv layer, a background sample."""

    layer: nn.Module | None = None
    background: torch.Tensor | None = None  # a few training inputs, for the SHAP methods
    seed: int = 0


def baseline(x: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """The 'absence of signal' a path method starts from."""
    if kind == "noise":
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x)
    if kind == "blurred" and x.dim() == 4:
        k = max(3, (x.shape[-1] // 4) | 1)
        return nn.functional.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
    return torch.zeros_like(x)


def patch_mask(x: torch.Tensor, size: int) -> torch.Tensor:
    """Feature groups for ablation: square patches of `size` pixels, shared across channels."""
    if x.dim() != 4:
        return torch.arange(x.shape[1]).expand_as(x)
    h, w = x.shape[-2:]
    rows = torch.arange(h) // size
    cols = torch.arange(w) // size
    ids = rows[:, None] * (-(-w // size)) + cols[None, :]
    return ids.expand_as(x).contiguous()


def _occlusion(model, x, t, p, ctx):
    """Square windows across all channels for images (one feature at a time for vectors). The
    window is kept inside the image and the stride inside the window: Captum refuses both, and
    a slider must not be able to produce a traceback."""
    if x.dim() != 4:
        window = stride = (1,)
    else:
        size = min(p["window"], *x.shape[-2:])
        window, stride = (x.shape[1], size, size), (x.shape[1], min(p["stride"], size), min(p["stride"], size))
    return ca.Occlusion(model).attribute(x, window, strides=stride, target=t, baselines=0, perturbations_per_eval=64)


def _ig(model, x, t, p, ctx):
    return ca.IntegratedGradients(model).attribute(
        x, baseline(x, p["baseline"], ctx.seed), target=t, n_steps=p["n_steps"], method=p["method"],
        internal_batch_size=p["n_steps"], return_convergence_delta=True)


def _gradcam(model, x, t, p, ctx):
    cam = ca.LayerGradCam(model, ctx.layer).attribute(x, target=t, relu_attributions=True)
    return ca.LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear").expand_as(x) / x.shape[1]


_STEPS = Param("n_steps", "steps", 50, lo=5, hi=300, step=5, help="Points on the path from baseline to input.")
_BASE = Param("baseline", "baseline", "black", tuple(BASELINES), help="Where the path starts: 'no signal'.")
METHODS: dict[str, Method] = {
    "saliency": Method("Saliency", lambda m, x, t, p, c: ca.Saliency(m).attribute(x, target=t, abs=p["abs"]),
                       (Param("abs", "absolute value", True, (True, False)),),
                       about="How much the score changes for a tiny change of each pixel: the raw gradient."),
    "input_x_gradient": Method("Input × Gradient", lambda m, x, t, p, c: ca.InputXGradient(m).attribute(x, target=t),
                               about="The gradient times the pixel's value: black pixels get nothing."),
    "integrated_gradients": Method(
        "Integrated Gradients", _ig,
        (_BASE, _STEPS, Param("method", "integration rule", "gausslegendre",
                              ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_middle"),
                              help="Gauss–Legendre: ~10× smaller completeness gap than the trapezoid rule at "
                                   "50 steps here, in the same time.")),
        about="Gradients summed along a straight path from a baseline to the input; the parts add up to "
              "score(input) − score(baseline) (completeness)."),
    "deeplift": Method("DeepLift", lambda m, x, t, p, c: ca.DeepLift(m).attribute(
        x, baseline(x, p["baseline"], c.seed), target=t, return_convergence_delta=True), (_BASE,),
        about="Compares each neuron with its value on the baseline and shares out the difference."),
    "deeplift_shap": Method("DeepLiftShap", lambda m, x, t, p, c: ca.DeepLiftShap(m).attribute(
        x, c.background, target=t), about="DeepLift averaged over a sample of training images as baselines.",
        tunnel=False, background=True),
    "gradient_shap": Method("GradientShap", lambda m, x, t, p, c: ca.GradientShap(m).attribute(
        x, c.background, target=t, n_samples=p["n_samples"], stdevs=p["stdevs"]),
        (Param("n_samples", "samples", 20, lo=5, hi=100, step=5),
         Param("stdevs", "noise", 0.1, lo=0.0, hi=0.5, step=0.05)),
        about="Expected gradients between random training images and noisy copies of the input.", tunnel=False,
        background=True),
    "guided_backprop": Method("Guided Backprop", lambda m, x, t, p, c: ca.GuidedBackprop(m).attribute(x, target=t),
                              about="Gradients with every ReLU also blocking negative gradients: sharp, pretty "
                                    "— and nearly blind to the model (see the sanity checks)."),
    "deconvolution": Method("Deconvolution", lambda m, x, t, p, c: ca.Deconvolution(m).attribute(x, target=t),
                            about="Zeiler & Fergus: ReLUs pass only positive gradients, ignoring the forward pass."),
    "guided_gradcam": Method("Guided GradCAM", lambda m, x, t, p, c: ca.GuidedGradCam(m, c.layer).attribute(
        x, target=t), needs_conv=True, about="Guided Backprop times GradCAM: sharp and class-specific."),
    "gradcam": Method("GradCAM", _gradcam, needs_conv=True, tunnel=False,
                      about="Which regions of a convolution layer's maps raise the class score, scaled up onto "
                            "the image. Coarse: one value per cell of that layer's map."),
    "occlusion": Method("Occlusion", _occlusion,
                        (Param("window", "window", 4, lo=1, hi=12),
                         Param("stride", "stride", 2, lo=1, hi=8, help="At most the window: larger is cut to it.")),
                        about="Slide a black square over the image and watch the score drop.", tunnel=False),
    "feature_ablation": Method("Feature Ablation", lambda m, x, t, p, c: ca.FeatureAblation(m).attribute(
        x, target=t, feature_mask=patch_mask(x, p["patch"]), baselines=0, perturbations_per_eval=64),
        (Param("patch", "patch size", 2, lo=1, hi=8),),
        about="Blank out one patch at a time and measure the change of the score.", tunnel=False),
}
DEFAULT_SET = ("saliency", "integrated_gradients", "gradcam", "occlusion")
TUNNEL_PARAMS = (Param("nt_samples", "noisy copies", 10, lo=2, hi=50),
                 Param("nt_stdevs", "noise level", 0.15, lo=0.0, hi=0.5, step=0.05))


def available(model: nn.Module) -> list[str]:
    """Method keys that make sense for this model (GradCAM needs a convolution)."""
    has_conv = bool(conv_layers(model))
    return [k for k, m in METHODS.items() if has_conv or not m.needs_conv]


def conv_layers(model: nn.Module) -> list[int]:
    """Indices (into layers_of) of the convolutions, the layers GradCAM can look at."""
    return [i for i, layer in enumerate(layers_of(model)) if isinstance(layer, nn.Conv2d)]


def eval_copy(model: nn.Module) -> nn.Module:
    """A frozen, eval-mode copy on the CPU-or-device the model lives on; take it under the job's lock."""
    clone = copy.deepcopy(model).eval()
    clone = clone.to(memory_format=torch.contiguous_format)
    for param in clone.parameters():
        param.requires_grad_(True)
    return clone


@dataclass
class Result:
    attribution: np.ndarray  # shaped like the input (without batch)
    delta: float | None  # convergence delta (Integrated Gradients, DeepLift): 0 when complete
    ms: float


def attribute(model: nn.Module, x: torch.Tensor, target: int | None, key: str, params: dict | None = None,
              ctx: Context | None = None, tunnel: str = "none", tunnel_params: dict | None = None,
              batch: bool = False) -> Result:
    """One attribution map for one input `x` (shaped like a batch of one) toward class `target`;
    with `batch`, the maps of every row of `x` (e.g. every point of the Playground's plane)."""
    method, ctx = METHODS[key], ctx or Context()
    p = method.defaults() | (params or {})
    if method.needs_conv and ctx.layer is None:
        ctx = Context(layers_of(model)[conv_layers(model)[-1]], ctx.background, ctx.seed)
    if method.background and ctx.background is None:  # no training sample given: black and noise images
        ctx = Context(ctx.layer, torch.stack([baseline(x[0], k, i) for i, k in enumerate(("black", "noise") * 5)]),
                      ctx.seed)
    start = time.perf_counter()
    with warnings.catch_warnings():  # Captum announces each hook it sets; a learner needs none of that
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
        out = _run(model, x, target, key, p, ctx, tunnel, tunnel_params)
    delta = None
    if isinstance(out, tuple):
        out, d = out
        delta = float(d.abs().max())
    out = out.detach().cpu().numpy()
    return Result(out if batch else out[0], delta, (time.perf_counter() - start) * 1000)


def _run(model, x, target, key, p, ctx, tunnel, tunnel_params):
    method = METHODS[key]
    if tunnel != "none" and method.tunnel:
        tp = {q.name: q.default for q in TUNNEL_PARAMS} | (tunnel_params or {})
        torch.manual_seed(ctx.seed)
        inner = _AsAttribution(model, key, p, ctx)
        return ca.NoiseTunnel(inner).attribute(x, nt_type=tunnel, nt_samples=tp["nt_samples"],
                                               stdevs=tp["nt_stdevs"], target=target)
    return method.run(model, x, target, p, ctx)


class _AsAttribution(ca.GradientAttribution):
    """Any registry method as a Captum attribution, so NoiseTunnel can wrap it."""

    def __init__(self, model, key, params, ctx):
        super().__init__(model)
        self.key, self.params, self.ctx = key, params, ctx

    @log_usage()  # NoiseTunnel calls the undecorated function through __wrapped__
    def attribute(self, inputs, target=None, **_):
        out = METHODS[self.key].run(self.forward_func, inputs, target, self.params, self.ctx)
        return out[0] if isinstance(out, tuple) else out

    def has_convergence_delta(self) -> bool:
        return False


def heat(attribution: np.ndarray, sign: str = "all") -> np.ndarray:
    """(C, H, W) or (F,) attribution → one map in [-1, 1]: channels summed, one sign kept, the
    99th percentile of |value| scaled to 1 (one hot pixel does not wash the rest out)."""
    a = attribution.sum(0) if attribution.ndim == 3 else attribution
    a = {"positive": np.clip(a, 0, None), "negative": np.clip(a, None, 0), "absolute": np.abs(a)}.get(sign, a)
    scale = np.percentile(np.abs(a), 99) if a.size > 16 else np.abs(a).max()
    return np.clip(a / scale, -1, 1) if scale > 0 else np.zeros_like(a)


@dataclass
class Explainer:
    """An eval-mode copy of one model version, with a cache of its maps."""

    model: nn.Module
    version: Any
    background: torch.Tensor | None = None
    max_cached: int = 256
    _cache: OrderedDict = field(default_factory=OrderedDict)

    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(self.model, x)

    def explain(self, image: np.ndarray, target: int | None, key: str, params: dict | None = None,
                layer: int | None = None, tunnel: str = "none", tunnel_params: dict | None = None) -> Result:
        digest = hashlib.sha1(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()
        cache_key = (digest, target, key, tuple(sorted((params or {}).items())), layer, tunnel,
                     tuple(sorted((tunnel_params or {}).items())))
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key]
        x = torch.as_tensor(image[None], dtype=torch.float32, device=self.device())
        ctx = Context(None if layer is None else layers_of(self.model)[layer], self.background)
        result = attribute(self.model, x, target, key, params, ctx, tunnel, tunnel_params)
        self._cache[cache_key] = result
        if len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return result
