"""Loss landscapes, the learning-rate range test, schedules and SGD noise, against oracles:
the model's own loss, autograd on the full batch, torch's schedulers."""
import numpy as np
import pytest
import torch

from conftest import wait_for
from dl_core import landscape, playground, tuning
from dl_core.optim import SCHEDULES


@pytest.fixture(scope="module")
def trained():
    from dl_core.engine import Executor, ThreadBackend

    job, spec, ds = playground.make_job(playground.Setup(dataset="xor", seed=2))
    job.executor = Executor(ThreadBackend(1), capacity=2)
    path = tuning.epoch_path(job, 8)
    return job, path


def test_filter_normalised_directions_match_each_neurons_weight_norm(trained):
    job, _ = trained
    d = landscape.random_direction(job.model, 0)
    for name, w in job.model.named_parameters():
        if w.dim() < 2:
            assert not d[name].any()
        else:
            torch.testing.assert_close(d[name].norm(dim=1), w.detach().norm(dim=1))


def test_the_landscape_is_the_models_own_loss_at_every_point(trained):
    job, _ = trained
    model, x, y = job.model, job.data.x_train, job.data.y_train
    d1, d2 = landscape.random_direction(model, 0), landscape.random_direction(model, 1)
    alphas, surface = landscape.loss_surface(model, x, y, job.trainer.loss_fn, d1, d2, 0.5, 11)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for bi, ai in [(5, 5), (0, 10), (7, 2)]:
        with torch.no_grad():  # oracle: move the real weights there and evaluate normally
            for k, p in model.named_parameters():
                p.copy_(saved[k] + alphas[ai] * d1[k] + alphas[bi] * d2[k])
            expected = float(job.trainer.loss_fn(model.eval()(x), y))
        model.load_state_dict(saved)
        assert surface[bi, ai] == pytest.approx(expected, rel=1e-4)
    _, line = landscape.loss_surface(model, x, y, job.trainer.loss_fn, d1, None, 0.5, 11)
    assert line[5] == pytest.approx(surface[5, 5], rel=1e-6)  # the 1-D slice is the 2-D one at β = 0


def test_the_training_path_ends_at_the_origin_of_its_pca_plane(trained):
    job, path = trained
    assert len(path) == 9
    _, _, coords, explained = landscape.pca_directions(path, dict(job.model.named_parameters()))
    assert coords.shape == (9, 2) and np.allclose(coords[-1], 0, atol=1e-5)
    assert 0.5 < explained <= 1.0 + 1e-9
    assert np.linalg.norm(coords[0]) > np.linalg.norm(coords[-2])  # it moved towards where it ended


def test_per_example_gradients_average_to_the_full_batch_gradient(trained):
    job, _ = trained
    x, y = job.data.x_train[:64], job.data.y_train[:64]
    per = tuning.per_example_grads(job.model, x, y, torch.nn.functional.cross_entropy, "layers.0.weight")
    job.model.zero_grad()
    torch.nn.functional.cross_entropy(job.model(x), y).backward()
    np.testing.assert_allclose(per.mean(0), job.model.layers[0].weight.grad.reshape(-1).numpy(), atol=1e-6)
    job.model.zero_grad()
    spread = tuning.minibatch_spread(per[:, :1], [1, 4, 16], draws=300)
    stds = [spread[b].std() for b in (1, 4, 16)]
    assert stds[0] > stds[1] > stds[2]  # bigger batches, less noisy estimates


def test_lr_range_test_rises_exponentially_and_suggests_a_rate_inside_it(trained):
    job, _ = trained
    rates, losses = tuning.lr_range_test(job.model, job.data.x_train, job.data.y_train, job.trainer.loss_fn, steps=60)
    assert np.all(np.diff(np.log(rates)) > 0) and len(losses) == len(rates)
    assert rates[0] <= tuning.suggested_lr(rates, losses) <= rates[-1]
    assert tuning.suggested_lr(rates, losses) == pytest.approx(max(rates[np.argmin(losses)] / 10, rates[0]))


def test_a_flat_range_test_has_no_suggestion():
    """A curve that never falls well below its start (about 0.7 throughout) suggests nothing;
    the same curve with a real dip suggests a tenth of the dip's rate."""
    rates = np.geomspace(1e-5, 10, 100)
    flat = 0.7 + 0.01 * np.sin(np.arange(100))
    assert tuning.suggested_lr(rates, flat) is None
    dip = flat - 0.4 * np.exp(-((np.arange(100) - 60) / 10) ** 2)
    assert tuning.suggested_lr(rates, dip) == pytest.approx(rates[np.argmin(dip)] / 10)
    assert tuning.suggested_lr(rates[:0], flat[:0]) is None


def test_the_range_test_runs_the_networks_own_optimizer_and_its_suggestion_trains():
    """With Adam (the Playground's default) the suggested rate, used for real, fits the spiral;
    the optimizer factory is what steps the weights (Adam and SGD give different curves)."""
    from dataclasses import replace

    from dl_core.engine import Executor, ThreadBackend
    from dl_core.optim import OPTIMIZERS

    setup = playground.Setup(dataset="spiral", seed=1)
    job, _, _ = playground.make_job(setup)
    data = job.data
    adam = lambda ps: OPTIMIZERS["adam"].make(ps, setup.train.optimizer_settings())  # noqa: E731
    rates, losses = tuning.lr_range_test(job.model, data.x_train, data.y_train, job.trainer.loss_fn, optimizer=adam)
    _, sgd_losses = tuning.lr_range_test(job.model, data.x_train, data.y_train, job.trainer.loss_fn)
    n = min(len(losses), len(sgd_losses))
    assert not np.allclose(losses[:n], sgd_losses[:n])
    lr = tuning.suggested_lr(rates, losses)
    assert 1e-3 < lr < 0.3
    trained, _, _ = playground.make_job(replace(setup, train=replace(setup.train, lr=lr, max_epochs=150)))
    trained.executor = Executor(ThreadBackend(1), capacity=2)
    trained.start()
    wait_for(lambda: trained.status()["state"] == "finished", timeout=120)
    trained.stop()
    assert min(e["test_loss"] for e in trained.view(10**6)["epochs"]) < 0.2


@pytest.mark.parametrize("key", list(SCHEDULES))
def test_schedule_curves_start_at_the_chosen_rate_or_warm_up_to_it(key):
    curve = tuning.schedule_curve(key, 0.1, 20)
    assert len(curve) == 20 and max(curve) <= 0.1 + 1e-12
    if key == "onecycle":
        peak = int(np.argmax(curve))
        assert curve[0] < 0.01 and 4 <= peak <= 7 and curve[-1] < 0.01
    else:
        assert curve[0] == pytest.approx(0.1)
