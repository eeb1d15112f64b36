"""Every entry of the loss and activation tables: what it builds, what it exports and the
facts the labs read from it agree with PyTorch itself."""
import pytest
import torch
from torch import nn

from dl_core.activations import ACTIVATIONS, key_of
from dl_core.losses import LOSSES


@pytest.mark.parametrize("task", list(LOSSES))
def test_loss_equals_its_exported_source_on_its_own_example_targets(task):
    loss = LOSSES[task]
    torch.manual_seed(0)
    out = torch.randn(16, 3)
    targets = eval(loss.example.format(n=16, n_out=3), {"torch": torch})
    exported = eval(loss.code(), {"nn": nn})
    torch.testing.assert_close(exported(out, targets), loss.make()(out, targets))
    assert torch.equal(loss.target(targets.tolist()), targets)  # the dtype and shape the loss expects


@pytest.mark.parametrize("key", list(ACTIVATIONS))
def test_activation_module_exported_source_and_hand_slope_agree_with_autograd(key):
    act = ACTIVATIONS[key]
    module = act.make()
    assert key_of(module) == key and key_of(nn.Linear(1, 1)) is None
    z = torch.linspace(-6, 6, 2001, dtype=torch.float64).requires_grad_()
    z = z[z.detach().abs() > 1e-6]  # the kinks of (leaky) ReLU have no derivative
    a = module(z)
    torch.testing.assert_close(eval(act.code(), {"nn": nn})(z), a)
    (autograd,) = torch.autograd.grad(a.sum(), z)
    slope = act.slope(z.detach(), a.detach())
    torch.testing.assert_close(slope, autograd)
    assert float(slope.max()) == pytest.approx(act.max_slope, rel=1e-3)
    assert nn.init.calculate_gain(act.gain) > 0
