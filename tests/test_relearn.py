"""Fine-tuning relearning under the stealth budget PRA uses, and the shared stealth rule."""

import pytest
import torch
from torch import nn

from mu_lib import MuError
from mu_lib.attacks.relearn import relearn_sweep
from mu_lib.attacks.stealth import strongest_stealthy


class LinearOnFeatures(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.head = nn.Linear(dim, classes)

    def embed(self, x):
        return x

    def forward(self, x):
        return self.head(x)


def test_stealth_rule_keeps_the_strongest_attack_within_budget():
    # candidates mildest first; the third restores most but costs 3 points of retained accuracy
    assert strongest_stealthy([0, 40, 90], [97, 96.5, 94], baseline_retain_acc=97) == 1
    assert strongest_stealthy([0, 40, 40], [97, 97, 96.2], baseline_retain_acc=97) == 2  # tie
    assert strongest_stealthy([10, 50], [90, 80], baseline_retain_acc=97) == 0  # none: mildest
    with pytest.raises(MuError, match="one retained accuracy per attack"):
        strongest_stealthy([1, 2], [3], 97)
    with pytest.raises(MuError, match="tolerance"):
        strongest_stealthy([1], [3], 97, tolerance=-1)


def test_relearn_sweep_rejects_a_rate_that_restores_the_class_by_wrecking_the_rest():
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 2
    y = torch.arange(4).repeat_interleave(50)
    x = centers[y] + torch.randn(200, 8) * 0.5
    model = LinearOnFeatures(8, 4)
    with torch.no_grad():  # nearest-centre head with class 0 switched off
        model.head.weight.copy_(2 * centers)
        model.head.bias.copy_(-(centers * centers).sum(1))
        model.head.bias[0] -= 60
    f, r = y == 0, y != 0
    res = relearn_sweep(
        model, (x[f][:5], y[f][:5]), (x[f], y[f]), (x[r], y[r]), lrs=(1.0, 0.01, 0.1, 100.0)
    )
    assert res.lrs == [0.01, 0.1, 1.0, 100.0]  # sorted mildest first
    assert res.acc_f[2] > 90 and res.acc_r[2] < res.unlearned_acc_r - 1  # restores, but visibly
    assert res.acc_r[3] < 50  # the largest rate predicts class 0 almost everywhere
    assert res.lr == 0.1 and res.chosen_acc_r >= res.unlearned_acc_r - 1
    with pytest.raises(MuError, match="rates must be > 0"):
        relearn_sweep(model, (x[f][:5], y[f][:5]), (x[f], y[f]), (x[r], y[r]), lrs=(0.0,))
