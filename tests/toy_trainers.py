"""Two small trainers unlike the supervised one, for the Trainer contract's conformance test: the
seams the GAN and transfer labs use. Module-level classes, so they travel to workers."""
from __future__ import annotations

import copy

import torch
from torch import nn

from dl_core.data import TensorData
from dl_core.engine import SupervisedTrainer
from dl_core.engine.trainers import Network


class ToyAdversarialTrainer:
    """G turns noise into numbers; D tells them from samples of N(3, 0.5²). Each network has its own
    optimizer and rate (D: Adam at the job's rate; G: RMSprop at half of it, a two-timescale duel),
    a step reports both losses, and its epochs report neither a test loss nor an accuracy."""

    travels, gangs, chance = True, False, None
    gradient_labels: list = []
    activation_labels: list = []
    probe_fn = None

    def __init__(self, seed: int = 0, n: int = 512):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.real = 3 + 0.5 * torch.randn(n, 1, generator=g)
        self.noise = torch.randn(n, 1, generator=g)
        self.models = {"D": nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)), "G": nn.Linear(1, 1)}
        self.n_train = n
        self.bce = nn.BCEWithLogitsLoss()

    def param_groups(self, config) -> dict:
        d, g = self.models["D"], self.models["G"]
        return {"D": Network(list(d.parameters()), "adam", config.lr),
                "G": Network(list(g.parameters()), "rmsprop", config.lr / 2)}

    def train_step(self, idx, ctx):
        d, g = self.models["D"], self.models["G"]
        real, fake = self.real[idx], g(self.noise[idx])
        ones, zeros = torch.ones(len(idx), 1), torch.zeros(len(idx), 1)
        d_loss = self.bce(d(real), ones) + self.bce(d(fake.detach()), zeros)
        ctx.update("D", d_loss)
        g_loss = self.bce(d(fake), ones)
        ctx.update("G", g_loss)
        return {"D": d_loss.detach(), "G": g_loss.detach()}

    def running_metrics(self) -> dict:
        return {}

    def evaluate(self, train: bool = True) -> dict:
        with torch.no_grad():
            return {"fake_mean": float(self.models["G"](self.noise).mean())}

    def probe(self):
        return None

    def grad_norms(self) -> list:
        return []

    def take_activations(self):
        return None

    def turn_state(self) -> dict:
        return {}

    def load_turn_state(self, state: dict) -> None:
        pass

    def clone(self) -> "ToyAdversarialTrainer":
        return copy.deepcopy(self)


def frozen_backbone_trainer(seed: int = 0) -> SupervisedTrainer:
    """A head trained on a backbone whose weights stay as they are (transfer learning), on a network
    not built from a spec: nn.Sequential(backbone, head), the backbone's parameters frozen."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())
    backbone.requires_grad_(False)
    model = nn.Sequential(backbone, nn.Linear(32, 2))
    return SupervisedTrainer(model, TensorData.from_arrays(x[:192], y[:192], x[192:], y[192:], "classification"))
