"""Membership Recall Attack: threat model enforced by the signature, input errors, the pieces,
and recovery of forgotten labels on the smoke profile."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from mu_lib import MuError
from mu_lib.attacks import mra
from mu_lib.experiment import RunConfig, split_for, unlearned_model
from mu_lib.models import build_model


def test_the_attack_cannot_receive_labels_retained_data_or_the_original_model():
    params = list(inspect.signature(mra.membership_recall).parameters)
    assert params == ["unlearned", "x_forgotten", "x_public", "num_classes", "hp"]
    forbidden = ("retain", "original", "label", "y_", "split", "cfg")
    assert not [p for p in params if any(f in p for f in forbidden)]
    # and the hyperparameters carry no data either
    assert not any(
        isinstance(v, torch.Tensor | nn.Module) for v in mra.MRAHparams().to_dict().values()
    )


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("cnn_small", 10, 1, 8).eval()
    return model, torch.rand(12, 1, 8, 8), torch.rand(20, 1, 8, 8)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": 1.5}, "tau"),
        ({"tau": -0.2}, "tau"),
        ({"tau": "half"}, "tau"),
        ({"setting": "grey_box"}, "setting"),
        ({"rounds": 0}, "rounds"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_hyperparameters_raise(tiny, change, match):
    model, xf, xp = tiny
    with pytest.raises(MuError, match=match):
        mra.membership_recall(model, xf, xp, 10, mra.MRAHparams(**change))


def test_bad_inputs_raise(tiny):
    model, xf, xp = tiny
    with pytest.raises(MuError, match="empty"):
        mra.membership_recall(model, xf[:0], xp, 10)
    with pytest.raises(MuError, match="num_classes=7"):
        mra.membership_recall(model, xf, xp, 7)
    headless = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(MuError, match="head"):
        mra.membership_recall(headless, xf, xp, 10)
    with pytest.raises(MuError, match="same size"):
        mra.membership_recall(model, xf, torch.rand(5, 1, 6, 6), 10)


def test_prior_offsets_make_the_average_prediction_uniform():
    torch.manual_seed(0)
    logits = torch.randn(400, 5)
    logits[:, 2] -= 8.0  # a suppressed class, as after unlearning
    logp = torch.log_softmax(logits, 1)
    b = mra.prior_offsets(logp)
    marginal = torch.softmax(logp + b, 1).mean(0)
    assert torch.allclose(marginal, torch.full((5,), 0.2), atol=1e-3)
    assert (torch.softmax(logp + b, 1).argmax(1) == 2).sum() > 40  # the class comes back
    # ranking within a class is unchanged
    assert torch.equal(logp[:, 2].argsort(), (logp + b)[:, 2].argsort())


def test_agreed_selection_keeps_only_agreements_and_the_most_confident():
    pt = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.45, 0.55]])
    ps = torch.tensor([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.4, 0.6], [0.4, 0.6]])
    idx, lab = mra.agreed_selection(pt, ps, tau=0.5)
    # class 0 agreed on rows 0, 1 (row 3 disagrees): keep ceil(0.5 * 2) = 1, the surer row 0;
    # class 1 agreed on rows 2, 4: keep row 2
    assert idx.tolist() == [0, 2] and lab.tolist() == [0, 1]
    idx, _ = mra.agreed_selection(pt, ps, tau=1.0)
    assert sorted(idx.tolist()) == [0, 1, 2, 4]


def test_white_box_leaves_the_unlearned_model_untouched(tiny):
    model, xf, xp = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hp = mra.MRAHparams(
        setting="white_box", rounds=1, distill_epochs=1, finetune_epochs=1, batch_size=8
    )
    res = mra.membership_recall(model, xf, xp, 10, hp)
    assert res.labels.shape == (12,) and len(res.round_labels) == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", ["retrain", "spotter"])
def test_mra_recovers_forgotten_labels_on_smoke(method):
    """Both methods leave the unlearned model with 0% on D_f on smoke / seed 0; MRA must get
    most labels back, and clearly more than plain distillation (which copies the teacher)."""
    cfg = RunConfig(method=method, profile="smoke", seed=0)
    out = {s: mra.recall_experiment(cfg, s) for s in mra.SETTINGS}
    for setting, r in out.items():
        assert r["setting"] == setting and r["n_forgotten"] > 0 and r["n_public"] > 0
        assert r["unlearned_acc"] < 10, r  # the method did forget
        assert r["mra_acc"] > r["unlearned_acc"] + 50, r
        assert r["mra_acc"] > r["distill_acc"] + 50, r
        assert set(r["per_class"]) == {"0"}
        hist = r["label_hist"]["mra"]
        # each share is rounded to 4 decimals, so the sum may be off by 5e-5 per class
        assert abs(sum(hist) - 1) <= 5e-5 * len(hist) + 1e-9
    # the forgotten samples' labels, under the unlearned model, all land on retained classes
    assert out["query_only"]["label_hist"]["unlearned"][0] < 0.1


def test_recall_experiment_is_cached_and_keeps_the_attacker_away_from_labels(monkeypatch):
    cfg = RunConfig(method="retrain", profile="smoke", seed=0)
    first = mra.recall_experiment(cfg, "query_only")
    seen = {}
    real = mra.membership_recall

    def spy(*args, **kw):
        seen["args"] = args
        return real(*args, **kw)

    monkeypatch.setattr(mra, "membership_recall", spy)
    assert mra.recall_experiment(cfg, "query_only") == first  # from the store: no new attack
    assert "args" not in seen
    # a fresh configuration runs the attack: it receives D_f's images and public images only
    mra.recall_experiment(cfg, "query_only", mra.MRAHparams(rounds=1), public_size=100)
    model, xf, xp, n, _hp = seen["args"]
    split = split_for(cfg)
    assert model is unlearned_model(cfg)[0]
    assert torch.equal(xf, split.forget_train[0]) and n == split.num_classes
    assert len(xp) == 100
    train = {tuple(row.flatten().tolist()) for row in split.x_train}
    assert not any(tuple(row.flatten().tolist()) in train for row in xp)  # disjoint from training
