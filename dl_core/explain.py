"""Attribution through Captum: one registry of methods with their parameters.

The registry drives the page (each Param becomes a widget) and the tests (each key is a
test case), so adding a method is one entry. Nothing here re-implements an attribution:
every map comes from Captum. What this module adds is what a learner needs around it —
an eval-mode copy of the model (a live model in train mode gives different maps on each
call: dropout, batch norm), baselines chosen by name, any method wrapped in a noise
tunnel, a cache keyed by (model version, input, method, parameters), and each method's cost
in passes through the model (Method.passes: explain_jobs.py estimates a page's work from it).
"""
from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
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
    # (params, input shape) -> the inputs it runs through the model and back (the cost estimate;
    # a forward pass alone counts a third: Occlusion's windows)
    passes: Callable = lambda p, shape: 1

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


def _windows(shape: tuple, size: int, stride: int, cover: bool = False) -> int:
    """How many windows Occlusion slides over an image (`cover`: patches that tile it, for ablation);
    one per feature for a vector."""
    if len(shape) != 3:
        return shape[0]
    h, w = shape[1:]
    if cover:
        return -(-h // size) * -(-w // size)
    size = min(size, h, w)
    stride = min(stride, size)
    return ((h - size) // stride + 1) * ((w - size) // stride + 1)


def _gradcam(model, x, t, p, ctx):
    cam = ca.LayerGradCam(model, ctx.layer).attribute(x, target=t, relu_attributions=True)
    return ca.LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear").expand_as(x) / x.shape[1]


BACKGROUND = 20  # training inputs the SHAP methods draw their baselines from
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
              "score(input) − score(baseline) (completeness).", passes=lambda p, shape: p["n_steps"] + 1),
    "deeplift": Method("DeepLift", lambda m, x, t, p, c: ca.DeepLift(m).attribute(
        x, baseline(x, p["baseline"], c.seed), target=t, return_convergence_delta=True), (_BASE,),
        about="Compares each neuron with its value on the baseline and shares out the difference.",
        passes=lambda p, shape: 2),
    "deeplift_shap": Method("DeepLiftShap", lambda m, x, t, p, c: ca.DeepLiftShap(m).attribute(
        x, c.background, target=t), about="DeepLift averaged over a sample of training images as baselines.",
        tunnel=False, background=True, passes=lambda p, shape: 2 * BACKGROUND),
    "gradient_shap": Method("GradientShap", lambda m, x, t, p, c: ca.GradientShap(m).attribute(
        x, c.background, target=t, n_samples=p["n_samples"], stdevs=p["stdevs"]),
        (Param("n_samples", "samples", 20, lo=5, hi=100, step=5),
         Param("stdevs", "noise", 0.1, lo=0.0, hi=0.5, step=0.05)),
        about="Expected gradients between random training images and noisy copies of the input.", tunnel=False,
        background=True, passes=lambda p, shape: p["n_samples"]),
    "guided_backprop": Method("Guided Backprop", lambda m, x, t, p, c: ca.GuidedBackprop(m).attribute(x, target=t),
                              about="Gradients with every ReLU also blocking negative gradients: sharp, pretty "
                                    "— and nearly blind to the model (see the sanity checks)."),
    "deconvolution": Method("Deconvolution", lambda m, x, t, p, c: ca.Deconvolution(m).attribute(x, target=t),
                            about="Zeiler & Fergus: ReLUs pass only positive gradients, ignoring the forward pass."),
    "guided_gradcam": Method("Guided GradCAM", lambda m, x, t, p, c: ca.GuidedGradCam(m, c.layer).attribute(
        x, target=t), needs_conv=True, about="Guided Backprop times GradCAM: sharp and class-specific.",
        passes=lambda p, shape: 2),
    "gradcam": Method("GradCAM", _gradcam, needs_conv=True, tunnel=False,
                      about="Which regions of a convolution layer's maps raise the class score, scaled up onto "
                            "the image. Coarse: one value per cell of that layer's map."),
    "occlusion": Method("Occlusion", _occlusion,
                        (Param("window", "window", 4, lo=1, hi=12),
                         Param("stride", "stride", 2, lo=1, hi=8, help="At most the window: larger is cut to it.")),
                        about="Slide a black square over the image and watch the score drop.", tunnel=False,
                        passes=lambda p, shape: (_windows(shape, p["window"], p["stride"]) + 1) / 3),
    "feature_ablation": Method("Feature Ablation", lambda m, x, t, p, c: ca.FeatureAblation(m).attribute(
        x, target=t, feature_mask=patch_mask(x, p["patch"]), baselines=0, perturbations_per_eval=64),
        (Param("patch", "patch size", 2, lo=1, hi=8),),
        about="Blank out one patch at a time and measure the change of the score.", tunnel=False,
        passes=lambda p, shape: (_windows(shape, p["patch"], p["patch"], cover=True) + 1) / 3),
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
    with warnings.catch_warnings(), _seeded(ctx.seed):
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")  # it announces each hook
        out = _run(model, x, target, key, p, ctx, tunnel, tunnel_params)
    delta = None
    if isinstance(out, tuple):
        out, d = out
        delta = float(d.abs().max())
    out = out.detach().cpu().numpy()
    return Result(out if batch else out[0], delta, (time.perf_counter() - start) * 1000)


@contextmanager
def _seeded(seed: int):
    """Seeded random numbers (torch's, and numpy's that GradientShap draws from), the state before
    put back after: the same map wherever it is computed (a lane's thread, a worker), and others'
    random numbers left as they were."""
    before = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(before)


def _run(model, x, target, key, p, ctx, tunnel, tunnel_params):
    method = METHODS[key]
    if tunnel != "none" and method.tunnel:
        tp = {q.name: q.default for q in TUNNEL_PARAMS} | (tunnel_params or {})
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


def digest(array: np.ndarray) -> str:
    """A short name for an input's values (cache keys)."""
    return hashlib.sha1(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()[:16]


def map_key(image: np.ndarray, target: int | None, key: str, params: dict | None = None, layer: int | None = None,
            tunnel: str = "none", tunnel_params: dict | None = None) -> tuple:
    """What a map is cached under, beside its model's version."""
    return ("map", digest(image), target, key, tuple(sorted((params or {}).items())), layer, tunnel,
            tuple(sorted((tunnel_params or {}).items())))


def explain_image(model: nn.Module, image: np.ndarray, target: int | None, key: str, params: dict | None = None,
                  layer: int | None = None, tunnel: str = "none", tunnel_params: dict | None = None,
                  background: torch.Tensor | None = None) -> Result:
    """One map of one image (C, H, W), `layer` an index into layers_of(model): plain values only, so
    that a map can be asked for in another process (explain_jobs.py)."""
    x = torch.as_tensor(image[None], dtype=torch.float32, device=next(model.parameters()).device)
    ctx = Context(None if layer is None else layers_of(model)[layer], background)
    return attribute(model, x, target, key, params, ctx, tunnel, tunnel_params)


@dataclass
class Explainer:
    """An eval-mode copy of one model version, with a cache of its maps (and of any other result
    about it: explain_jobs.Task keys)."""

    model: nn.Module
    version: Any
    background: torch.Tensor | None = None
    max_cached: int = 256
    _cache: OrderedDict = field(default_factory=OrderedDict)

    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(self.model, x)

    def cached(self, key: tuple) -> Any:
        """The result kept under `key`, or None."""
        if key in self._cache:
            self._cache.move_to_end(key)
        return self._cache.get(key)

    def keep(self, key: tuple, result: Any) -> None:
        self._cache[key] = result
        self._cache.move_to_end(key)
        if len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)

    def explain(self, image: np.ndarray, target: int | None, key: str, params: dict | None = None,
                layer: int | None = None, tunnel: str = "none", tunnel_params: dict | None = None) -> Result:
        """A map, computed here and now unless cached (a page asks an explanation job instead)."""
        cache_key = map_key(image, target, key, params, layer, tunnel, tunnel_params)
        result = self.cached(cache_key)
        if result is None:
            background = self.background if METHODS[key].background else None
            result = explain_image(self.model, image, target, key, params, layer, tunnel, tunnel_params, background)
            self.keep(cache_key, result)
        return result
