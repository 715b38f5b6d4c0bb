"""PRA: the patched head is nearest-prototype classification; alpha rule; errors.  Fine-tuning
relearning under the same stealth budget, and the budget rule both attacks share."""

import pytest
import torch
from torch import nn

from mu_lib import MuError
from mu_lib.attacks import pra
from mu_lib.attacks.relearn import relearn_sweep
from mu_lib.attacks.stealth import strongest_stealthy


class Identity(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.head = nn.Linear(dim, classes)

    def embed(self, x):
        return x

    def forward(self, x):
        return self.head(x)


def hidden_class_problem(spread: float, noise: float, hide: float):
    """Four Gaussian clusters and a nearest-centre head whose class-0 bias is lowered by ``hide``:
    the class is still separable in feature space, but the head (almost) never predicts it."""
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * spread
    y = torch.arange(4).repeat_interleave(50)
    x = centers[y] + torch.randn(200, 8) * noise
    model = Identity(8, 4)
    with torch.no_grad():
        model.head.weight.copy_(2 * centers)
        model.head.bias.copy_(-(centers * centers).sum(1))
        model.head.bias[0] -= hide
    return model, x, y


@pytest.mark.parametrize("form", ["cos", "l2"])
def test_patched_head_equals_nearest_prototype(form):
    torch.manual_seed(1)
    emb = torch.randn(300, 16) + 0.5
    y = torch.randint(0, 6, (300,))
    protos = pra.prototypes(emb, y, range(6))
    w, b = pra.prototype_head(protos, form)
    head = pra.patched_head(nn.Linear(16, 6), list(range(6)), w, b, alpha=1.0)
    with torch.no_grad():
        pred_head = head(emb).argmax(1)
    assert torch.equal(pred_head, pra.nearest_prototype_predict(emb, protos, form))


def test_alpha_zero_keeps_the_unlearned_head_and_bad_alpha_raises():
    h = nn.Linear(4, 3)
    w, b = pra.prototype_head(torch.randn(1, 4), "l2")
    same = pra.patched_head(h, [1], w, b, alpha=0.0)
    assert torch.allclose(same.weight, h.weight) and torch.allclose(same.bias, h.bias)
    with pytest.raises(MuError, match=r"alpha must be in \[0, 1\]"):
        pra.patched_head(h, [1], w, b, alpha=1.5)
    with pytest.raises(MuError, match="form"):
        pra.prototype_head(torch.randn(1, 4), "manhattan")


def test_sweep_restores_a_hidden_class_and_respects_the_retain_budget():
    model, x, y = hidden_class_problem(spread=4.0, noise=0.3, hide=1e4)
    f, r = y == 0, y != 0
    attack = pra.PRA(model, (x[f], y[f]), (x[r], y[r]), [0])
    res = attack.sweep(torch.arange(5), "l2", pra.DEFAULT_ALPHAS)
    assert res.proto_acc_f[0] == 0.0  # alpha 0: the unlearned model
    assert res.chosen_proto_acc_f > 90.0
    assert res.chosen_acc_r_star >= res.acc_r - 1.0


def test_training_accuracies_from_the_embedding_pass_match_the_model():
    """evaluate() takes Acc_f and Acc_r from PRA's embeddings; they must be the model's own."""
    from types import SimpleNamespace

    from mu_lib.metrics import accuracy, accuracy_suite

    torch.manual_seed(3)
    model = Identity(8, 4)
    x, y = torch.randn(120, 8), torch.randint(0, 4, (120,))
    f, r = y == 2, y != 2
    attack = pra.PRA(model, (x[f], y[f]), (x[r], y[r]), [2])
    assert attack.acc_f == pytest.approx(accuracy(model, x[f], y[f]))
    assert attack.acc_r == pytest.approx(accuracy(model, x[r], y[r]))
    assert 0 < attack.acc_r < 100  # a random head: the check is not trivially 0 or 100
    split = SimpleNamespace(
        forget_train=(x[f], y[f]), retain_train=(x[r], y[r]),
        forget_test=(x[f][:5], y[f][:5]), retain_test=(x[r][:20], y[r][:20]),
    )  # fmt: skip
    assert accuracy_suite(model, split, pra=attack) == pytest.approx(accuracy_suite(model, split))


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
    model, x, y = hidden_class_problem(spread=2.0, noise=0.5, hide=60.0)
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
