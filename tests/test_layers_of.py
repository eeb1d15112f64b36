"""The look-inside tools on networks not built from a spec (a torchvision ResNet, a Sequential(backbone,
head)), through layers_of. Oracles: the modules themselves, forward hooks set here, Captum called
directly, autograd, and the layer outputs computed by hand."""
import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn
from torchvision.models import resnet18

from dl_core import backprop, cnn, explain, layerstats, trust
from dl_core.layerlist import layers_of
from dl_core.spec import build, mlp_spec

RESNET_CHILDREN = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=10).eval()


def _conv_net() -> nn.Sequential:
    """A small backbone with two convolutions and a head: flattened, [conv, relu, conv, relu, flatten, linear]."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    return nn.Sequential(backbone, nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 3))).eval()


def test_layers_of_reads_spec_nets_sequentials_and_resnets_in_forward_order():
    spec_net = build(mlp_spec(2, [4], "relu", 2), seed=0)
    assert layers_of(spec_net) == list(spec_net.layers)
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)
    assert layers_of(nn.Sequential(nn.Sequential(a, b), c)) == [a, b, c]
    net = _resnet()
    assert layers_of(net) == [getattr(net, name) for name in RESNET_CHILDREN]


def test_resnet_feature_maps_are_what_its_forward_pass_produces():
    net, image = _resnet(), torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    seen = {}
    hooks = [getattr(net, n).register_forward_hook(lambda m, a, out, n=n: seen.__setitem__(n, out[0].clone()))
             for n in RESNET_CHILDREN]
    with torch.no_grad():
        net(image[None])
    for h in hooks:
        h.remove()
    maps = cnn.feature_maps(net, image)
    assert [m.shape for m in maps] == [tuple(seen[n].shape) for n in RESNET_CHILDREN]
    assert maps[0].shape == (64, 16, 16) and maps[7].shape == (512, 1, 1) and maps[-1].shape == (10,)
    for m, n in zip(maps, RESNET_CHILDREN):
        np.testing.assert_allclose(m, seen[n].numpy(), rtol=1e-5, atol=1e-5)
    cell = cnn.conv_cell(net, image, 0, channel=3, row=5, col=7, maps=maps)  # conv1: stride 2, padding 3, no bias
    assert abs(cell["value"] - cell["network_value"]) < 1e-4


def test_gradcam_on_a_backbone_and_head_looks_at_the_last_convolution():
    model = explain.eval_copy(_conv_net())
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    backbone = model[0]
    assert explain.conv_layers(model) == [0, 2] and "gradcam" in explain.available(model)
    result = explain.attribute(model, x, 2, "gradcam")
    assert result.attribution.shape == (1, 8, 8)
    for layer, module in ((None, backbone[2]), (0, backbone[0])):
        cam = LayerGradCam(model, module).attribute(x, target=2, relu_attributions=True)
        direct = LayerAttribution.interpolate(cam, (8, 8), "bilinear")[0].detach().numpy()
        got = explain.Explainer(model, 0).explain(x[0].numpy(), 2, "gradcam", layer=layer).attribution
        np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-6)


def test_cascading_randomisation_on_a_backbone_and_head_goes_from_the_top(monkeypatch):
    model = _conv_net()
    trained = [[p.detach().clone() for p in layer.parameters()] for layer in layers_of(model)]
    changed_per_step = []
    attribute = explain.attribute

    def watching(m, *args, **kwargs):  # which layers differ from the trained ones when a map is taken
        if m is not model:
            changed_per_step.append([i for i, (layer, before) in enumerate(zip(layers_of(m), trained))
                                     if any(not torch.equal(p, q) for p, q in zip(layer.parameters(), before))])
        return attribute(m, *args, **kwargs)

    monkeypatch.setattr(trust.explain, "attribute", watching)
    image = np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)
    steps, corr = trust.cascading_randomisation(model, image, 1, ["saliency"])
    assert steps == ["to layer 6", "to layer 3", "to layer 1"]
    assert changed_per_step == [[5], [2, 5], [0, 2, 5]]
    assert len(corr["saliency"]) == 3 and all(np.isfinite(corr["saliency"]))


def test_layer_statistics_see_inside_a_frozen_backbone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 8), nn.Tanh()), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    assert layerstats.labels(model) == ["hidden layer 1 · Tanh"]
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with layerstats.recording(model) as stats:
        model(x)
    y = torch.tanh(model[0][0](x)).detach()
    flat = float(((1 - y ** 2) < layerstats.FLAT_SLOPE).float().mean())  # tanh's slope, largest value 1
    np.testing.assert_allclose(stats, [(float(y.mean()), float(y.std()), flat)], rtol=1e-5, atol=1e-6)


def test_backprop_by_hand_on_a_backbone_and_head_equals_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.Tanh()), nn.Linear(3, 2))
    x = np.array([0.7, -1.3])
    tr = backprop.trace(model, x, 1)
    auto = backprop.autograd_grads(model, x, 1, "classification")
    assert set(tr.grads) == set(auto) == {"0.0.weight", "0.0.bias", "1.weight", "1.bias"}
    assert backprop.max_difference(tr.grads, auto) < 1e-6
