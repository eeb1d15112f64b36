"""Attribution methods (every registry key), their axioms, and the trust measurements.
Oracles: f(x) − f(baseline) for completeness, a model that only sees one region, scipy's
Spearman correlation, random-order deletion."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from dl_core import explain, reference, trust
from dl_core.presets import preset_spec
from dl_core.spec import SpecNet, build


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The reference digits CNN, trained once for this module (a few seconds)."""
    model, meta = reference.model(tmp_path_factory.mktemp("ref"))
    xte, yte = reference.data().part("test")
    return explain.eval_copy(model), xte, yte, meta


@pytest.mark.parametrize("key", list(explain.METHODS))
def test_every_method_gives_a_finite_map_shaped_like_the_input(key):
    model = explain.eval_copy(build(reference.SPEC, seed=0))
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    result = explain.attribute(model, x, 3, key)
    assert result.attribution.shape == (1, 28, 28) and np.isfinite(result.attribution).all()
    if explain.METHODS[key].tunnel:
        tunnelled = explain.attribute(model, x, 3, key, tunnel="smoothgrad_sq", tunnel_params={"nt_samples": 3})
        assert tunnelled.attribution.shape == (1, 28, 28) and (tunnelled.attribution >= 0).all()


def _extremes(param: explain.Param) -> list:
    return list(param.options) if param.options else [param.lo, param.hi]


@pytest.mark.parametrize("key", [k for k, m in explain.METHODS.items() if m.params])
def test_every_setting_a_widget_can_reach_gives_a_map(key):
    """Each parameter at each end of its widget's range (each option of a choice), alone and all
    together, on a small 8×8 image where a 12-pixel window cannot fit: a map, never a traceback."""
    model = explain.eval_copy(build(preset_spec("tiny_vgg", (1, 8, 8), 10), seed=0))
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    params = explain.METHODS[key].params
    settings = [{p.name: v} for p in params for v in _extremes(p)]
    settings += [{p.name: _extremes(p)[-1] for p in params}, {p.name: _extremes(p)[0] for p in params}]
    for setting in settings:
        result = explain.attribute(model, x, 3, key, setting)
        assert result.attribution.shape == (1, 8, 8) and np.isfinite(result.attribution).all(), setting


@pytest.mark.parametrize("baseline", list(explain.BASELINES))
def test_integrated_gradients_adds_up_to_the_score_difference(trained, baseline):
    """Completeness: Σ attributions = f(x) − f(baseline), checked against the model's own outputs."""
    model, xte, yte, _ = trained
    x = torch.as_tensor(xte[:1])
    result = explain.attribute(model, x, int(yte[0]), "integrated_gradients",
                               {"baseline": baseline, "n_steps": 200})
    with torch.no_grad():
        gap = float(model(x)[0, yte[0]] - model(explain.baseline(x, baseline))[0, yte[0]])
    assert result.attribution.sum() == pytest.approx(gap, abs=0.02 * max(1.0, abs(gap)))
    assert result.delta < 0.02 * max(1.0, abs(gap))


class TopLeftOnly(nn.Module):
    """Its output depends on the top-left 8×8 corner only; the rest of the image is ignored."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x[:, :, :8, :8])


@pytest.mark.parametrize("key", [k for k, m in explain.METHODS.items() if not m.needs_conv])
def test_attribution_mass_lands_on_the_only_region_the_model_reads(key):
    model = explain.eval_copy(TopLeftOnly())
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1)) + 0.1
    a = np.abs(explain.attribute(model, x, 1, key, {"window": 2, "stride": 2}).attribution[0])
    assert a[:8, :8].sum() / a.sum() > 0.9, key


def test_rank_correlation_equals_scipys_spearman():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    b[:50] = 0.0  # ties, as ReLU'd maps have
    a[::7] = 1.0
    assert trust.rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-9)
    assert trust.rank_correlation(a, a) == pytest.approx(1.0)


def test_cascading_randomisation_breaks_the_saliency_map(trained):
    model, xte, yte, _ = trained
    keys = ["saliency", "guided_backprop"]
    corr = {k: [] for k in keys}
    for i in range(3):
        steps, c = trust.cascading_randomisation(model, xte[i], int(yte[i]), keys)
        for k in keys:
            corr[k].append(c[k][-1])
    assert steps == [f"to layer {i}" for i in (8, 4, 1)]
    assert np.mean(corr["saliency"]) < 0.4, corr  # fully randomised: little left of the trained map


def test_saliency_deletion_falls_faster_than_random_deletion(trained):
    model, xte, yte, _ = trained
    faster = []
    for i in range(10):
        a = explain.attribute(model, torch.as_tensor(xte[i:i + 1]), int(yte[i]), "saliency").attribution
        by_map = trust.perturbation_curve(model, xte[i], int(yte[i]), trust.most_attributed_first(a))
        by_chance = trust.perturbation_curve(model, xte[i], int(yte[i]), trust.random_order(784, i))
        assert by_map.scores[0] == pytest.approx(by_chance.scores[0])
        faster.append(by_map.area < by_chance.area)
    assert sum(faster) >= 8, faster


def test_faithfulness_and_robustness_metrics_come_from_captum(trained):
    model, xte, yte, _ = trained
    y = int(yte[0])
    sal = explain.attribute(model, torch.as_tensor(xte[:1]), y, "saliency").attribution
    ig = explain.attribute(model, torch.as_tensor(xte[:1]), y, "integrated_gradients").attribution
    assert trust.infidelity_score(model, xte[0], y, ig) < trust.infidelity_score(model, xte[0], y, sal * 0 + 1)
    assert 0 < trust.sensitivity(model, xte[0], y, "saliency") < 10


def test_explainer_caches_per_model_version_input_and_parameters(trained):
    model, xte, yte, _ = trained
    ex = explain.Explainer(model, version=("job", 10))
    first = ex.explain(xte[0], 1, "integrated_gradients")
    assert ex.explain(xte[0], 1, "integrated_gradients") is first
    assert ex.explain(xte[0], 1, "integrated_gradients", {"n_steps": 20}) is not first
    assert ex.explain(xte[1], 1, "integrated_gradients") is not first
    assert ex.predict(xte[:2]).shape == (2, 10)


def test_the_reference_model_is_trained_once_then_read_from_disk(trained, tmp_path, monkeypatch):
    assert trained[3]["test_accuracy"] >= 0.9
    file = reference.path(tmp_path)
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not a model")  # a corrupt cache is replaced by a fresh training run
    model, meta = reference.model(tmp_path)
    assert meta["test_accuracy"] >= 0.9
    monkeypatch.setattr(reference, "train_blocking", lambda job, timeout=0: pytest.fail("trained again"))
    again, _ = reference.model(tmp_path)
    for p, q in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(p, q)
    assert isinstance(again, SpecNet)
