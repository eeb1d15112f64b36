"""Per-layer activation statistics (oracles: autograd's slope, the layer outputs themselves)
and mixed precision through the one training path."""
import numpy as np
import pytest
import torch

from conftest import wait_for
from dl_core import cnn, deepnets, layerstats
from dl_core.activations import ACTIVATIONS
from dl_core.data import images
from dl_core.data.tensors import TensorData
from dl_core.engine import TrainConfig, TrainingJob
from dl_core.spec import build, mlp_spec


@pytest.mark.parametrize("fn", [k for k in ACTIVATIONS if k != "linear"])
def test_recorded_flat_share_follows_autograds_slope(fn):
    """The slope formula of each activation equals autograd's derivative (relative to its largest value)."""
    module = ACTIVATIONS[fn].make()
    x = torch.linspace(-8, 8, 4001, requires_grad=True)
    y = module(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    rel = layerstats._SLOPES[type(module)](x.detach(), y.detach())
    torch.testing.assert_close(rel, slope / slope.max(), atol=2e-3, rtol=0)


def test_stats_are_the_layer_outputs_own_mean_spread_and_flat_share():
    spec = mlp_spec(2, [16, 16], "relu", 2)
    model = build(spec, seed=0)
    with torch.no_grad():
        model.layers[2].bias.fill_(-100.0)  # every unit of the second hidden layer is off: dead ReLUs
    x = torch.randn(64, 2)
    with layerstats.recording(model) as stats:
        model(x)
    first = model.layers[1](model.layers[0](x)).detach()
    assert layerstats.labels(model) == ["hidden layer 1 · ReLU", "hidden layer 2 · ReLU"]
    assert stats[0] == pytest.approx((float(first.mean()), float(first.std()), float((first == 0).float().mean())))
    assert stats[1][2] == 1.0 and stats[1][:2] == (0.0, 0.0)
    model(x)
    assert len(stats) == 2  # the hooks are gone after the block
    assert not any(m._forward_hooks for m in model.modules())


def _flat_shares_after_steps(executor, weight_scale: float) -> tuple[list, TrainingJob]:
    model = build(mlp_spec(2, [8] * 6, "sigmoid", 2), seed=0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(weight_scale)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 2, generator=g), torch.randint(0, 2, (256,), generator=g)
    job = TrainingJob.supervised(model, TensorData.from_arrays(x, y, x[:32], y[:32], "classification"),
                      TrainConfig(snapshot_interval_s=0.0), executor=executor)
    job.step_batch(3)
    wait_for(lambda: job.step == 3)
    job.stop()
    return job.view()["activations"], job


def test_a_job_records_saturation_in_a_deep_sigmoid_network(executor):
    """The vanishing-gradient lesson's picture: large weights pin sigmoids at 0 or 1."""
    acts, job = _flat_shares_after_steps(executor, 12.0)
    calm, _ = _flat_shares_after_steps(executor, 1.0)
    assert [s for s, _ in acts] == [1, 2, 3] and len(acts[0][1]) == 6 == len(job.activation_labels)
    assert job.gradient_labels == [f"hidden layer {i} · Linear" for i in range(1, 7)] + ["output layer · Linear"]
    saturated = sum(flat for _, _, flat in acts[0][1]) / 6
    assert saturated > 0.15 and sum(flat for _, _, flat in calm[0][1]) / 6 < 0.05, (saturated, calm[0][1])


@pytest.mark.parametrize("bn, res", [(False, False), (True, False), (False, True), (True, True)])
def test_a_dense_stack_is_numbered_by_hidden_layer_everywhere(bn, res):
    """The gradient-flow lab's 20 hidden layers are 1…20 and "out" in the bars, the histograms and
    the legends alike, whatever batch norm or residual blocks add to the module list."""
    model = build(deepnets.deep_spec(2, 20, 8, "sigmoid", 2, bn, res))
    assert layerstats.weight_numbers(model) == [str(i) for i in range(1, 21)] + ["out"]
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    assert layerstats.weight_labels(model, names)[-1] == "output layer · Linear"
    acts = layerstats.labels(model)
    assert len(acts) == 20 and acts[0].startswith("hidden layer 1 · ") and acts[-1].startswith("hidden layer 20 · ")


def test_weight_labels_name_the_layer_table_rows():
    ds = images.digits(16, seed=0)
    model = build(cnn.preset("resnet", ds))
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    labels = layerstats.weight_labels(model, names)
    assert labels[:3] == ["layer 1 · Conv2d", "layer 4 · Conv2d #1", "layer 4 · Conv2d #2"]
    assert labels[-1].endswith("Linear")


def test_mixed_precision_path_trains_a_cnn(executor):
    """CUDA uses float16 + GradScaler; on CPU the same path runs bfloat16 autocast, so it is exercised here."""
    ds = images.digits(8, seed=0)
    job = cnn.make_job(ds, cnn.preset("tiny_vgg", ds), TrainConfig(batch_size=64, lr=0.003, max_epochs=8,
                                                                    mixed_precision=True))
    job.executor = executor
    assert job._precision["model"].enabled and job._precision["model"].dtype == torch.bfloat16
    job.start()
    wait_for(lambda: job.status()["state"] == "finished", timeout=120)
    job.join(5)
    assert job.view()["epochs"][-1]["test_acc"] > 0.85
    assert all(p.dtype == torch.float32 for p in job.model.parameters())  # the weights stay float32


def test_flow_histograms_keep_every_output_and_are_not_squeezed_by_an_outlier():
    """One far-out input makes huge ReLU outputs; the histogram still spreads the other 255
    points over its bins (the range is the middle 99 %) and loses nothing (shares add to 1)."""
    model = build(deepnets.deep_spec(2, 3, 16, "relu", 2), seed=0).eval()
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    x[0] = 1e4
    hists = deepnets.FlowProbe(x)(model)["histograms"]
    assert len(hists) == 3
    for counts, edges, off in hists:
        assert counts.sum() + off == pytest.approx(1.0)
        assert counts[0] < 0.9  # without the clipped range: one bin held everything but the outlier
        assert edges[-1] < 1e3


def test_relus_that_are_off_are_counted_apart_from_the_histogram():
    """An exploding ReLU layer: most outputs exactly 0, the rest up to millions. The zeros are a
    share of their own and the bins cover the outputs that are on, which fill more than one bin."""
    values = np.concatenate([np.zeros(700), np.geomspace(1e3, 2e6, 300)])
    counts, edges, off = deepnets.FlowProbe.histogram(values)
    assert off == pytest.approx(0.7) and counts.sum() == pytest.approx(0.3)
    assert edges[0] >= 1e3 and (counts > 0).sum() > 3
    counts, edges, off = deepnets.FlowProbe.histogram(np.linspace(-1, 1, 101))  # a tanh: its 0 is just a value
    assert off == 0 and counts.sum() == pytest.approx(1.0)
